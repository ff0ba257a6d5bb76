/**
 * The service load-balancing maps (bpf/include/shared/services.h): layouts,
 * descriptors and default sizes. The model (frontend -> group -> slots ->
 * backend, conntrack, affinity, per-frontend stats, service ranges) is
 * described in the header.
 */
import { be16, ipv4, u16, u32, u64, u8, type BpfMap, type TypedMap } from '../libbpf/index.js';
import { PodnetError } from '../errors/index.js';
import { defineMap, type MapDescriptor } from './descriptor.js';
import { cStruct } from './layout.js';
import { CT_FLAG, decodeCtDir } from './gen/enums.js';

export const svcKey = cStruct('pn_svc_key', 8, {
  addr: ['addr', 0, ipv4],
  port: ['port', 4, be16],
  proto: ['proto', 6, u8],
  pad: ['pad', 7, u8],
});
export const svcValue = cStruct('pn_svc', 24, {
  frontendId: ['frontend_id', 0, u32],
  groupId: ['group_id', 4, u32],
  count: ['count', 8, u32],
  flags: ['flags', 12, u32],
  affinitySeconds: ['affinity_seconds', 16, u32],
  pad: ['pad', 20, u32],
});
export const slotKey = cStruct('pn_slot_key', 8, { groupId: ['group_id', 0, u32], slot: ['slot', 4, u32] });
export const slotValue = cStruct('pn_slot', 4, { backendId: ['backend_id', 0, u32] });
export const backendKey = cStruct('pn_backend_key', 4, { backendId: ['backend_id', 0, u32] });
export const backendValue = cStruct('pn_backend', 8, {
  addr: ['addr', 0, ipv4],
  port: ['port', 4, be16],
  proto: ['proto', 6, u8],
  flags: ['flags', 7, u8],
});
export const ctKey = cStruct('pn_ct_key', 16, {
  saddr: ['saddr', 0, ipv4],
  daddr: ['daddr', 4, ipv4],
  sport: ['sport', 8, be16],
  dport: ['dport', 10, be16],
  proto: ['proto', 12, u8],
  dir: ['dir', 13, u8],
  pad: ['pad', 14, u16],
});
export const ctValue = cStruct('pn_ct_entry', 32, {
  lastSeenNs: ['last_seen_ns', 0, u64],
  backendId: ['backend_id', 8, u32],
  frontendId: ['frontend_id', 12, u32],
  natAddr: ['nat_addr', 16, ipv4],
  origAddr: ['orig_addr', 20, ipv4],
  natPort: ['nat_port', 24, be16],
  flags: ['flags', 26, u8],
  pad: ['pad', 27, u8],
  pad2: ['pad2', 28, u32],
});
/** Conntrack idle timeouts of translated connections, in seconds (load-time constants of bpf/lib/ct.h). */
export interface ConntrackTimeouts {
  /** TCP once the backend has answered. */
  readonly tcp: number;
  /** TCP before the backend's first answer. */
  readonly syn: number;
  /** TCP after a FIN or RST. */
  readonly closing: number;
  /** UDP and every other protocol. */
  readonly other: number;
}

/** The defaults (also the C defaults in bpf/lib/ct.h). */
export const DEFAULT_CT_TIMEOUTS: ConntrackTimeouts = Object.freeze({ tcp: 21600, syn: 60, closing: 10, other: 60 });

/**
 * True when a pn_ct entry is past its idle timeout at `nowNs`
 * (CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns and process.hrtime):
 * the datapath's pn_ct_lookup already treats it as absent. An entry used
 * after `nowNs` (another CPU) is never expired.
 */
export function ctExpired(proto: number, flags: number, lastSeenNs: bigint, nowNs: bigint, t: ConntrackTimeouts): boolean {
  let s = t.other;
  if (proto === IP_PROTO.TCP) s = flags & CT_FLAG.closing ? t.closing : flags & CT_FLAG.seen_reply ? t.tcp : t.syn;
  return nowNs > lastSeenNs && nowNs - lastSeenNs > BigInt(s) * 1_000_000_000n;
}

export const affinityKey = cStruct('pn_affinity_key', 8, { groupId: ['group_id', 0, u32], clientAddr: ['client_addr', 4, ipv4] });
export const affinityValue = cStruct('pn_affinity', 16, {
  lastUsedNs: ['last_used_ns', 0, u64],
  backendId: ['backend_id', 8, u32],
  pad: ['pad', 12, u32],
});
export const svcStatsKey = cStruct('pn_svc_stats_key', 4, { frontendId: ['frontend_id', 0, u32] });
export const svcStatsValue = cStruct('pn_svc_stats', 32, {
  connections: ['connections', 0, u64],
  packets: ['packets', 8, u64],
  bytes: ['bytes', 16, u64],
  noBackend: ['no_backend', 24, u64],
});
// The shape of lpmKey(ipv4) ({ prefixLen, data }), as a layout the BTF check covers.
export const svcRangeKey = cStruct('pn_svc_range_key', 8, { prefixLen: ['prefixlen', 0, u32], data: ['addr', 4, ipv4] });
export const svcRangeValue = cStruct('pn_svc_range', 4, { flags: ['flags', 0, u32] });

