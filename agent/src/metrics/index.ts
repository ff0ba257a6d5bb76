/**
 * podnet's Prometheus metrics: an explicit registry, one file per metric
 * group. The groups read narrow sources the agent passes in (functions, not
 * the agent itself) and hand back observers for events the agent reports.
 */
import { Registry } from 'prom-client';
import type { EndpointInfo, ReconcileOutcome } from '../api/protocol.js';
import { VERSION } from '../version.js';
import { agentMetrics } from './agent.js';
import { apiMetrics, type ApiErrorObserver } from './api.js';
import { cniMetrics, type CniObserver } from './cni.js';
import { datapathMetrics, type MapStat } from './datapath.js';
import type { EndpointCounter } from './enums.js';
import { endpointMetrics } from './endpoints.js';
import { reconcileMetrics, type ReconcileObserver } from './reconcile.js';
import { runtimeMetrics } from './runtime.js';
import { k8sMetrics, type InformerStat } from './k8s.js';
import { serviceMetrics, type ServiceMetricsSource, type ServiceReconcileObserver } from './services.js';

export { MetricsServer } from './server.js';
export { ENDPOINT_STATES } from './endpoints.js';
export { UNMATCHED_ROUTE } from './api.js';
export type { MapStat } from './datapath.js';
export type { InformerStat } from './k8s.js';
export type { ServiceFrontendStat, ServiceMapFill, ServiceMetricsSource, ServiceReconcileObserver, ServiceReconcileSample } from './services.js';

/** What the metrics read from the agent; each function is called at scrape time. */
export interface MetricsSources {
  /** True while the agent serves CNI requests. */
  ready(): boolean;
  /** Datapath attach mode: tcx or clsact. */
  mode(): string;
  /** Host routing: bpf or kernel (resolved --host-routing). */
  hostRouting(): string;
  /** Every endpoint with its health, including those being deleted. */
  endpoints(): EndpointInfo[];
  /** Pod CIDR usage. */
  ipam(): { used: number; free: number };
  /** The last finished reconcile pass, or null before the first. */
  lastReconcile(): ReconcileOutcome | null;
  /** DEL requests recorded and not yet carried out. */
  delQueueDepth(): number;
  /** podnet's BPF maps (ring buffers included; they are reported apart). */
  maps(): MapStat[];
  /** pn_counters rows summed over CPUs. */
  counters(): EndpointCounter[];
  /** Label traffic and drop metrics with namespace and pod (--metrics-pod-labels). */
  perPodLabels: boolean;
  /** Reported in podnet_agent_info (default: this build's version). */
  version?: string;
  /** The Kubernetes source's informers; absent in standalone mode. */
  informers?(): InformerStat[];
  /** Service counters and map fill; empty while Services are off. */
  services?: ServiceMetricsSource;
}

/** The agent's registry and the observers the agent feeds. */
export interface AgentMetrics {
  registry: Registry;
  /** Call once per CNI request the agent answered. */
  observeCni: CniObserver;
  /** Call once per API request answered with status >= 400; route is the matched route key, undefined when none matched. */
  observeApiError: ApiErrorObserver;
  /** Call once per finished reconcile pass. */
  observeReconcile: ReconcileObserver;
  /** Call once per finished Service reconcile pass. */
  observeServiceReconcile: ServiceReconcileObserver;
}

/** Builds the registry for one agent. */
export function createMetrics(src: MetricsSources): AgentMetrics {
  const registry = new Registry();
  agentMetrics(registry, { ready: () => src.ready(), mode: () => src.mode(), hostRouting: () => src.hostRouting(), ipam: () => src.ipam(), version: src.version ?? VERSION });
  endpointMetrics(registry, () => src.endpoints());
  const observeReconcile = reconcileMetrics(registry, () => src.lastReconcile());
  const observeCni = cniMetrics(registry, () => src.delQueueDepth());
  const observeApiError = apiMetrics(registry);
  datapathMetrics(registry, {
    counters: () => src.counters(),
    owners: () => new Map(src.endpoints().filter((e) => e.state !== 'deleting').map((e) => [e.endpointId, { namespace: e.podNamespace ?? '', pod: e.podName ?? e.containerId.slice(0, 12) }])),
    maps: () => src.maps(),
    perPod: src.perPodLabels,
  });
  k8sMetrics(registry, () => src.informers?.() ?? []);
  const observeServiceReconcile = serviceMetrics(registry, src.services ?? { frontends: () => [], maps: () => [] });
  runtimeMetrics(registry);
  return { registry, observeCni, observeApiError, observeReconcile, observeServiceReconcile };
}
