/**
 * Per-CPU traffic counters: pn_counters ({endpoint, direction, reason} ->
 * packets/bytes, written by the pod programs) and pn_ifcount ({ifindex, hook}
 * -> packets/bytes, written by the counter program). Summed over CPUs at read.
 */
import { u16, u32, u64, u8, type BpfMap, type Codec, type TypedMap } from '../../libbpf/index.js';
import { cStruct } from './layout.js';

export const COUNTERS_MAP = 'pn_counters';
export const IFCOUNT_MAP = 'pn_ifcount';

export const counterKey = cStruct('pn_counter_key', 8, {
  endpointId: ['endpoint_id', 0, u32],
  direction: ['direction', 4, u8],
  reason: ['reason', 5, u8],
  pad: ['pad', 6, u16],
});
export const ifKey = cStruct('pn_if_key', 8, { ifindex: ['ifindex', 0, u32], hook: ['hook', 4, u32] });
export const traffic = cStruct('pn_traffic', 16, { packets: ['packets', 0, u64], bytes: ['bytes', 8, u64] });

/** enum pn_direction */
export const DIRECTIONS = ['ingress', 'egress'] as const;
/** enum pn_hook */
export const HOOKS = ['tc_ingress', 'tc_egress', 'xdp'] as const;

/** Packets and bytes, summed over CPUs. */
export interface Traffic { packets: bigint; bytes: bigint }

function sum(values: Traffic[]): Traffic {
  let packets = 0n, bytes = 0n;
  for (const v of values) { packets += v.packets; bytes += v.bytes; }
  return { packets, bytes };
}

function* summed<K>(t: TypedMap<K, Traffic>): Generator<[K, Traffic]> {
  for (const [k, perCpu] of t.entriesPerCpu()) yield [k, sum(perCpu)];
}

/** One pn_counters row. */
export interface EndpointCounter { endpointId: number; direction: (typeof DIRECTIONS)[number]; reason: number; packets: bigint; bytes: bigint }

/** Reads pn_counters. */
export class CountersMap {
  private readonly t: TypedMap<{ endpointId: number; direction: number; reason: number; pad: number }, Traffic>;
  constructor(readonly map: BpfMap) {
    this.t = map.typed(counterKey, traffic as Codec<Traffic>);
  }
  /** Every counter, summed over CPUs. */
  readAll(): EndpointCounter[] {
    const out: EndpointCounter[] = [];
    for (const [k, v] of summed(this.t)) {
      out.push({ endpointId: k.endpointId, direction: DIRECTIONS[k.direction] ?? 'ingress', reason: k.reason, ...v });
    }
    return out;
  }
  /** Removes every counter of one endpoint (its metrics series go with it). */
  deleteEndpoint(endpointId: number): number {
    const keys = [...this.t.keys()].filter((k) => k.endpointId === endpointId);
    for (const k of keys) this.t.delete(k);
    return keys.length;
  }
}

/** One pn_ifcount row. */
export interface InterfaceCounter { ifindex: number; hook: (typeof HOOKS)[number]; packets: bigint; bytes: bigint }

/** Reads pn_ifcount. */
export class IfCountMap {
  private readonly t: TypedMap<{ ifindex: number; hook: number }, Traffic>;
  constructor(readonly map: BpfMap) {
    this.t = map.typed(ifKey, traffic as Codec<Traffic>);
  }
  /** Every interface counter, summed over CPUs. */
  readAll(): InterfaceCounter[] {
    const out: InterfaceCounter[] = [];
    for (const [k, v] of summed(this.t)) out.push({ ifindex: k.ifindex, hook: HOOKS[k.hook] ?? 'tc_ingress', ...v });
    return out;
  }
}