/** IP protocol numbers a frontend can carry. */
export const IP_PROTO = Object.freeze({ TCP: 6, UDP: 17, SCTP: 132 });

/** The names of IP_PROTO's numbers, as Services spell them. */
export const IP_PROTO_NAME: Readonly<Record<number, 'TCP' | 'UDP' | 'SCTP'>> = Object.freeze({ [IP_PROTO.TCP]: 'TCP', [IP_PROTO.UDP]: 'UDP', [IP_PROTO.SCTP]: 'SCTP' });

/**
 * Default sizes, for Kubernetes' own limits: 10,000 Services with several
 * frontends each, 100,000 endpoints (a backend per endpoint port, slots
 * for each Local/Cluster scope), conntrack for a busy node.
 */
export const SERVICE_MAP_SIZES = Object.freeze({
  pn_services: 65536,
  pn_svc_slots: 262144,
  pn_backends: 131072,
  pn_ct: 262144,
  pn_affinity: 65536,
  pn_svc_stats: 65536,
  pn_svc_ranges: 64,
});

/** The service maps whose size a node may choose (the others keep their default). */
export const RESIZABLE_SERVICE_MAPS = Object.freeze(['pn_services', 'pn_svc_slots', 'pn_backends', 'pn_ct', 'pn_affinity', 'pn_svc_stats'] as const);
export type ResizableServiceMap = (typeof RESIZABLE_SERVICE_MAPS)[number];

/**
 * max_entries of each resizable service map. The loader sets them on every
 * object before load (so all objects share the pinned maps), and the agent
 * opens the pins against them.
 */
export type ServiceMapSizes = Readonly<Record<ResizableServiceMap, number>>;

/** The defaults, as bpf/lib/maps/services.h declares them. */
export const DEFAULT_SERVICE_MAP_SIZES: ServiceMapSizes = Object.freeze(Object.fromEntries(
  RESIZABLE_SERVICE_MAPS.map((n) => [n, SERVICE_MAP_SIZES[n]]),
) as Record<ResizableServiceMap, number>);

/**
 * Complete service map sizes from the ones given; the rest keep their default.
 * @throws PodnetError INVALID_ARGUMENT for an unknown map or a size that is not an integer in 1..2^31-1.
 */
export function serviceMapSizes(sizes: Partial<Record<string, number>> = {}): ServiceMapSizes {
  const out: Record<string, number> = { ...DEFAULT_SERVICE_MAP_SIZES };
  for (const [name, n] of Object.entries(sizes)) {
    if (n === undefined) continue;
    if (!(RESIZABLE_SERVICE_MAPS as readonly string[]).includes(name)) {
      throw new PodnetError('INVALID_ARGUMENT', `size service map ${name}: not a resizable service map (${RESIZABLE_SERVICE_MAPS.join(', ')})`);
    }
    if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) throw new PodnetError('INVALID_ARGUMENT', `size service map ${name}: ${n} is not an integer in 1..2147483647`);
    out[name] = n;
  }
  return Object.freeze(out) as ServiceMapSizes;
}

/** The descriptor with the configured size when it is a resizable service map; others unchanged. */
export function sizedDescriptor<K, V>(d: MapDescriptor<K, V>, sizes: ServiceMapSizes | undefined): MapDescriptor<K, V> {
  const n = sizes?.[d.name as ResizableServiceMap];
  return n === undefined || n === d.maxEntries ? d : Object.freeze({ ...d, maxEntries: n });
}

