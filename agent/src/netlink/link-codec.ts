/** RTM_*LINK messages: struct ifinfomsg + IFLA_* attributes, including the nested veth peer. */
import { PodnetError } from '../errors/index.js';
import { bytesToMac, macToBytes } from './address.js';
import { decodeAttrs, getI32, getString, getU32, getU8, MessageWriter, type NetlinkMessage } from './codec.js';
import {
  AF_UNSPEC,
  ARPHRD_LOOPBACK,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINK,
  IFLA_LINK_NETNSID,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_OPERSTATE,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWLINK,
  VETH_INFO_PEER,
} from './constants.js';
import type { Link } from './types.js';

/** Size of struct ifinfomsg. */
export const IFINFOMSG_LEN = 16;

/** The fields of struct ifinfomsg. */
export interface IfInfoMsg {
  family?: number;
  type?: number;
  index?: number;
  flags?: number;
  change?: number;
}

/** Appends a struct ifinfomsg. */
export function writeIfInfoMsg(w: MessageWriter, m: IfInfoMsg): MessageWriter {
  return w
    .u8(m.family ?? AF_UNSPEC)
    .u8(0)
    .u16(m.type ?? 0)
    .i32(m.index ?? 0)
    .u32(m.flags ?? 0)
    .u32(m.change ?? 0);
}

/** What `encodeNewVeth` needs; `peerNetnsFd` places the peer straight into another namespace. */
export interface VethRequest {
  name: string;
  peerName: string;
  peerNetnsFd?: number;
  /** Applied to both ends. */
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

/**
 * RTM_NEWLINK creating a veth pair (`ip link add NAME type veth peer name PEER netns NS`).
 * Attribute order follows iproute2 so captures of `ip` compare byte for byte.
 */
export function encodeNewVeth(req: VethRequest, w = new MessageWriter()): Buffer {
  w.begin(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  writeIfInfoMsg(w, {});
  if (req.mtu !== undefined) w.attrU32(IFLA_MTU, req.mtu);
  if (req.mac !== undefined) w.attr(IFLA_ADDRESS, macToBytes(req.mac));
  w.attrString(IFLA_IFNAME, req.name);
  const info = w.nest(IFLA_LINKINFO);
  // iproute2 sends the kind without a NUL; the kernel accepts both.
  w.attrString(IFLA_INFO_KIND, 'veth', false);
  const data = w.nest(IFLA_INFO_DATA);
  const peer = w.nest(VETH_INFO_PEER);
  writeIfInfoMsg(w, {});
  if (req.mtu !== undefined) w.attrU32(IFLA_MTU, req.mtu);
  if (req.peerMac !== undefined) w.attr(IFLA_ADDRESS, macToBytes(req.peerMac));
  if (req.peerNetnsFd !== undefined) w.attrU32(IFLA_NET_NS_FD, req.peerNetnsFd);
  w.attrString(IFLA_IFNAME, req.peerName);
  w.endNest(peer);
  w.endNest(data);
  w.endNest(info);
  return w.finish();
}

/** Changes to an existing link; each field set becomes one part of the request. */
export interface LinkChange {
  index: number;
  up?: boolean;
  mtu?: number;
  mac?: string;
  name?: string;
  netnsFd?: number;
}

/** RTM_NEWLINK changing an existing link (`ip link set dev X up|down|mtu|address|name|netns`). */
export function encodeSetLink(c: LinkChange, w = new MessageWriter()): Buffer {
  w.begin(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
  writeIfInfoMsg(w, {
    index: c.index,
    flags: c.up ? IFF_UP : 0,
    change: c.up === undefined ? 0 : IFF_UP,
  });
  if (c.mtu !== undefined) w.attrU32(IFLA_MTU, c.mtu);
  if (c.mac !== undefined) w.attr(IFLA_ADDRESS, macToBytes(c.mac));
  if (c.name !== undefined) w.attrString(IFLA_IFNAME, c.name);
  if (c.netnsFd !== undefined) w.attrU32(IFLA_NET_NS_FD, c.netnsFd);
  return w.finish();
}

/** RTM_DELLINK (`ip link del dev X`). */
export function encodeDelLink(index: number, w = new MessageWriter()): Buffer {
  w.begin(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
  writeIfInfoMsg(w, { index });
  return w.finish();
}

/** RTM_GETLINK for one link by index or by name (`ip link show dev X`). */
export function encodeGetLink(q: { index: number } | { name: string }, w = new MessageWriter()): Buffer {
  w.begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK);
  writeIfInfoMsg(w, { index: 'index' in q ? q.index : 0 });
  if ('name' in q) w.attrString(IFLA_IFNAME, q.name);
  return w.finish();
}

/** RTM_GETLINK dump of every link (`ip link show`). */
export function encodeLinkDump(w = new MessageWriter()): Buffer {
  w.begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
  writeIfInfoMsg(w, {});
  return w.finish();
}

const operStates = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

/** Decodes an RTM_NEWLINK into a Link; throws PodnetError EBADMSG when the header is short. */
export function decodeLink(msg: NetlinkMessage): Link {
  const p = msg.payload;
  if (p.length < IFINFOMSG_LEN) throw new PodnetError('BAD_MESSAGE', `decode link: payload of ${p.length} bytes is shorter than ifinfomsg`);
  const type = p.readUInt16LE(2);
  const index = p.readInt32LE(4);
  const flags = p.readUInt32LE(8);
  const attrs = decodeAttrs(p, IFINFOMSG_LEN);
  const info = attrs.get(IFLA_LINKINFO);
  const kind = (info && getString(decodeAttrs(info), IFLA_INFO_KIND)) ?? (type === ARPHRD_LOOPBACK ? 'loopback' : 'device');
  const address = attrs.get(IFLA_ADDRESS);
  const oper = getU8(attrs, IFLA_OPERSTATE) ?? 0;
  const base = {
    index,
    name: getString(attrs, IFLA_IFNAME) ?? '',
    mtu: getU32(attrs, IFLA_MTU) ?? 0,
    mac: address ? bytesToMac(address) : '',
    up: (flags & IFF_UP) !== 0,
    operState: operStates[oper] ?? String(oper),
    flags,
  };
  const master = getU32(attrs, IFLA_MASTER);
  const netnsId = getI32(attrs, IFLA_LINK_NETNSID);
  const extra = {
    ...(master !== undefined ? { masterIndex: master } : {}),
    ...(netnsId !== undefined ? { netnsId } : {}),
  };
  if (kind === 'veth') {
    const peer = getU32(attrs, IFLA_LINK);
    return { ...base, ...extra, kind, ...(peer ? { peerIndex: peer } : {}) };
  }
  return { ...base, ...extra, kind };
}
