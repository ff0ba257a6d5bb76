/**
 * Socket load balancing (bpf/include/shared/sock.h): pn_sock_rev, the
 * reverse map of the cgroup socket hooks, and the records of the socket
 * destroyer (bpf/sock_destroy.bpf.c).
 */
import { be16, i32, ipv4, u16, u32, u64, u8 } from '../libbpf/index.js';
import { defineMap } from './descriptor.js';
import { cStruct } from './layout.js';

export const sockRevKey = cStruct('pn_sock_rev_key', 16, {
  cookie: ['cookie', 0, u64],
  addr: ['addr', 8, ipv4],
  port: ['port', 12, be16],
  pad: ['pad', 14, u16],
});
export const sockRevValue = cStruct('pn_sock_rev', 12, {
  addr: ['addr', 0, ipv4],
  port: ['port', 4, be16],
  proto: ['proto', 6, u8],
  pad: ['pad', 7, u8],
  frontendId: ['frontend_id', 8, u32],
});
/** Key of the destroyer's target set: one removed backend. */
export const sockTarget = cStruct('pn_sock_target', 8, {
  addr: ['addr', 0, ipv4],
  port: ['port', 4, be16],
  proto: ['proto', 6, u8],
  pad: ['pad', 7, u8],
});
/** One socket the destroyer's iterator destroyed (or failed to). */
export const sockDestroyed = cStruct('pn_sock_destroyed', 24, {
  cookie: ['cookie', 0, u64],
  addr: ['addr', 8, ipv4],
  port: ['port', 12, be16],
  proto: ['proto', 14, u8],
  pad: ['pad', 15, u8],
  err: ['err', 16, i32],
  pad2: ['pad2', 20, u32],
});

/** The pn_sock_rev descriptor (bpf/lib/maps/sock.h). */
export const SOCK_REV = defineMap({
  name: 'pn_sock_rev', type: 'lru_hash', key: sockRevKey, value: sockRevValue, maxEntries: 65536,
  perCpu: false, pinned: true, origin: 'object',
  description: '{socket cookie, backend} -> frontend the application addressed; written by connect4/sendmsg4, read by recvmsg4/getpeername4',
});