export const SERVICES = defineMap({
  name: 'pn_services', type: 'hash', key: svcKey, value: svcValue, maxEntries: SERVICE_MAP_SIZES.pn_services,
  perCpu: false, pinned: true, origin: 'object',
  description: 'frontend {address, port, protocol} -> frontend id, backend group, backend count, flags; written by the service reconciler, read by the LB programs',
});
export const SVC_SLOTS = defineMap({
  name: 'pn_svc_slots', type: 'hash', key: slotKey, value: slotValue, maxEntries: SERVICE_MAP_SIZES.pn_svc_slots,
  perCpu: false, pinned: true, origin: 'object',
  description: '{backend group, slot} -> backend id; written by the service reconciler, read by backend selection',
});
export const BACKENDS = defineMap({
  name: 'pn_backends', type: 'hash', key: backendKey, value: backendValue, maxEntries: SERVICE_MAP_SIZES.pn_backends,
  perCpu: false, pinned: true, origin: 'object',
  description: 'backend id -> endpoint address, port, protocol, flags; written by the service reconciler, read by DNAT',
});
export const CONNTRACK = defineMap({
  name: 'pn_ct', type: 'lru_hash', key: ctKey, value: ctValue, maxEntries: SERVICE_MAP_SIZES.pn_ct,
  perCpu: false, pinned: true, origin: 'object',
  description: 'translated connections, forward and reverse 5-tuples -> backend, frontend, rewrite; written by the LB programs; an idle entry counts as gone and LRU eviction reuses it',
  present: (k: { saddr: string; daddr: string; sport: number; dport: number; proto: number; dir: number }) => ({
    saddr: k.saddr, daddr: k.daddr, sport: k.sport, dport: k.dport, proto: k.proto, dir: decodeCtDir(k.dir, 'pn_ct key dir'),
  }),
});
export const AFFINITY = defineMap({
  name: 'pn_affinity', type: 'lru_hash', key: affinityKey, value: affinityValue, maxEntries: SERVICE_MAP_SIZES.pn_affinity,
  perCpu: false, pinned: true, origin: 'object',
  description: '{backend group, client address} -> backend, last use; sessionAffinity ClientIP, written by the LB programs',
});
export const SVC_STATS = defineMap({
  name: 'pn_svc_stats', type: 'percpu_hash', key: svcStatsKey, value: svcStatsValue, maxEntries: SERVICE_MAP_SIZES.pn_svc_stats,
  perCpu: true, pinned: true, origin: 'object',
  description: 'frontend id -> connections, packets, bytes, no-backend rejects per CPU; written by the LB programs, read by metrics',
});
export const SVC_RANGES = defineMap({
  name: 'pn_svc_ranges', type: 'lpm_trie', key: svcRangeKey, value: svcRangeValue, maxEntries: SERVICE_MAP_SIZES.pn_svc_ranges,
  perCpu: false, pinned: true, origin: 'object',
  description: 'service CIDRs; traffic into one that matches no frontend is dropped and counted; written by the agent',
});

/** The service maps, in a stable order. */
export const SERVICE_MAPS: readonly MapDescriptor<any, any>[] = Object.freeze([SERVICES, SVC_SLOTS, BACKENDS, CONNTRACK, AFFINITY, SVC_STATS, SVC_RANGES]);

/** A frontend key as the codecs take it. */
export type SvcKey = ReturnType<typeof svcKey.decode>;
/** A frontend value as the codecs take it. */
export type SvcValue = ReturnType<typeof svcValue.decode>;
/** One frontend's counters, summed over CPUs. */
export type SvcStats = ReturnType<typeof svcStatsValue.decode>;

/** Sums per-CPU pn_svc_stats values. */
export function sumSvcStats(values: readonly SvcStats[]): SvcStats {
  const s = { connections: 0n, packets: 0n, bytes: 0n, noBackend: 0n };
  for (const v of values) { s.connections += v.connections; s.packets += v.packets; s.bytes += v.bytes; s.noBackend += v.noBackend; }
  return s;
}

/** The open service maps (as NodeMaps names them). */
export interface ServiceMapHandles {
  services: BpfMap; svcSlots: BpfMap; backends: BpfMap; conntrack: BpfMap; affinity: BpfMap; svcStats: BpfMap; svcRanges: BpfMap;
}

/**
 * Typed views of the service maps through their codecs. Does not own the
 * maps. Writers follow the order in bpf/include/shared/services.h: backends,
 * then slots, then the frontend's count.
 */
export class ServiceMaps {
  readonly frontends: TypedMap<SvcKey, SvcValue>;
  readonly slots: TypedMap<ReturnType<typeof slotKey.decode>, ReturnType<typeof slotValue.decode>>;
  readonly backends: TypedMap<ReturnType<typeof backendKey.decode>, ReturnType<typeof backendValue.decode>>;
  readonly conntrack: TypedMap<ReturnType<typeof ctKey.decode>, ReturnType<typeof ctValue.decode>>;
  readonly affinity: TypedMap<ReturnType<typeof affinityKey.decode>, ReturnType<typeof affinityValue.decode>>;
  readonly ranges: TypedMap<ReturnType<typeof svcRangeKey.decode>, ReturnType<typeof svcRangeValue.decode>>;
  private readonly stats: TypedMap<ReturnType<typeof svcStatsKey.decode>, SvcStats>;

  constructor(m: ServiceMapHandles) {
    this.frontends = m.services.typed(svcKey, svcValue);
    this.slots = m.svcSlots.typed(slotKey, slotValue);
    this.backends = m.backends.typed(backendKey, backendValue);
    this.conntrack = m.conntrack.typed(ctKey, ctValue);
    this.affinity = m.affinity.typed(affinityKey, affinityValue);
    this.ranges = m.svcRanges.typed(svcRangeKey, svcRangeValue);
    this.stats = m.svcStats.typed(svcStatsKey, svcStatsValue);
  }

  /** One frontend's counters summed over CPUs; zeros when it has none yet. */
  frontendStats(frontendId: number): SvcStats {
    return sumSvcStats(this.stats.getPerCpu({ frontendId }) ?? []);
  }

  /** Every frontend's counters, summed over CPUs. */
  allStats(): Map<number, SvcStats> {
    const out = new Map<number, SvcStats>();
    for (const [k, v] of this.stats.entriesPerCpu()) out.set(k.frontendId, sumSvcStats(v));
    return out;
  }
}
