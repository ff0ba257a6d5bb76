/** Endpoint health: how many pod endpoints are in each state. */
import { Gauge, type Registry } from 'prom-client';
import type { EndpointInfo, EndpointState } from '../api/protocol.js';

/** Every endpoint state, each exported even at 0 so alerts need no absent(). */
export const ENDPOINT_STATES: readonly EndpointState[] = ['ready', 'unhealthy', 'deleting'];

/** Registers podnet_endpoints{state}. */
export function endpointMetrics(registry: Registry, endpoints: () => readonly Pick<EndpointInfo, 'state'>[]): void {
  new Gauge({
    name: 'podnet_endpoints',
    help: 'Pod endpoints on this node by health state: ready, unhealthy (a check found a problem it could not repair), deleting (DEL answered, teardown running).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const n = new Map<string, number>(ENDPOINT_STATES.map((s) => [s, 0]));
      for (const e of endpoints()) n.set(e.state, (n.get(e.state) ?? 0) + 1);
      this.reset();
      for (const [state, v] of n) this.set({ state }, v);
    },
  });
}
