/**
 * Service metrics: per-Service connections, packets, bytes and no-backend
 * rejects from pn_svc_stats (per frontend and CPU, summed per Service at
 * scrape time), fill of every service map, and the reconciler's passes:
 * duration, result, and entries refused because a map was full.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** One frontend's counters and the Service it belongs to. */
export interface ServiceFrontendStat {
  frontendId: number;
  /** "namespace/name". */
  service: string;
  connections: bigint;
  packets: bigint;
  bytes: bigint;
  noBackend: bigint;
}

/** Fill of one service map. */
export interface ServiceMapFill {
  map: string;
  entries: number;
  capacity: number;
}

/** What the Service group reads at scrape time. */
export interface ServiceMetricsSource {
  /** Counters of every frontend the agent has a name for. */
  frontends(): ServiceFrontendStat[];
  /** Every service map with its entries and capacity. */
  maps(): ServiceMapFill[];
  /** The conntrack sweeps so far: entries removed in all, and how long the last one took. */
  conntrackSweeps?(): { removed: number; last: { seconds: number } | undefined };
}

/** One finished reconcile pass. */
export interface ServiceReconcileSample {
  result: 'ok' | 'changed' | 'failed';
  seconds: number;
  /** Entries refused because the map was full, by map. */
  full: Partial<Record<string, number>>;
}

/** Records one finished Service reconcile pass. */
export type ServiceReconcileObserver = (s: ServiceReconcileSample) => void;

const RESULTS = ['ok', 'changed', 'failed'] as const;

/** The service maps every series exists for from the first scrape. */
export const SERVICE_MAPS = ['pn_services', 'pn_svc_slots', 'pn_backends', 'pn_ct', 'pn_affinity', 'pn_svc_stats', 'pn_svc_ranges'] as const;

const split = (service: string): { namespace: string; service: string } => {
  const i = service.indexOf('/');
  return { namespace: service.slice(0, i), service: service.slice(i + 1) };
};

/** Registers the Service group and returns the reconcile observer. */
export function serviceMetrics(registry: Registry, src: ServiceMetricsSource): ServiceReconcileObserver {
  const registers = [registry];
  const labels = ['namespace', 'service'];
  const follow = { registers: [] };
  const packets = new Counter({ name: 'podnet_service_packets_total', help: 'Packets translated towards a backend of a Service, all its frontends summed.', labelNames: labels, ...follow });
  const bytes = new Counter({ name: 'podnet_service_bytes_total', help: 'Bytes translated towards a backend of a Service, all its frontends summed.', labelNames: labels, ...follow });
  const noBackend = new Counter({ name: 'podnet_service_no_backend_total', help: 'New connections to a Service rejected (TCP reset, ICMP unreachable) because it had no backend.', labelNames: labels, ...follow });
  // A removed frontend takes its pn_svc_stats row with it; while its Service
  // lives on, the last values stay in the sums so the counters never go down.
  const retired = new Map<string, { connections: bigint; packets: bigint; bytes: bigint; noBackend: bigint }>();
  let last = new Map<number, ServiceFrontendStat>();
  new Counter({
    name: 'podnet_service_connections_total', help: 'New connections (or UDP flows) translated to a backend of a Service, all its frontends summed.', labelNames: labels, registers,
    collect() {
      for (const m of [this, packets, bytes, noBackend]) m.reset();
      const now = new Map<number, ServiceFrontendStat>();
      const sums = new Map<string, { connections: bigint; packets: bigint; bytes: bigint; noBackend: bigint }>();
      for (const f of src.frontends()) {
        now.set(f.frontendId, f);
        const s = sums.get(f.service) ?? { connections: 0n, packets: 0n, bytes: 0n, noBackend: 0n };
        s.connections += f.connections; s.packets += f.packets; s.bytes += f.bytes; s.noBackend += f.noBackend;
        sums.set(f.service, s);
      }
      for (const [id, was] of last) {
        const cur = now.get(id);
        if (cur && cur.service === was.service && cur.connections >= was.connections && cur.packets >= was.packets) continue;
        if (!sums.has(was.service)) continue; // the Service is gone: its series go
        const r = retired.get(was.service) ?? { connections: 0n, packets: 0n, bytes: 0n, noBackend: 0n };
        r.connections += was.connections; r.packets += was.packets; r.bytes += was.bytes; r.noBackend += was.noBackend;
        retired.set(was.service, r);
      }
      for (const k of retired.keys()) if (!sums.has(k)) retired.delete(k);
      last = now;
      for (const [svc, s] of sums) {
        const r = retired.get(svc);
        const l = split(svc);
        this.inc(l, Number(s.connections + (r?.connections ?? 0n)));
        packets.inc(l, Number(s.packets + (r?.packets ?? 0n)));
        bytes.inc(l, Number(s.bytes + (r?.bytes ?? 0n)));
        noBackend.inc(l, Number(s.noBackend + (r?.noBackend ?? 0n)));
      }
    },
  });
  for (const m of [packets, bytes, noBackend]) registry.registerMetric(m);

  const entries = new Gauge({ name: 'podnet_service_map_entries', help: 'Entries in a service map.', labelNames: ['map'], ...follow });
  const capacity = new Gauge({ name: 'podnet_service_map_max_entries', help: 'Capacity of a service map (set by --lb-map-size, --ct-map-size).', labelNames: ['map'], ...follow });
  new Gauge({
    name: 'podnet_service_map_pressure_ratio', help: 'Entries of a service map over its capacity; at 1 new Services, backends or connections are refused.', labelNames: ['map'], registers,
    collect() {
      for (const m of [this, entries, capacity]) m.reset();
      for (const m of src.maps()) {
        this.set({ map: m.map }, m.capacity > 0 ? m.entries / m.capacity : 0);
        entries.set({ map: m.map }, m.entries);
        capacity.set({ map: m.map }, m.capacity);
      }
    },
  });
  registry.registerMetric(entries);
  registry.registerMetric(capacity);

  new Counter({
    name: 'podnet_service_conntrack_swept_total', help: 'pn_ct entries the agent removed because they were idle past their timeout (the datapath already ignored them).', registers,
    collect() {
      this.reset();
      this.inc(src.conntrackSweeps?.().removed ?? 0);
    },
  });
  new Gauge({
    name: 'podnet_service_conntrack_sweep_seconds', help: 'How long the last sweep of pn_ct took (it runs every reconcile interval).', registers,
    collect() {
      this.set(src.conntrackSweeps?.().last?.seconds ?? 0);
    },
  });

  const runs = new Counter({ name: 'podnet_service_reconcile_runs_total', help: 'Service reconcile passes by result: ok (nothing to write), changed, failed (a write was refused).', labelNames: ['result'], registers });
  for (const result of RESULTS) runs.inc({ result }, 0);
  const duration = new Histogram({
    name: 'podnet_service_reconcile_duration_seconds', help: 'Time a Service reconcile pass took, from snapshot to maps written.', registers,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const full = new Counter({ name: 'podnet_service_map_full_errors_total', help: 'Service map entries the reconciler could not write because the map was full; raise --lb-map-size.', labelNames: ['map'], registers });
  for (const map of SERVICE_MAPS) full.inc({ map }, 0);
  return (s) => {
    runs.inc({ result: s.result });
    duration.observe(s.seconds);
    for (const [map, n] of Object.entries(s.full)) if (n) full.inc({ map }, n);
  };
}
