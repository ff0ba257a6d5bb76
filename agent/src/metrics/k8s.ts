/** The Kubernetes source's informers: whether each has synced, watch restarts, relists, errors, the last event. */
import { Counter, Gauge, type Registry } from 'prom-client';

/** What one informer reports at scrape time. */
export interface InformerStat {
  /** The resource it watches, e.g. "nodes". */
  resource: string;
  synced: boolean;
  watchRestarts: number;
  relists: number;
  errors: number;
  /** Unix ms of the last event or bookmark; undefined before the first. */
  lastEventMs: number | undefined;
}

/** Registers the informer group; `informers()` is read at every scrape (empty in standalone mode). */
export function k8sMetrics(registry: Registry, informers: () => InformerStat[]): void {
  const registers = [registry];
  // The informers count; each scrape copies their totals into the series.
  const restarts = new Counter({ name: 'podnet_k8s_watch_restarts_total', help: 'Watches of the API server resumed after they ended or failed, by resource.', labelNames: ['resource'], registers: [] });
  const relists = new Counter({ name: 'podnet_k8s_relists_total', help: 'Lists after the first (410 Gone, or a failed list), by resource.', labelNames: ['resource'], registers: [] });
  const errors = new Counter({ name: 'podnet_k8s_errors_total', help: 'Failed list or watch requests to the API server, by resource.', labelNames: ['resource'], registers: [] });
  const last = new Gauge({ name: 'podnet_k8s_last_event_timestamp_seconds', help: 'Unix time of the last watch event or bookmark, by resource; 0 before the first.', labelNames: ['resource'], registers: [] });
  new Gauge({
    name: 'podnet_k8s_synced', help: '1 once the informer for a resource has completed its first list.', labelNames: ['resource'], registers,
    collect() {
      this.reset();
      for (const m of [restarts, relists, errors, last]) m.reset();
      for (const i of informers()) {
        const l = { resource: i.resource };
        this.set(l, i.synced ? 1 : 0);
        restarts.inc(l, i.watchRestarts);
        relists.inc(l, i.relists);
        errors.inc(l, i.errors);
        last.set(l, i.lastEventMs === undefined ? 0 : i.lastEventMs / 1000);
      }
    },
  });
  // Registered after the gauge whose collect() fills them: prom-client collects in registration order.
  for (const m of [restarts, relists, errors, last]) registry.registerMetric(m);
}
