/**
 * A BPF map described once: its kernel name, type, key/value codecs and who
 * creates it. The registry (registry.ts) derives everything else from these
 * descriptors: the codecs `podnet maps dump` decodes with, the pin list the
 * agent opens, the maps metrics report on.
 */
import { PodnetError } from '../errors/index.js';
import { isPerCpuMapType, mapTypeId, type Codec, type MapType } from '../libbpf/index.js';

/** Where a map comes from: declared in a BPF object (libbpf pins it by name) or created by the agent from the descriptor. */
export type MapOrigin = 'object' | 'agent';

/** One podnet BPF map. */
export interface MapDescriptor<K = unknown, V = unknown> {
  /** Kernel name, also the pin name under the bpffs directory: `pn_` and at most 15 characters. */
  readonly name: string;
  readonly type: MapType;
  /** Key codec; absent for ring buffers. */
  readonly key?: Codec<K>;
  /** Value codec (one CPU's value for per-CPU maps); absent for ring buffers. */
  readonly value?: Codec<V>;
  /** max_entries (bytes for a ring buffer). */
  readonly maxEntries: number;
  /** Values are per CPU and summed at read time. */
  readonly perCpu: boolean;
  /** Pinned under the agent's bpffs directory, so it outlives the agent. */
  readonly pinned: boolean;
  readonly origin: MapOrigin;
  /** Who writes it and who reads it. */
  readonly description: string;
  /** Turns a decoded key into what people read (enum names instead of numbers, no padding). Throws on values this build does not know. */
  readonly present?: (key: K) => Record<string, unknown>;
}

/**
 * Checks and freezes a descriptor.
 * @throws PodnetError EINVAL when the name is too long or perCpu contradicts the type.
 */
export function defineMap<K, V>(d: MapDescriptor<K, V>): MapDescriptor<K, V> {
  // The kernel keeps 16 bytes of name, NUL included.
  if (!/^pn_[a-z0-9_]{1,12}$/.test(d.name)) throw new PodnetError('INVALID_ARGUMENT', `define map ${d.name}: the name must be pn_ and at most 15 characters of [a-z0-9_]`);
  mapTypeId(d.type);
  if (isPerCpuMapType(d.type) !== d.perCpu) throw new PodnetError('INVALID_ARGUMENT', `define map ${d.name}: perCpu ${d.perCpu} contradicts type ${d.type}`);
  if ((d.key === undefined) !== (d.type === 'ringbuf')) throw new PodnetError('INVALID_ARGUMENT', `define map ${d.name}: only a ring buffer has no key codec`);
  return Object.freeze({ ...d });
}
