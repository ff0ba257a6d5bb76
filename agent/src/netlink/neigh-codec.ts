/** RTM_*NEIGH messages: struct ndmsg + NDA_* attributes. */
import { PodnetError } from '../errors/index.js';
import { afOf, bytesToIp, bytesToMac, familyOf, ipFamily, ipToBytes, macToBytes } from './address.js';
import { decodeAttrs, MessageWriter, type NetlinkMessage } from './codec.js';
import {
  AF_UNSPEC,
  NDA_DST,
  NDA_LLADDR,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NUD_DELAY,
  NUD_FAILED,
  NUD_INCOMPLETE,
  NUD_NOARP,
  NUD_PERMANENT,
  NUD_PROBE,
  NUD_REACHABLE,
  NUD_STALE,
  RTM_DELNEIGH,
  RTM_GETNEIGH,
  RTM_NEWNEIGH,
} from './constants.js';
import type { Family, Neigh } from './types.js';

/** Size of struct ndmsg. */
export const NDMSG_LEN = 12;

/** Neighbour attribute: filter a dump by ifindex (u32). */
export const NDA_IFINDEX = 8;

/** A neighbour entry to add or replace. */
export interface NeighRequest {
  index: number;
  ip: string;
  mac: string;
  /** NUD_PERMANENT when true (the default), NUD_REACHABLE otherwise. */
  permanent?: boolean;
}

function writeNdMsg(w: MessageWriter, family: number, index: number, state: number): void {
  w.u8(family).u8(0).u16(0).i32(index).u16(state).u8(0).u8(0);
}

/** RTM_NEWNEIGH with NLM_F_CREATE|NLM_F_REPLACE (`ip neigh replace IP lladdr MAC dev X nud permanent`). */
export function encodeNewNeigh(n: NeighRequest, w = new MessageWriter()): Buffer {
  w.begin(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
  writeNdMsg(w, afOf(ipFamily(n.ip)), n.index, n.permanent === false ? NUD_REACHABLE : NUD_PERMANENT);
  w.attr(NDA_DST, ipToBytes(n.ip));
  w.attr(NDA_LLADDR, macToBytes(n.mac));
  return w.finish();
}

/** RTM_DELNEIGH (`ip neigh del IP dev X`). */
export function encodeDelNeigh(n: { index: number; ip: string }, w = new MessageWriter()): Buffer {
  w.begin(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK);
  writeNdMsg(w, afOf(ipFamily(n.ip)), n.index, 0);
  w.attr(NDA_DST, ipToBytes(n.ip));
  return w.finish();
}

/** RTM_GETNEIGH dump (`ip neigh show [dev X]`); strict checking wants the ifindex filter as NDA_IFINDEX. */
export function encodeNeighDump(filter: { family?: Family; index?: number } = {}, w = new MessageWriter()): Buffer {
  w.begin(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
  writeNdMsg(w, filter.family ? afOf(filter.family) : AF_UNSPEC, 0, 0);
  if (filter.index !== undefined) w.attrU32(NDA_IFINDEX, filter.index);
  return w.finish();
}

const stateNames: Array<[number, string]> = [
  [NUD_INCOMPLETE, 'incomplete'],
  [NUD_REACHABLE, 'reachable'],
  [NUD_STALE, 'stale'],
  [NUD_DELAY, 'delay'],
  [NUD_PROBE, 'probe'],
  [NUD_FAILED, 'failed'],
  [NUD_NOARP, 'noarp'],
  [NUD_PERMANENT, 'permanent'],
];

/** Readable form of NUD_* bits: 'permanent', 'stale', ... joined by ','; 'none' for 0. */
export function neighStateName(state: number): string {
  if (state === 0) return 'none';
  const names = stateNames.filter(([bit]) => state & bit).map(([, name]) => name);
  const unknown = state & ~0xff;
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return names.join(',');
}

/** Decodes an RTM_NEWNEIGH; undefined for families other than IPv4/IPv6 (bridge FDB entries). */
export function decodeNeigh(msg: NetlinkMessage): Neigh | undefined {
  const p = msg.payload;
  if (p.length < NDMSG_LEN) throw new PodnetError('BAD_MESSAGE', `decode neighbour: payload of ${p.length} bytes is shorter than ndmsg`);
  const family = familyOf(p.readUInt8(0));
  if (!family) return undefined;
  const attrs = decodeAttrs(p, NDMSG_LEN);
  const dst = attrs.get(NDA_DST);
  if (!dst) return undefined;
  const lladdr = attrs.get(NDA_LLADDR);
  const state = p.readUInt16LE(8);
  return {
    index: p.readInt32LE(4),
    family,
    ip: bytesToIp(dst),
    ...(lladdr ? { mac: bytesToMac(lladdr) } : {}),
    state,
    stateName: neighStateName(state),
  };
}
