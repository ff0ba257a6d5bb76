/**
 * Datapath metrics read from BPF maps at scrape time: per-endpoint traffic
 * and drops, node-wide drops by reason and direction, map fill and ring
 * buffer sizes. Per-CPU counters are summed by the source; series of deleted
 * endpoints disappear with their counters.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { DIRECTIONS, DROP_REASONS, dropReasonName, type EndpointCounter } from './enums.js';

/** Who each endpoint id belongs to, for labels; called once per scrape. */
export type EndpointLabeler = () => Map<number, { namespace: string; pod: string }>;

/** What the map gauges need of a BPF map (BpfMap has it). */
export interface MapStat {
  readonly name: string;
  readonly type: string;
  readonly maxEntries: number;
  count(): number;
}

/** What the datapath group reads at scrape time. */
export interface DatapathSource {
  /** Every pn_counters row, summed over CPUs. */
  counters(): EndpointCounter[];
  /** Owners of live endpoints (not those being deleted). */
  owners: EndpointLabeler;
  maps(): MapStat[];
  /** Label traffic and drops with namespace and pod. */
  perPod: boolean;
}

// Ring buffers have no entries to count; their max_entries is a size in bytes.
const RING_BUFFERS = new Set(['ringbuf', 'user_ringbuf']);

/** Registers the datapath metric group. */
export function datapathMetrics(registry: Registry, src: DatapathSource): void {
  const { perPod } = src;
  // Per-pod labels make a series per pod and direction; a large node can
  // turn them off and keep the node-wide totals by direction.
  const podLabels = perPod ? ['namespace', 'pod', 'direction'] : ['direction'];
  // prom-client serializes metrics in registration order, so the first
  // one's collect() reads the map once and fills the ones after it.
  const follow = { registers: [] };
  const bytes = new Counter({ name: 'podnet_endpoint_bytes_total', help: 'Bytes forwarded to (ingress) or from (egress) a pod by the datapath.', labelNames: podLabels, ...follow });
  const drops = new Counter({ name: 'podnet_datapath_drop_packets_total', help: 'Packets the datapath dropped on this node, by reason and direction.', labelNames: ['reason', 'direction'], ...follow });
  const dropBytes = new Counter({ name: 'podnet_datapath_drop_bytes_total', help: 'Bytes the datapath dropped on this node, by reason and direction.', labelNames: ['reason', 'direction'], ...follow });
  const podLabelNames = ['namespace', 'pod', 'reason', 'direction'];
  const podDrops = perPod ? new Counter({ name: 'podnet_endpoint_drop_packets_total', help: 'Packets the datapath dropped from (egress) or to (ingress) a pod, by reason.', labelNames: podLabelNames, ...follow }) : undefined;
  const podDropBytes = perPod ? new Counter({ name: 'podnet_endpoint_drop_bytes_total', help: 'Bytes the datapath dropped from (egress) or to (ingress) a pod, by reason.', labelNames: podLabelNames, ...follow }) : undefined;
  const reasons = DROP_REASONS.filter((r) => r.value !== 0).map((r) => r.name);
  // Deleting an endpoint deletes its pn_counters rows. The node totals must
  // not go down with them (Prometheus would read a counter reset), so the
  // last values of rows that vanished are kept here and added back.
  const retired = new Map<string, { packets: number; bytes: number }>();
  let lastRows = new Map<string, { node: string; packets: number; bytes: number }>();

  new Counter({
    name: 'podnet_endpoint_packets_total',
    help: 'Packets forwarded to (ingress) or from (egress) a pod by the datapath.',
    labelNames: podLabels,
    registers: [registry],
    collect() {
      for (const m of [this, bytes, drops, dropBytes, podDrops, podDropBytes]) m?.reset();
      // Every known reason in both directions from the first scrape, so a
      // first drop is an increase Prometheus sees, not a series appearing.
      for (const reason of reasons) {
        for (const direction of DIRECTIONS) {
          drops.inc({ reason, direction }, 0);
          dropBytes.inc({ reason, direction }, 0);
        }
      }
      const owners = src.owners();
      const rows = new Map<string, { node: string; packets: number; bytes: number }>();
      for (const c of src.counters()) {
        const who = owners.get(c.endpointId);
        if (c.reason === 0) {
          if (!who) continue; // a deleted endpoint: its series go away
          const l = perPod ? { namespace: who.namespace, pod: who.pod, direction: c.direction } : { direction: c.direction };
          this.inc(l, Number(c.packets));
          bytes.inc(l, Number(c.bytes));
          continue;
        }
        const reason = dropReasonName(c.reason);
        const row = { node: `${reason}/${c.direction}`, packets: Number(c.packets), bytes: Number(c.bytes) };
        rows.set(`${c.endpointId}/${row.node}`, row);
        drops.inc({ reason, direction: c.direction }, row.packets);
        dropBytes.inc({ reason, direction: c.direction }, row.bytes);
        if (who && podDrops && podDropBytes) {
          const l = { namespace: who.namespace, pod: who.pod, reason, direction: c.direction };
          podDrops.inc(l, Number(c.packets));
          podDropBytes.inc(l, Number(c.bytes));
        }
      }
      for (const [key, was] of lastRows) {
        const now = rows.get(key);
        // Gone, or smaller than before (the row was deleted and made again).
        if (now && now.packets >= was.packets && now.bytes >= was.bytes) continue;
        const r = retired.get(was.node) ?? { packets: 0, bytes: 0 };
        r.packets += was.packets;
        r.bytes += was.bytes;
        retired.set(was.node, r);
      }
      lastRows = rows;
      for (const [node, r] of retired) {
        const [reason, direction] = node.split('/') as [string, string];
        drops.inc({ reason, direction }, r.packets);
        dropBytes.inc({ reason, direction }, r.bytes);
      }
    },
  });
  for (const m of [bytes, drops, dropBytes, podDrops, podDropBytes]) if (m) registry.registerMetric(m);

  const cap = new Gauge({ name: 'podnet_bpf_map_max_entries', help: 'Capacity of a podnet BPF map in entries (ring buffers excluded).', labelNames: ['map'], ...follow });
  const ringSize = new Gauge({ name: 'podnet_bpf_ringbuf_size_bytes', help: 'Size of a podnet BPF ring buffer.', labelNames: ['map'], ...follow });
  new Gauge({
    name: 'podnet_bpf_map_entries',
    help: 'Entries in a podnet BPF map (ring buffers excluded).',
    labelNames: ['map'],
    registers: [registry],
    collect() {
      for (const m of [this, cap, ringSize]) m.reset();
      for (const m of src.maps()) {
        if (RING_BUFFERS.has(m.type)) {
          ringSize.set({ map: m.name }, m.maxEntries);
        } else {
          this.set({ map: m.name }, m.count());
          cap.set({ map: m.name }, m.maxEntries);
        }
      }
    },
  });
  registry.registerMetric(cap);
  registry.registerMetric(ringSize);
}
