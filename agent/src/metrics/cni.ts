/** CNI metrics: latency by verb and outcome, and the DEL queue. */
import { Gauge, Histogram, type Registry } from 'prom-client';

/** Records one CNI operation: verb, CNI error code (0 = ok), seconds spent. */
export type CniObserver = (verb: string, code: number, seconds: number) => void;

/** Registers podnet_cni_operation_duration_seconds and podnet_cni_del_queue_requests; returns the CNI observer. */
export function cniMetrics(registry: Registry, delQueueDepth: () => number): CniObserver {
  const registers = [registry];
  const h = new Histogram({
    name: 'podnet_cni_operation_duration_seconds',
    help: 'Time the agent spent on a CNI operation, by verb and result (ok or the CNI error code).',
    labelNames: ['verb', 'result'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  new Gauge({
    name: 'podnet_cni_del_queue_requests',
    help: 'CNI DEL requests recorded in the state directory and not yet carried out.',
    registers,
    collect() { this.set(delQueueDepth()); },
  });
  return (verb, code, seconds) => h.observe({ verb, result: code === 0 ? 'ok' : String(code) }, seconds);
}
