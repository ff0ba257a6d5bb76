/** podnet's Prometheus metrics: an explicit registry, one file per metric group. */
import { Registry } from 'prom-client';
import type { CountersMap } from '../maps/index.js';
import type { Agent } from '../agent.js';
import { VERSION } from '../version.js';
import { agentMetrics } from './agent.js';
import { cniMetrics } from './cni.js';
import { datapathMetrics } from './datapath.js';

export { MetricsServer } from './server.js';

/** The agent's registry and the observers other modules feed. */
export interface AgentMetrics {
  registry: Registry;
  observeCni: (verb: string, code: number, seconds: number) => void;
}

/** Builds the registry for one agent. */
export function createMetrics(src: { agent: Agent; counters: CountersMap }): AgentMetrics {
  const registry = new Registry();
  const { agent } = src;
  agentMetrics(registry, {
    ready: () => agent.status().ready,
    endpoints: () => agent.endpoints.list().length,
    ipam: () => agent.ipam.usage(),
    version: VERSION,
    mode: () => agent.datapath.mode,
  });
  const observeCni = cniMetrics(registry);
  datapathMetrics(
    registry,
    src.counters,
    () => new Map(agent.endpoints.list().map((m) => [m.endpointId, { namespace: m.podNamespace ?? '', pod: m.podName ?? m.containerId.slice(0, 12) }])),
    () => Object.values(agent.datapath.maps),
    { perPod: agent.cfg.metricsPodLabels },
  );
  return { registry, observeCni };
}
