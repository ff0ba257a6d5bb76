/**
 * The wire protocol between the CNI entry point / CLI and the agent:
 * JSON over HTTP/1.1 on the agent's unix socket. Types only (plus the CNI
 * codes from cni-error.ts), so the thin CNI entry point can import it without
 * pulling in any agent code (its bundle admits these shared files from
 * outside cni/src, see cni/build.mjs).
 *
 * Routes (all JSON bodies, `Content-Type: application/json`):
 *   POST /v1/cni/add    CniAddRequest     -> 200 CniResult | 4xx/5xx CniErrorBody
 *   POST /v1/cni/del    CniDelRequest     -> 200 {}        | CniErrorBody
 *   POST /v1/cni/check  CniCheckRequest   -> 200 {}        | CniErrorBody
 *   POST /v1/cni/gc     CniGcRequest      -> 200 {}        | CniErrorBody
 *   GET  /v1/cni/status                   -> 200 {}        | CniErrorBody (code 50 when not ready)
 *   GET  /v1/status                       -> AgentStatus
 *   GET  /v1/endpoints                    -> EndpointInfo[]
 *   GET  /v1/ipam                         -> IpamInfo
 *   GET  /v1/services                     -> ServicesInfo
 */

/** Version of this protocol; the agent rejects other major versions. */
export const API_VERSION = 1;

/** The parts of a CNI invocation the agent needs, already validated by the entry point. */
export interface CniCommon {
  containerId: string;
  /** CNI_NETNS: path of the pod's network namespace. */
  netns: string;
  /** CNI_IFNAME inside the pod. */
  ifName: string;
  /** CNI_ARGS as key/value pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, ...). */
  args: Record<string, string>;
  /** The network name from the config (`name`). */
  network: string;
  /** The requested cniVersion; the agent answers in 1.1.0 shape, the entry point converts. */
  cniVersion: string;
  /** Optional per-network MTU from the config. */
  mtu?: number;
  /**
   * runtimeConfig.portMappings as the runtime sent it (ADD and CHECK);
   * the agent validates it (see endpoints/host-ports.ts).
   */
  portMappings?: unknown;
}

/** One validated host port of a pod (CNI portMappings entry). */
export interface HostPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  /** An IPv4 address, or 0.0.0.0 for every address of the node. */
  hostIP: string;
}

export type CniAddRequest = CniCommon;
export type CniDelRequest = Omit<CniCommon, 'netns'> & { netns?: string };
export interface CniCheckRequest extends CniCommon {
  /** The prevResult from the config, normalised to 1.x shape. */
  prevResult: CniResult;
}
export interface CniGcRequest {
  network: string;
  cniVersion: string;
  /** cni.dev/valid-attachments: everything else is released. */
  validAttachments: Array<{ containerId: string; ifName: string }>;
}

