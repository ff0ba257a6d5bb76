/**
 * The read commands (status, endpoints, ipam, version): ask the agent's API
 * and print a table or JSON. Light on purpose: node:http and the API types
 * only, so `podnet status` starts about as fast as node itself (the bundle
 * test checks that this code pulls in no FFI, logger, metrics or yargs).
 *
 * JSON output has a stable shape: every field is always present with one
 * type, null where there is no value.
 */
import { apiCall } from '../api/client.js';
import type { AgentStatus, EndpointInfo, EndpointState, IpamInfo, ServiceInfo, ServicesInfo } from '../api/protocol.js';
import { VERSION } from '../version.js';
import { print, table, type OutputFormat } from './output.js';

/** Where a read command writes (stdout in the CLI, a buffer in tests). */
export type Out = (s: string) => void;

/** What every read command needs. */
export interface ReadOptions {
  apiSocket: string;
  output: OutputFormat;
  out?: Out;
}

/** The states `--state` accepts (the agent's endpoint states). */
export const ENDPOINT_STATES: readonly EndpointState[] = ['ready', 'unhealthy', 'deleting'];

/** `podnet status` in JSON: the agent's status with every field always present (null where it has no value). */
export type StatusJson = Omit<AgentStatus, 'notReadyReason' | 'datapathMode' | 'hostRouting'> & {
  notReadyReason: string | null;
  /** A string, not the agent's union: an older or newer agent may report another mode. */
  datapathMode: string;
  /** bpf or kernel; null from an agent that does not report it. */
  hostRouting: string | null;
};

/** One endpoint in `podnet endpoints -o json`: every field always present, full container ID. */
export type EndpointJson = Omit<EndpointInfo, 'podNamespace' | 'podName' | 'state'> & {
  podNamespace: string | null;
  podName: string | null;
  /** The agent's state; "unknown" when an older agent does not report it. */
  state: EndpointState | 'unknown';
};

/** Normalises the agent's status into the stable JSON shape. */
export function statusJson(s: AgentStatus): StatusJson {
  return {
    version: s.version,
    nodeName: s.nodeName,
    ready: s.ready,
    notReadyReason: s.ready ? null : s.notReadyReason ?? null,
    datapathMode: s.datapathMode,
    hostRouting: s.hostRouting ?? null,
    bpffs: s.bpffs,
    podCidr: s.podCidr,
    ipam: { size: s.ipam.size, used: s.ipam.used, free: s.ipam.free },
    endpoints: s.endpoints,
    endpointsUnhealthy: s.endpointsUnhealthy ?? 0,
    lastReconcile: s.lastReconcile ?? null,
    uptimeSeconds: s.uptimeSeconds,
  };
}

/** The text `podnet status` prints. */
export function statusText(d: StatusJson): string {
  const r = d.lastReconcile;
  return [
    `Agent:     ${d.ready ? 'ready' : `NOT READY${d.notReadyReason ? `: ${d.notReadyReason}` : ''}`} (podnet ${d.version}, node ${d.nodeName}, up ${d.uptimeSeconds}s)`,
    `Datapath:  ${d.datapathMode}${d.hostRouting ? `, ${d.hostRouting} host routing` : ''}, pins in ${d.bpffs}`,
    `IPAM:      ${d.podCidr}: ${d.ipam.used}/${d.ipam.size} used, ${d.ipam.free} free`,
    `Endpoints: ${d.endpoints}${d.endpointsUnhealthy > 0 ? `, ${d.endpointsUnhealthy} UNHEALTHY (see podnet endpoints --state unhealthy)` : ', all healthy'}`,
    `Reconcile: ${r ? `${r.result} at ${r.at} (repaired ${r.repaired}, removed ${r.removed}, failed ${r.failed})` : 'not run yet'}`,
    '',
  ].join('\n');
}

/** `podnet status`. */
export async function runStatus(o: ReadOptions): Promise<StatusJson> {
  const d = statusJson(await apiCall<AgentStatus>(o.apiSocket, 'GET', '/v1/status'));
  print(o.output, d, statusText, o.out);
  return d;
}

