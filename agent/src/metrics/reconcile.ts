/** Reconcile outcome: runs by result, what they repaired, how long they took, when the last one finished. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ReconcileOutcome } from '../api/protocol.js';

const RESULTS: readonly ReconcileOutcome['result'][] = ['ok', 'repaired', 'failed'];
const ACTIONS = ['repaired', 'removed', 'failed'] as const;

/** Records one finished reconcile pass and how long it took. */
export type ReconcileObserver = (outcome: ReconcileOutcome, seconds: number) => void;

/**
 * Registers the reconcile group and returns its observer. The last-run
 * timestamp is read from `last()` at scrape time, so it agrees with
 * `podnet status` even for a pass that ran before the registry existed.
 */
export function reconcileMetrics(registry: Registry, last: () => ReconcileOutcome | null): ReconcileObserver {
  const registers = [registry];
  const runs = new Counter({ name: 'podnet_reconcile_runs_total', help: 'Reconcile passes by result: ok (nothing to do), repaired, failed (an endpoint could not be repaired).', labelNames: ['result'], registers });
  for (const result of RESULTS) runs.inc({ result }, 0);
  const endpoints = new Counter({ name: 'podnet_reconcile_endpoints_total', help: 'Endpoints reconcile passes repaired, removed (their pod was gone) or failed to repair.', labelNames: ['action'], registers });
  for (const action of ACTIONS) endpoints.inc({ action }, 0);
  const duration = new Histogram({
    name: 'podnet_reconcile_duration_seconds', help: 'Time a reconcile pass took.', registers,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  new Gauge({
    name: 'podnet_reconcile_last_run_timestamp_seconds', help: 'Unix time the last reconcile pass finished; 0 before the first one.', registers,
    collect() {
      const at = last()?.at;
      const ms = at === undefined ? NaN : Date.parse(at);
      this.set(Number.isFinite(ms) ? ms / 1000 : 0);
    },
  });
  return (outcome, seconds) => {
    runs.inc({ result: outcome.result });
    for (const action of ACTIONS) endpoints.inc({ action }, outcome[action]);
    duration.observe(seconds);
  };
}
