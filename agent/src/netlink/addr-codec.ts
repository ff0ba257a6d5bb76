/** RTM_*ADDR messages: struct ifaddrmsg + IFA_* attributes. */
import { PodnetError } from '../errors/index.js';
import { afOf, bytesToIp, familyOf, ipFamily, ipToBytes } from './address.js';
import { decodeAttrs, getString, MessageWriter, type NetlinkMessage } from './codec.js';
import {
  AF_UNSPEC,
  IFA_ADDRESS,
  IFA_F_NOPREFIXROUTE,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  RT_SCOPE_HOST,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RTM_DELADDR,
  RTM_GETADDR,
  RTM_NEWADDR,
} from './constants.js';
import type { Addr, Family, Scope } from './types.js';

/** Size of struct ifaddrmsg. */
export const IFADDRMSG_LEN = 8;

/** The rt_scope number of a scope name (numbers pass through). */
export function scopeValue(scope: Scope): number {
  switch (scope) {
    case 'universe':
      return RT_SCOPE_UNIVERSE;
    case 'link':
      return RT_SCOPE_LINK;
    case 'host':
      return RT_SCOPE_HOST;
    default:
      return scope;
  }
}

/** The name of an rt_scope number when it has one used by podnet, else the number. */
export function scopeName(scope: number): Scope {
  switch (scope) {
    case RT_SCOPE_UNIVERSE:
      return 'universe';
    case RT_SCOPE_LINK:
      return 'link';
    case RT_SCOPE_HOST:
      return 'host';
    default:
      return scope;
  }
}

/** An address to add or delete. */
export interface AddrRequest {
  index: number;
  address: string;
  prefixLen: number;
  /** Default 'universe'. */
  scope?: Scope;
  /** Skip the prefix route the kernel would otherwise add with the address (IFA_F_NOPREFIXROUTE). */
  noPrefixRoute?: boolean;
}

/**
 * RTM_NEWADDR or RTM_DELADDR (`ip addr add|del ADDRESS/LEN dev X [scope S] [noprefixroute]`).
 * Like iproute2, the address goes in both IFA_LOCAL and IFA_ADDRESS.
 */
export function encodeAddr(type: typeof RTM_NEWADDR | typeof RTM_DELADDR, a: AddrRequest, w = new MessageWriter()): Buffer {
  const family = ipFamily(a.address);
  const bytes = ipToBytes(a.address);
  const flags = NLM_F_REQUEST | NLM_F_ACK | (type === RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0);
  w.begin(type, flags);
  w.u8(afOf(family)).u8(a.prefixLen).u8(0).u8(scopeValue(a.scope ?? 'universe')).u32(a.index);
  w.attr(IFA_LOCAL, bytes);
  w.attr(IFA_ADDRESS, bytes);
  // IFA_F_NOPREFIXROUTE does not fit the u8 ifa_flags, so it travels as IFA_FLAGS.
  if (a.noPrefixRoute) w.attrU32(IFA_FLAGS, IFA_F_NOPREFIXROUTE);
  return w.finish();
}

/** RTM_GETADDR dump (`ip addr show [dev X]`); the kernel filters by index under strict checking. */
export function encodeAddrDump(filter: { family?: Family; index?: number } = {}, w = new MessageWriter()): Buffer {
  w.begin(RTM_GETADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
  w.u8(filter.family ? afOf(filter.family) : AF_UNSPEC).u8(0).u8(0).u8(0).u32(filter.index ?? 0);
  return w.finish();
}

/** Decodes an RTM_NEWADDR; undefined for families other than IPv4/IPv6. */
export function decodeAddr(msg: NetlinkMessage): Addr | undefined {
  const p = msg.payload;
  if (p.length < IFADDRMSG_LEN) throw new PodnetError('BAD_MESSAGE', `decode address: payload of ${p.length} bytes is shorter than ifaddrmsg`);
  const family = familyOf(p.readUInt8(0));
  if (!family) return undefined;
  const attrs = decodeAttrs(p, IFADDRMSG_LEN);
  const raw = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  if (!raw) return undefined;
  const label = getString(attrs, IFA_LABEL);
  return {
    index: p.readUInt32LE(4),
    family,
    address: bytesToIp(raw),
    prefixLen: p.readUInt8(1),
    scope: scopeName(p.readUInt8(3)),
    ...(label !== undefined ? { label } : {}),
  };
}
