/** RTM_*ROUTE messages: struct rtmsg + RTA_* attributes. */
import { PodnetError } from '../errors/index.js';
import { afOf, bytesToIp, familyOf, ipFamily, ipToBytes } from './address.js';
import { scopeName, scopeValue } from './addr-codec.js';
import { decodeAttrs, getU32, MessageWriter, type NetlinkMessage } from './codec.js';
import {
  AF_UNSPEC,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  RT_SCOPE_NOWHERE,
  RT_TABLE_MAIN,
  RT_TABLE_UNSPEC,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTM_DELROUTE,
  RTM_GETROUTE,
  RTM_NEWROUTE,
  RTN_UNICAST,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
} from './constants.js';
import type { Family, Route } from './types.js';

/** Size of struct rtmsg. */
export const RTMSG_LEN = 12;

/** A route to add, replace or delete; unset fields take the defaults of `ip route`. */
export type RouteRequest = Partial<Route> & { dst?: string; dstLen: number };

/** How a route request treats an existing route. */
export type RouteOp = 'add' | 'replace' | 'del';

function routeFamily(r: RouteRequest): Family {
  const named = r.dst ?? r.gateway ?? r.src;
  const family = named !== undefined ? ipFamily(named) : (r.family ?? 4);
  for (const a of [r.dst, r.gateway, r.src]) {
    if (a !== undefined && ipFamily(a) !== family) {
      throw new PodnetError('INVALID_ARGUMENT', `encode route: ${a} is not IPv${family} like the rest of the route`);
    }
  }
  if (r.family !== undefined && r.family !== family) {
    throw new PodnetError('INVALID_ARGUMENT', `encode route: family ${r.family} does not match its addresses (IPv${family})`);
  }
  return family;
}

/**
 * RTM_NEWROUTE (`ip route add|replace`) or RTM_DELROUTE (`ip route del`).
 * New routes default to table main, protocol boot, scope universe, type unicast.
 * Deletes leave protocol and type unset and use scope "nowhere" unless given, so
 * they match a route whatever those were, as `ip route del` does.
 * `dst` undefined (with dstLen 0) is the default route.
 */
export function encodeRoute(op: RouteOp, r: RouteRequest, w = new MessageWriter()): Buffer {
  const family = routeFamily(r);
  if (r.dst === undefined && r.dstLen !== 0) throw new PodnetError('INVALID_ARGUMENT', `encode route: prefix length ${r.dstLen} without a destination`);
  const del = op === 'del';
  const table = r.table ?? RT_TABLE_MAIN;
  let flags = NLM_F_REQUEST | NLM_F_ACK;
  if (op === 'add') flags |= NLM_F_CREATE | NLM_F_EXCL;
  if (op === 'replace') flags |= NLM_F_CREATE | NLM_F_REPLACE;
  w.begin(del ? RTM_DELROUTE : RTM_NEWROUTE, flags);
  w.u8(afOf(family))
    .u8(r.dstLen)
    .u8(0)
    .u8(0)
    // Table ids above 255 do not fit rtm_table and travel as RTA_TABLE.
    .u8(table < 256 ? table : RT_TABLE_UNSPEC)
    .u8(r.protocol ?? (del ? 0 : RTPROT_BOOT))
    .u8(r.scope !== undefined ? scopeValue(r.scope) : del ? RT_SCOPE_NOWHERE : 0)
    .u8(r.type ?? (del ? 0 : RTN_UNICAST))
    .u32(r.onlink ? RTNH_F_ONLINK : 0);
  if (r.dst !== undefined) w.attr(RTA_DST, ipToBytes(r.dst));
  if (r.src !== undefined) w.attr(RTA_PREFSRC, ipToBytes(r.src));
  if (r.gateway !== undefined) w.attr(RTA_GATEWAY, ipToBytes(r.gateway));
  if (r.priority !== undefined) w.attrU32(RTA_PRIORITY, r.priority);
  if (table >= 256) w.attrU32(RTA_TABLE, table);
  if (r.oif !== undefined) w.attrU32(RTA_OIF, r.oif);
  return w.finish();
}

/** Filter for route dumps; `table` 0 means every table. */
export interface RouteFilter {
  family?: Family;
  table?: number;
  oif?: number;
}

/** RTM_GETROUTE dump (`ip route show [table T] [dev X]`); the kernel filters under strict checking. */
export function encodeRouteDump(filter: RouteFilter = {}, w = new MessageWriter()): Buffer {
  const table = filter.table ?? RT_TABLE_MAIN;
  w.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
  w.u8(filter.family ? afOf(filter.family) : AF_UNSPEC).u8(0).u8(0).u8(0).u8(table < 256 ? table : RT_TABLE_UNSPEC).u8(0).u8(0).u8(0).u32(0);
  if (table >= 256) w.attrU32(RTA_TABLE, table);
  if (filter.oif !== undefined) w.attrU32(RTA_OIF, filter.oif);
  return w.finish();
}

/** Decodes an RTM_NEWROUTE; undefined for families other than IPv4/IPv6. */
export function decodeRoute(msg: NetlinkMessage): Route | undefined {
  const p = msg.payload;
  if (p.length < RTMSG_LEN) throw new PodnetError('BAD_MESSAGE', `decode route: payload of ${p.length} bytes is shorter than rtmsg`);
  const family = familyOf(p.readUInt8(0));
  if (!family) return undefined;
  const attrs = decodeAttrs(p, RTMSG_LEN);
  const dst = attrs.get(RTA_DST);
  const gateway = attrs.get(RTA_GATEWAY);
  const src = attrs.get(RTA_PREFSRC);
  const oif = getU32(attrs, RTA_OIF);
  const priority = getU32(attrs, RTA_PRIORITY);
  return {
    family,
    ...(dst ? { dst: bytesToIp(dst) } : {}),
    dstLen: p.readUInt8(1),
    ...(gateway ? { gateway: bytesToIp(gateway) } : {}),
    ...(oif !== undefined ? { oif } : {}),
    scope: scopeName(p.readUInt8(6)),
    table: getU32(attrs, RTA_TABLE) ?? p.readUInt8(4),
    protocol: p.readUInt8(5),
    type: p.readUInt8(7),
    onlink: (p.readUInt32LE(8) & RTNH_F_ONLINK) !== 0,
    ...(src ? { src: bytesToIp(src) } : {}),
    ...(priority !== undefined ? { priority } : {}),
  };
}
