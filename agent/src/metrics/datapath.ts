/**
 * Datapath metrics read from BPF maps at scrape time: per-endpoint traffic,
 * drops by reason and direction, and map fill. Per-CPU counters are summed
 * in collect(); series of deleted endpoints disappear with their counters.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { dropReasonName, type CountersMap } from '../maps/index.js';
import type { BpfMap } from '../libbpf/index.js';

/** Who each endpoint id belongs to, for labels; called once per scrape. */
export type EndpointLabeler = () => Map<number, { namespace: string; pod: string }>;

/** Registers the datapath metric group. */
export function datapathMetrics(registry: Registry, counters: CountersMap, label: EndpointLabeler, maps: () => BpfMap[], opts: { perPod: boolean }): void {
  const registers = [registry];
  // Per-pod labels make a series per pod and direction; a large node can
  // turn them off and keep the node-wide totals by direction.
  const podLabels = opts.perPod ? ['namespace', 'pod', 'direction'] : ['direction'];
  // prom-client serializes metrics in registration order, so the first
  // one's collect() reads the map once and fills the three after it.
  const bytes = new Counter({ name: 'podnet_endpoint_bytes_total', help: 'Bytes forwarded to (ingress) or from (egress) a pod by the datapath.', labelNames: podLabels, registers: [] });
  const drops = new Counter({ name: 'podnet_datapath_drop_packets_total', help: 'Packets the datapath dropped, by reason and direction.', labelNames: ['reason', 'direction'], registers: [] });
  const dropBytes = new Counter({ name: 'podnet_datapath_drop_bytes_total', help: 'Bytes the datapath dropped, by reason and direction.', labelNames: ['reason', 'direction'], registers: [] });
  new Counter({
    name: 'podnet_endpoint_packets_total',
    help: 'Packets forwarded to (ingress) or from (egress) a pod by the datapath.',
    labelNames: podLabels,
    registers,
    collect() {
      for (const m of [this, bytes, drops, dropBytes]) m.reset();
      const owners = label();
      for (const c of counters.readAll()) {
        if (c.reason === 0) {
          const who = owners.get(c.endpointId);
          if (!who) continue; // a deleted endpoint: its series go away
          const l = opts.perPod ? { namespace: who.namespace, pod: who.pod, direction: c.direction } : { direction: c.direction };
          this.inc(l, Number(c.packets));
          bytes.inc(l, Number(c.bytes));
        } else {
          const l = { reason: dropReasonName(c.reason), direction: c.direction };
          drops.inc(l, Number(c.packets));
          dropBytes.inc(l, Number(c.bytes));
        }
      }
    },
  });
  for (const m of [bytes, drops, dropBytes]) registry.registerMetric(m);

  const cap = new Gauge({ name: 'podnet_bpf_map_max_entries', help: 'Capacity of a podnet BPF map.', labelNames: ['map'], registers: [] });
  new Gauge({
    name: 'podnet_bpf_map_entries',
    help: 'Entries in a podnet BPF map (ring buffers excluded).',
    labelNames: ['map'],
    registers,
    collect() {
      this.reset();
      cap.reset();
      for (const m of maps()) {
        if (m.type !== 'ringbuf') this.set({ map: m.name }, m.count());
        cap.set({ map: m.name }, m.maxEntries);
      }
    },
  });
  registry.registerMetric(cap);
}