/** Normalises one endpoint into the stable JSON shape. */
export function endpointJson(e: EndpointInfo): EndpointJson {
  return {
    endpointId: e.endpointId,
    containerId: e.containerId,
    ifName: e.ifName,
    podNamespace: e.podNamespace ?? null,
    podName: e.podName ?? null,
    ip: e.ip,
    hostIfName: e.hostIfName,
    hostIfIndex: e.hostIfIndex,
    podMac: e.podMac,
    hostMac: e.hostMac,
    netns: e.netns,
    created: e.created,
    state: e.state ?? 'unknown',
    problems: e.problems ?? [],
  };
}

/** Filters of `podnet endpoints`; each one given narrows the list. */
export interface EndpointFilters {
  state?: string | undefined;
  namespace?: string | undefined;
  pod?: string | undefined;
}

/** The endpoints that pass every given filter. */
export function filterEndpoints(eps: EndpointJson[], f: EndpointFilters): EndpointJson[] {
  return eps.filter((e) => (f.state === undefined || e.state === f.state) && (f.namespace === undefined || e.podNamespace === f.namespace) && (f.pod === undefined || e.podName === f.pod));
}

/** The table `podnet endpoints` prints (container IDs shortened to 12; JSON keeps them whole). */
export function endpointsText(d: EndpointJson[]): string {
  return table(['id', 'state', 'ip', 'pod', 'container', 'ifname', 'host-if', 'ifindex', 'pod-mac', 'problems'],
    d.map((e) => [e.endpointId, e.state, e.ip, e.podName ? `${e.podNamespace ?? ''}/${e.podName}` : undefined, e.containerId.slice(0, 12), e.ifName, e.hostIfName, e.hostIfIndex, e.podMac, e.problems.length ? e.problems.join('; ') : undefined]));
}

/** `podnet endpoints [--state S] [--namespace NS] [--pod NAME]`. */
export async function runEndpoints(o: ReadOptions & EndpointFilters): Promise<EndpointJson[]> {
  const all = (await apiCall<EndpointInfo[]>(o.apiSocket, 'GET', '/v1/endpoints')).map(endpointJson);
  const d = filterEndpoints(all, o);
  print(o.output, d, endpointsText, o.out);
  return d;
}

/** `podnet services -o json`: every field always present, null where there is no value. */
export type ServicesJson = ServicesInfo;

/** Normalises the agent's answer into the stable JSON shape (an older agent may lack fields). */
export function servicesJson(raw: Partial<ServicesInfo>): ServicesJson {
  return {
    enabled: raw.enabled ?? false,
    synced: raw.synced ?? false,
    sourceError: raw.sourceError ?? null,
    ranges: raw.ranges ?? [],
    lastReconcile: raw.lastReconcile ? { at: raw.lastReconcile.at, result: raw.lastReconcile.result, seconds: raw.lastReconcile.seconds, errors: raw.lastReconcile.errors ?? [] } : null,
    services: (raw.services ?? []).map((s): ServiceInfo => ({
      namespace: s.namespace,
      name: s.name,
      ...(s.kind === 'hostport' ? { kind: s.kind } : {}),
      ports: s.ports.map((p) => ({
        groupId: p.groupId, portName: p.portName, protocol: p.protocol, scope: p.scope,
        frontends: p.frontends.map((f) => ({
          id: f.id, kind: f.kind, address: f.address, port: f.port, protocol: f.protocol, count: f.count, flags: f.flags ?? [],
          affinitySeconds: f.affinitySeconds ?? null,
          stats: { connections: f.stats?.connections ?? 0, packets: f.stats?.packets ?? 0, bytes: f.stats?.bytes ?? 0, noBackend: f.stats?.noBackend ?? 0 },
        })),
        backends: p.backends.map((b) => ({ id: b.id, address: b.address, port: b.port, protocol: b.protocol, state: b.state, local: b.local })),
        problems: p.problems ?? [],
      })),
    })),
  };
}

