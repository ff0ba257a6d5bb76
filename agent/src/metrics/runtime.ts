/** Process and Node.js runtime metrics (CPU, memory, fds, event loop lag, GC, heap) from prom-client. */
import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * Registers prom-client's default process_* and nodejs_* metrics on the
 * agent's registry, unprefixed so the usual process dashboards work.
 */
export function runtimeMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
}
