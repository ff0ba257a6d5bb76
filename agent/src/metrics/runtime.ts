/** Process and Node.js runtime metrics (CPU, memory, fds, event loop lag, GC, heap) from prom-client. */
import { collectDefaultMetrics, type Registry } from 'prom-client';

// Gauges named like counters, which promtool's lint rejects; each is the
// sum of the per-type gauge of the same name without _total, which stays.
const MISNAMED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * Registers prom-client's default process_* and nodejs_* metrics on the
 * agent's registry, unprefixed so the usual process dashboards work.
 */
export function runtimeMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED) registry.removeSingleMetric(name);
}
