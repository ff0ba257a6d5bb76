/** Codecs of every podnet map by name, so tools can decode any pinned map. */
import type { Codec } from '../../libbpf/index.js';
import { ENDPOINTS_MAP, endpointValue, ip4Key } from './endpoints.js';
import { IPAM_MAP, ipamValue } from './ipam.js';
import { COUNTERS_MAP, DIRECTIONS, HOOKS, IFCOUNT_MAP, counterKey, ifKey, traffic } from './counters.js';
import { dropReasonName } from '../gen/drop-reasons.js';

/** How to decode one map's keys and values; per-CPU values are summed field by field. */
export interface KnownMap {
  key: Codec<any>;
  value: Codec<any>;
  perCpu: boolean;
  /** Turns a decoded key into what people read (enum names instead of numbers, no padding). */
  present?: (key: any) => Record<string, unknown>;
}

/** podnet's maps by kernel name. The ring buffer has no keys and is absent. */
export const KNOWN_MAPS: Readonly<Record<string, KnownMap>> = Object.freeze({
  [ENDPOINTS_MAP]: { key: ip4Key, value: endpointValue, perCpu: false },
  [IPAM_MAP]: { key: ip4Key, value: ipamValue, perCpu: false },
  [COUNTERS_MAP]: {
    key: counterKey, value: traffic, perCpu: true,
    present: (k: { endpointId: number; direction: number; reason: number }) => ({
      endpointId: k.endpointId, direction: DIRECTIONS[k.direction] ?? k.direction, reason: dropReasonName(k.reason),
    }),
  },
  [IFCOUNT_MAP]: {
    key: ifKey, value: traffic, perCpu: true,
    present: (k: { ifindex: number; hook: number }) => ({ ifindex: k.ifindex, hook: HOOKS[k.hook] ?? k.hook }),
  },
});
