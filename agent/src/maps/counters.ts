/**
 * pn_counters: per-CPU {endpoint, direction, reason} -> packets/bytes,
 * written by the pod programs, summed over CPUs at read.
 */
import { u16, u32, u64, u8, type BpfMap, type Codec, type TypedMap } from '../libbpf/index.js';
import { defineMap } from './descriptor.js';
import { cStruct } from './layout.js';
import { decodeDirection, type DirectionName } from './gen/enums.js';
import { decodeDropReason } from './gen/drop-reasons.js';

export const counterKey = cStruct('pn_counter_key', 8, {
  endpointId: ['endpoint_id', 0, u32],
  direction: ['direction', 4, u8],
  reason: ['reason', 5, u8],
  pad: ['pad', 6, u16],
});
export const traffic = cStruct('pn_traffic', 16, { packets: ['packets', 0, u64], bytes: ['bytes', 8, u64] });

/** Packets and bytes, summed over CPUs. */
export interface Traffic { packets: bigint; bytes: bigint }

type CounterKey = { endpointId: number; direction: number; reason: number; pad: number };

/** The pn_counters descriptor (bpf/lib/maps/counters.h). */
export const COUNTERS = defineMap({
  name: 'pn_counters',
  type: 'percpu_hash',
  key: counterKey,
  value: traffic as Codec<Traffic>,
  maxEntries: 16384,
  perCpu: true,
  pinned: true,
  origin: 'object',
  description: '{endpoint, direction, reason} -> packets/bytes per CPU; written by the pod programs, read by metrics at scrape time',
  present: (k: CounterKey) => ({
    endpointId: k.endpointId,
    direction: decodeDirection(k.direction, 'pn_counters key direction'),
    reason: decodeDropReason(k.reason, 'pn_counters key reason'),
  }),
});
export const COUNTERS_MAP = COUNTERS.name;

/** Sums per-CPU traffic values. */
export function sumTraffic(values: Traffic[]): Traffic {
  let packets = 0n, bytes = 0n;
  for (const v of values) { packets += v.packets; bytes += v.bytes; }
  return { packets, bytes };
}

/** One pn_counters row. */
export interface EndpointCounter { endpointId: number; direction: DirectionName; reason: number; packets: bigint; bytes: bigint }

/** Reads pn_counters. */
export class CountersMap {
  private readonly t: TypedMap<CounterKey, Traffic>;
  constructor(readonly map: BpfMap) {
    this.t = map.typed(counterKey, traffic as Codec<Traffic>);
  }
  /** Every counter, summed over CPUs. Throws PodnetError BAD_ENUM on a direction this build does not know. */
  readAll(): EndpointCounter[] {
    const out: EndpointCounter[] = [];
    for (const [k, perCpu] of this.t.entriesPerCpu()) {
      out.push({ endpointId: k.endpointId, direction: decodeDirection(k.direction, 'pn_counters key direction'), reason: k.reason, ...sumTraffic(perCpu) });
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
