/** Pod IP address management whose state is the pinned pn_ipam BPF map. */
export { Ipam, PoolExhaustedError, type IpamOwner, type IpamStore, type IpamUsage } from './ipam.js';
export { parsePool, inPool, poolMask, toNumber, fromNumber, type Pool } from './pool.js';
