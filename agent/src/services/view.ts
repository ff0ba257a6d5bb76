/**
 * The Services as the maps hold them, named by the reconciler: what
 * `podnet services` shows. Everything but the names is read from the maps,
 * so the view shows what the datapath does, not what the agent meant to write.
 * A pod's host ports are listed as an entry of kind "hostport" under the
 * pod's namespace and name, each mapping a port named "hostIP:hostPort".
 */
import type { ServiceBackendInfo, ServiceFrontendInfo, ServiceInfo, ServicePortInfo } from '../api/protocol.js';
import { IP_PROTO_NAME as PROTO_NAME } from '../maps/services.js';
import { HOST_PORT_NAMESPACE_PREFIX } from './model.js';
import type { FrontendName } from './reconciler.js';
import { BACKEND_FLAG, SVC_FLAG, type ServiceTables } from './tables.js';

const FLAG_NAMES: Array<[number, string]> = [[SVC_FLAG.affinity, 'affinity'], [SVC_FLAG.local, 'local'], [SVC_FLAG.nodeport, 'nodeport'], [SVC_FLAG.external, 'external']];
const KIND_ORDER = ['ClusterIP', 'NodePort', 'ExternalIP', 'LoadBalancer', 'HostPort', 'unknown'];

/** Every Service with its frontends and backends, sorted by namespace, name, port name, protocol. */
export function servicesView(t: ServiceTables, names: ReadonlyMap<number, FrontendName>): ServiceInfo[] {
  const slots = new Map<number, number[]>();
  for (const [k, id] of t.readSlots()) {
    let g = slots.get(k.groupId);
    if (!g) slots.set(k.groupId, (g = []));
    g[k.slot] = id;
  }
  const backends = new Map(t.readBackends());
  const stats = t.readStats();
  const services = new Map<string, ServiceInfo>();
  const ports = new Map<string, ServicePortInfo>();
  for (const [k, v] of t.readFrontends()) {
    const n = names.get(v.frontendId);
    const slash = n ? n.service.indexOf('/') : -1;
    let [namespace, name] = n ? [n.service.slice(0, slash), n.service.slice(slash + 1)] : ['', ''];
    const hostPort = n?.kind === 'HostPort' && namespace.startsWith(HOST_PORT_NAMESPACE_PREFIX);
    if (hostPort) namespace = namespace.slice(HOST_PORT_NAMESPACE_PREFIX.length);
    const protocol = PROTO_NAME[k.proto] ?? String(k.proto);
    const s = stats.get(v.frontendId);
    const fe: ServiceFrontendInfo = {
      id: v.frontendId, kind: n?.kind ?? 'unknown', address: k.addr, port: k.port, protocol, count: v.count,
      flags: FLAG_NAMES.filter(([bit]) => v.flags & bit).map(([, f]) => f),
      affinitySeconds: v.flags & SVC_FLAG.affinity ? v.affinitySeconds : null,
      stats: { connections: Number(s?.connections ?? 0n), packets: Number(s?.packets ?? 0n), bytes: Number(s?.bytes ?? 0n), noBackend: Number(s?.noBackend ?? 0n) },
    };
    const sk = n?.service ?? '/';
    let svc = services.get(sk);
    if (!svc) services.set(sk, (svc = { namespace, name, ...(hostPort ? { kind: 'hostport' as const } : {}), ports: [] }));
    const pk = `${sk}\u0000${v.groupId}`;
    let port = ports.get(pk);
    if (!port) {
      port = { groupId: v.groupId, portName: n?.portName ?? '', protocol, scope: v.flags & SVC_FLAG.local ? 'local' : 'cluster', frontends: [], backends: [], problems: [] };
      ports.set(pk, port);
      svc.ports.push(port);
    }
    port.frontends.push(fe);
  }
  for (const port of ports.values()) {
    const count = Math.max(...port.frontends.map((f) => f.count));
    const g = slots.get(port.groupId) ?? [];
    for (let i = 0; i < count; i++) {
      const id = g[i];
      const b = id === undefined ? undefined : backends.get(id);
      if (id === undefined) { port.problems.push(`slot ${i} of group ${port.groupId} is missing`); continue; }
      if (!b) { port.problems.push(`slot ${i} of group ${port.groupId} names backend ${id}, which does not exist`); continue; }
      const be: ServiceBackendInfo = {
        id, address: b.addr, port: b.port, protocol: PROTO_NAME[b.proto] ?? String(b.proto),
        state: b.flags & BACKEND_FLAG.terminating ? 'terminating' : 'ready', local: (b.flags & BACKEND_FLAG.local) !== 0,
      };
      port.backends.push(be);
    }
    const counts = new Set(port.frontends.map((f) => f.count));
    if (counts.size > 1) port.problems.push(`frontends of group ${port.groupId} disagree on the backend count (${[...counts].join(', ')})`);
    port.frontends.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
  }
  const out = [...services.values()];
  for (const s of out) s.ports.sort((a, b) => (a.portName < b.portName ? -1 : a.portName > b.portName ? 1 : a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0));
  // Services first, then host ports; each by namespace and name.
  return out.sort((a, b) => (a.kind !== b.kind ? (a.kind === undefined ? -1 : 1) : a.namespace !== b.namespace ? (a.namespace < b.namespace ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
