/**
 * Every podnet map, derived from the descriptors: the codecs tools decode
 * pinned maps with (KNOWN_MAPS), the pins an agent opens, and creating the
 * maps that no BPF object declares.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PodnetError } from '../errors/index.js';
import { BpfMap, type Codec } from '../libbpf/index.js';
import type { MapDescriptor } from './descriptor.js';
import { ENDPOINTS } from './endpoints.js';
import { IPAM } from './ipam.js';
import { COUNTERS } from './counters.js';
import { EVENTS } from './events.js';
import { AFFINITY, BACKENDS, CONNTRACK, SERVICES, SVC_RANGES, SVC_SLOTS, SVC_STATS, sizedDescriptor, type ServiceMapSizes } from './services.js';
import { SOCK_REV } from './sock.js';

/** Every map of a podnet node, by the name the agent uses for it. */
export const NODE_MAPS = Object.freeze({
  endpoints: ENDPOINTS, ipam: IPAM, counters: COUNTERS, events: EVENTS,
  services: SERVICES, svcSlots: SVC_SLOTS, backends: BACKENDS, conntrack: CONNTRACK, affinity: AFFINITY, svcStats: SVC_STATS, svcRanges: SVC_RANGES,
  sockRev: SOCK_REV,
});

/** The agent's handle on each node map. */
export type NodeMaps = { readonly [K in keyof typeof NODE_MAPS]: BpfMap };

/** All descriptors, in a stable order. */
export const ALL_MAPS: readonly MapDescriptor<any, any>[] = Object.freeze(Object.values(NODE_MAPS));

/** How to decode one map's keys and values; per-CPU values are summed field by field. */
export interface KnownMap {
  key: Codec<any>;
  value: Codec<any>;
  perCpu: boolean;
  /** Turns a decoded key into what people read (enum names instead of numbers, no padding). */
  present?: (key: any) => Record<string, unknown>;
}

/** podnet's maps with keys, by kernel name (ring buffers have none and are absent). */
export const KNOWN_MAPS: Readonly<Record<string, KnownMap>> = Object.freeze(Object.fromEntries(
  ALL_MAPS.filter((d) => d.key && d.value).map((d) => [d.name, {
    key: d.key!, value: d.value!, perCpu: d.perCpu, ...(d.present ? { present: d.present } : {}),
  }]),
));

/** Names of the maps pinned under the agent's bpffs directory. */
export const PINNED_MAPS: readonly string[] = Object.freeze(ALL_MAPS.filter((d) => d.pinned).map((d) => d.name));

/**
 * Opens `<bpffs>/<name>` of a pinned map and checks it is the map the
 * descriptor describes, at the configured size for a resizable service map.
 * @throws SyscallError when nothing is pinned there; PodnetError MAP_MISMATCH when the pinned map differs.
 */
export function openPinnedMap(bpffs: string, desc: MapDescriptor<any, any>, sizes?: ServiceMapSizes): BpfMap {
  const d = sizedDescriptor(desc, sizes);
  const path = join(bpffs, d.name);
  const m = BpfMap.openPinned(path);
  const want = { type: d.type, keySize: d.key?.size ?? 0, valueSize: d.value?.size ?? 0, maxEntries: d.maxEntries };
  const have = { type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries };
  if (JSON.stringify(want) !== JSON.stringify(have)) {
    m.close();
    throw new PodnetError('MAP_MISMATCH', `open map ${path}: pinned map is ${JSON.stringify(have)}, this agent needs ${JSON.stringify(want)}; remove the pin only if its contents can be lost`);
  }
  return m;
}

/**
 * Creates and pins every agent-owned map (origin "agent") that is not
 * pinned yet; an existing pin is kept with its contents. Returns the names
 * it created.
 */
export function createAgentMaps(bpffs: string): string[] {
  const made: string[] = [];
  for (const d of ALL_MAPS) {
    if (d.origin !== 'agent' || !d.pinned || existsSync(join(bpffs, d.name))) continue;
    using m = BpfMap.create({ type: d.type, name: d.name, keySize: d.key?.size ?? 0, valueSize: d.value?.size ?? 0, maxEntries: d.maxEntries });
    m.pin(join(bpffs, d.name));
    made.push(d.name);
  }
  return made;
}

/** Opens every node map from its pin (service maps at `sizes`, default their declared size); all or nothing. */
export function openNodeMaps(bpffs: string, sizes?: ServiceMapSizes): NodeMaps {
  const opened: Partial<Record<keyof typeof NODE_MAPS, BpfMap>> = {};
  try {
    for (const [k, d] of Object.entries(NODE_MAPS) as Array<[keyof typeof NODE_MAPS, MapDescriptor<any, any>]>) opened[k] = openPinnedMap(bpffs, d, sizes);
  } catch (err) {
    for (const m of Object.values(opened)) m.close();
    throw err;
  }
  return opened as NodeMaps;
}
