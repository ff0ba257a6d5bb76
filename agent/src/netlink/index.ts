/**
 * podnet's rtnetlink library: links (veth pairs), addresses, routes and
 * neighbours over an AF_NETLINK socket, plus network namespaces, modelled on
 * vishvananda/netlink. One NetlinkHandle per namespace, opened inside it once;
 * every operation documents its `ip ...` equivalent and throws NetlinkError
 * with the kernel's extended-ack message when refused. The wire format is
 * pure TypeScript (exported below for tests and other users); only the
 * socket and namespace calls go through koffi to libc. Linux >= 4.20 for
 * strict dump checking; older kernels work with client-side filtering.
 */
export type { Family, Scope, LinkBase, VethLink, OtherLink, Link, Addr, Route, Neigh } from './types.js';
export { NetNs, NotNetnsError, withNetns, DEFAULT_NETNS_DIR } from './netns.js';
export { FileLock, LockHeldError } from './lockfile.js';
export { NetlinkHandle, type NetlinkHandleOptions, type VethOptions } from './handle.js';
export {
  NetlinkSocket,
  NetlinkConn,
  opText,
  type NetlinkTransport,
  type NetlinkSocketOptions,
  type NetlinkConnOptions,
  type OpName,
} from './socket.js';
export {
  MessageWriter,
  align4,
  decodeMessages,
  decodeAttrs,
  decodeError,
  decodeDone,
  getU8,
  getU32,
  getI32,
  getString,
  type NetlinkMessage,
  type Attrs,
  type NetlinkStatus,
} from './codec.js';
export {
  IFINFOMSG_LEN,
  writeIfInfoMsg,
  encodeNewVeth,
  encodeSetLink,
  encodeDelLink,
  encodeGetLink,
  encodeLinkDump,
  decodeLink,
  type IfInfoMsg,
  type VethRequest,
  type LinkChange,
} from './link-codec.js';
export { IFADDRMSG_LEN, scopeValue, scopeName, encodeAddr, encodeAddrDump, decodeAddr, type AddrRequest } from './addr-codec.js';
export { RTMSG_LEN, encodeRoute, encodeRouteDump, decodeRoute, type RouteRequest, type RouteOp, type RouteFilter } from './route-codec.js';
export { NDMSG_LEN, NDA_IFINDEX, encodeNewNeigh, encodeDelNeigh, encodeNeighDump, decodeNeigh, neighStateName, type NeighRequest } from './neigh-codec.js';
export { ipFamily, afOf, familyOf, ipToBytes, bytesToIp, macToBytes, bytesToMac } from './address.js';
export * as rtnl from './constants.js';