/** CNI 1.x result shape. */
export interface CniResult {
  cniVersion: string;
  interfaces: Array<{ name: string; mac?: string; mtu?: number; sandbox?: string }>;
  ips: Array<{ address: string; gateway?: string; interface?: number }>;
  routes: Array<{ dst: string; gw?: string }>;
  dns: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

/** A CNI error as the spec prints it; `code` is the CNI error code. */
export interface CniErrorBody {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

/** CNI error codes: defined with the CNI error in the shared cni-error.ts. */
export { CniErrorCode } from './cni-error.js';

/** The outcome of the last reconcile pass (at start and then periodically). */
export interface ReconcileOutcome {
  /** ISO time the pass finished. */
  at: string;
  /** ok: nothing to do; repaired: something was fixed; failed: at least one endpoint could not be repaired. */
  result: 'ok' | 'repaired' | 'failed';
  repaired: number;
  removed: number;
  failed: number;
}

/** What `podnet status` shows. */
export interface AgentStatus {
  version: string;
  nodeName: string;
  ready: boolean;
  /** Why the agent is not ready (absent when ready). */
  notReadyReason?: string;
  datapathMode: 'tcx' | 'clsact';
  /** How traffic between pods of the node travels (--host-routing resolved); absent from agents before it existed. */
  hostRouting?: 'bpf' | 'kernel';
  bpffs: string;
  podCidr: string;
  ipam: { size: number; used: number; free: number };
  endpoints: number;
  /** Endpoints whose last health check found a problem. */
  endpointsUnhealthy: number;
  /** The last reconcile pass, or null before the first one finished. */
  lastReconcile: ReconcileOutcome | null;
  uptimeSeconds: number;
}

/** One pod endpoint as the agent stores it (its labels file). */
export interface EndpointRecord {
  endpointId: number;
  containerId: string;
  ifName: string;
  podNamespace?: string;
  podName?: string;
  ip: string;
  hostIfName: string;
  hostIfIndex: number;
  podMac: string;
  hostMac: string;
  netns: string;
  created: string;
  /** Host ports (CNI portMappings) the pod holds; absent when none. */
  hostPorts?: HostPortMapping[];
}

/**
 * Health of an endpoint: `ready` (everything ADD made is in place),
 * `unhealthy` (the last check found problems it could not repair; see
 * `problems`), `deleting` (DEL answered, teardown still running).
 */
export type EndpointState = 'ready' | 'unhealthy' | 'deleting';

/** One pod endpoint as `podnet endpoints` shows it: the stored record plus its health. */
export interface EndpointInfo extends EndpointRecord {
  state: EndpointState;
  /** What the last check found wrong; empty when ready. */
  problems: string[];
}

/** What `podnet ipam` shows. */
export interface IpamInfo {
  pool: string;
  size: number;
  used: number;
  free: number;
  allocations: Array<{ ip: string; containerId: string; ifName: string; created: string }>;
}

/** Counters of one frontend from pn_svc_stats, summed over CPUs. */
export interface ServiceStatsInfo {
  connections: number;
  packets: number;
  bytes: number;
  /** New connections rejected for want of a backend. */
  noBackend: number;
}

/** One frontend as pn_services holds it. */
export interface ServiceFrontendInfo {
  id: number;
  /** ClusterIP, NodePort, ExternalIP, LoadBalancer, HostPort; "unknown" for an entry the agent did not write. */
  kind: string;
  address: string;
  port: number;
  protocol: string;
  /** Backends new connections may pick (slots 0..count-1); 0 rejects. */
  count: number;
  /** pn_svc.flags by name: affinity, local, nodeport, external. */
  flags: string[];
  /** sessionAffinity ClientIP timeout; null without affinity. */
  affinitySeconds: number | null;
  stats: ServiceStatsInfo;
}

/** One backend of a group as pn_svc_slots and pn_backends hold it. */
export interface ServiceBackendInfo {
  id: number;
  address: string;
  port: number;
  protocol: string;
  /** ready, or terminating (serving while no ready endpoint is left). */
  state: 'ready' | 'terminating';
  /** An endpoint on this node. */
  local: boolean;
}

/** The frontends of one Service port and scope, and the backends they share (one group). */
export interface ServicePortInfo {
  groupId: number;
  /** The Service port's name ("" when unnamed). */
  portName: string;
  protocol: string;
  /** cluster: every endpoint; local: this node's only (a Local traffic policy). */
  scope: 'cluster' | 'local';
  frontends: ServiceFrontendInfo[];
  /** The backends of slots 0..count-1, in slot order. */
  backends: ServiceBackendInfo[];
  /** What is inconsistent in the maps (a slot that names no backend); empty when all is well. */
  problems: string[];
}

/** One Service as the maps hold it, named by the agent. */
export interface ServiceInfo {
  /** Empty for frontends the agent did not write (left by another agent, or written by hand). */
  namespace: string;
  name: string;
  /** "hostport": not a Service but the host ports of the pod namespace/name (its container id without a pod name); absent for Services. */
  kind?: 'hostport';
  ports: ServicePortInfo[];
}

/** The outcome of the last Service reconcile pass. */
export interface ServiceReconcileInfo {
  at: string;
  result: 'ok' | 'changed' | 'failed';
  seconds: number;
  errors: string[];
}

/** What `podnet services` shows. */
export interface ServicesInfo {
  /** --services on. */
  enabled: boolean;
  /** Whether the Service source has delivered its first full state. */
  synced: boolean;
  /** The source's last error, if any. */
  sourceError: string | null;
  /** Service CIDRs in pn_svc_ranges. */
  ranges: string[];
  lastReconcile: ServiceReconcileInfo | null;
  services: ServiceInfo[];
}