/** Filters of `podnet services`. */
export interface ServiceFilters {
  namespace?: string | undefined;
}

/** The table `podnet services` prints: a header, then one row per frontend with the backends of its group. */
export function servicesText(d: ServicesJson): string {
  const r = d.lastReconcile;
  const head = [
    `Services:  ${d.enabled ? 'on' : 'off (left to kube-proxy)'}${d.enabled ? `, ${d.synced ? 'source synced' : 'source NOT SYNCED'}${d.sourceError ? ` (${d.sourceError})` : ''}` : ''}`,
    `Ranges:    ${d.ranges.length > 0 ? d.ranges.join(', ') : 'none'}`,
    `Reconcile: ${r ? `${r.result} at ${r.at} (${(r.seconds * 1000).toFixed(1)} ms)${r.errors.length > 0 ? `: ${r.errors.join('; ')}` : ''}` : 'not run yet'}`,
    '',
  ];
  const rows: Array<Array<string | number | undefined>> = [];
  for (const s of d.services) {
    for (const p of s.ports) {
      const backends = p.backends.length === 0
        ? 'none (rejects)'
        : p.backends.map((b) => `${b.address}:${b.port}${b.state === 'terminating' ? ' (terminating)' : ''}`).join(', ');
      p.frontends.forEach((f, i) => {
        rows.push([
          i === 0 ? (s.name ? `${s.kind === 'hostport' ? 'hostport ' : ''}${s.namespace}/${s.name}` : '(unknown)') : '',
          i === 0 ? `${p.portName || '-'}/${p.protocol}` : '',
          `${f.address}:${f.port}`, f.kind, f.flags.length > 0 ? f.flags.join(',') : undefined, f.stats.connections, f.stats.noBackend,
          i === 0 ? `${backends}${p.problems.length > 0 ? ` PROBLEMS: ${p.problems.join('; ')}` : ''}` : '',
        ]);
      });
    }
  }
  // Continuation rows leave the last column empty: no padding after them.
  const body = table(['service', 'port', 'frontend', 'kind', 'flags', 'conns', 'no-backend', 'backends'], rows).split('\n').map((l) => l.trimEnd()).join('\n');
  return head.join('\n') + '\n' + body;
}

/** `podnet services [--namespace NS]`. */
export async function runServices(o: ReadOptions & ServiceFilters): Promise<ServicesJson> {
  const d = servicesJson(await apiCall<ServicesInfo>(o.apiSocket, 'GET', '/v1/services'));
  if (o.namespace !== undefined) d.services = d.services.filter((s) => s.namespace === o.namespace);
  print(o.output, d, servicesText, o.out);
  return d;
}

/** `podnet ipam`. */
export async function runIpam(o: ReadOptions): Promise<IpamInfo> {
  const raw = await apiCall<IpamInfo>(o.apiSocket, 'GET', '/v1/ipam');
  const d: IpamInfo = { pool: raw.pool, size: raw.size, used: raw.used, free: raw.free, allocations: raw.allocations.map((a) => ({ ip: a.ip, containerId: a.containerId, ifName: a.ifName, created: a.created })) };
  print(o.output, d, (x) =>
    `Pool ${x.pool}: ${x.used} used, ${x.free} free of ${x.size}\n\n` +
    table(['ip', 'container', 'ifname', 'allocated'], x.allocations.map((a) => [a.ip, a.containerId.slice(0, 12), a.ifName, a.created])), o.out);
  return d;
}

/** `podnet version`: the CLI's version, and the agent's when one answers within 2 s. */
export async function runVersion(o: ReadOptions): Promise<{ cli: string; agent: string | null; node: string }> {
  const agent = await apiCall<AgentStatus>(o.apiSocket, 'GET', '/v1/status', undefined, 2000).then((s) => s.version, () => null);
  const d = { cli: VERSION, agent, node: process.version };
  print(o.output, d, (x) => `podnet ${x.cli}\nagent  ${x.agent ?? 'not reachable'}\nnode   ${x.node}\n`, o.out);
  return d;
}
