/** Pod endpoint lifecycle: veth pair, addressing, routes, program attach, map entries, rollback. */
export { EndpointManager, ADD_STEPS, POD_GATEWAY, type AddRequest, type AddStep, type PodAttacher, type EndpointManagerDeps } from './manager.js';
export { MetaStore, type EndpointMeta } from './meta-store.js';
export { hostVethName, isHostVethName, HOST_VETH_PREFIX } from './naming.js';
