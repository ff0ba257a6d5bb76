/** CNI operation metrics: latency by verb and outcome. */
import { Histogram, type Registry } from 'prom-client';

/** Registers podnet_cni_operation_duration_seconds and returns its observer. */
export function cniMetrics(registry: Registry): (verb: string, code: number, seconds: number) => void {
  const h = new Histogram({
    name: 'podnet_cni_operation_duration_seconds',
    help: 'Time the agent spent on a CNI operation, by verb and result (ok or the CNI error code).',
    labelNames: ['verb', 'result'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return (verb, code, seconds) => h.observe({ verb, result: code === 0 ? 'ok' : String(code) }, seconds);
}
