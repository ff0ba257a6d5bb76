/**
 * What the datapath must do for the cluster's Services, computed from
 * ordinary v1 Service and discovery.k8s.io/v1 EndpointSlice objects: every
 * frontend (address, port, protocol) with the backends it may send new
 * connections to. Pure data code: the reconciler diffs two of these and
 * writes only the difference into the service maps.
 *
 * Rules, as kube-proxy applies them:
 * - frontends: the ClusterIP(s) on every port; NodePort on each node
 *   address; externalIPs; LoadBalancer status.loadBalancer.ingress IPs.
 *   Headless Services (clusterIP None) and ExternalName Services have none.
 * - an EndpointSlice belongs to the Service named by its
 *   kubernetes.io/service-name label in the same namespace; a Service port
 *   maps to the slice port of the same name (the slice carries the resolved
 *   target port number, so named target ports need no pod lookup).
 * - backends: endpoints with conditions.ready (unset counts as ready); only
 *   when none is ready, those that are serving and terminating, so a
 *   rolling update never leaves a Service without backends; terminating
 *   endpoints that no longer serve are never used.
 * - externalTrafficPolicy Local limits NodePort, externalIP and
 *   LoadBalancer frontends to endpoints on this node;
 *   internalTrafficPolicy Local does the same for the ClusterIP.
 * - sessionAffinity ClientIP keeps a client on one backend for
 *   timeoutSeconds (default 10800).
 *
 * Host ports (a pod's hostPort, CNI portMappings) come in as Services of
 * their own (hostPortObjects): one per pod, of the internal type
 * "HostPort", whose ports carry the hostIP, with a slice whose one
 * endpoint is the pod. Their frontends are of kind HostPort: a hostIP of
 * 0.0.0.0 answers on every node address (NodeView.hostPortAddresses, not
 * narrowed by --nodeport-addresses) and on 127.0.0.1; a specific hostIP
 * only there.
 */
import type { HostPortMapping } from '../api/protocol.js';
import { joinKey } from '../util/keys.js';

/** The protocols a frontend can have. */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** The fields of a v1 Service this model reads. */
export interface ServiceObject {
  metadata?: { name?: string; namespace?: string };
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    externalIPs?: string[];
    /** hostIP: only on ports of the internal type HostPort. */
    ports?: Array<{ name?: string; protocol?: string; port?: number; nodePort?: number; hostIP?: string }>;
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
    externalTrafficPolicy?: string;
    internalTrafficPolicy?: string;
    healthCheckNodePort?: number;
  };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } };
}

/** The fields of one endpoint of an EndpointSlice this model reads. */
export interface EndpointObject {
  addresses?: string[];
  conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
  nodeName?: string;
}

/** Endpoints as the model reads them: an array, or a packed list (source.ts PackedEndpoints) that yields the same objects. */
export type EndpointList = Iterable<EndpointObject> & { readonly length: number };

/** The fields of a discovery.k8s.io/v1 EndpointSlice this model reads. */
export interface EndpointSliceObject {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  addressType?: string;
  ports?: Array<{ name?: string; protocol?: string; port?: number }> | null;
  endpoints?: EndpointList | null;
}

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Default sessionAffinity ClientIP timeout (kube-proxy's: 3 hours). */
export const DEFAULT_AFFINITY_SECONDS = 10800;

/** How a frontend was reached. */
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'LoadBalancer' | 'HostPort';

/** One backend of a frontend. */
export interface Backend {
  ip: string;
  port: number;
  /** ready: takes new connections; terminating: only because no ready backend is left. */
  state: 'ready' | 'terminating';
  nodeName: string | undefined;
}

/** One address:port/protocol the datapath answers for a Service. */
export interface Frontend {
  /** "namespace/name" of the Service. */
  service: string;
  /** The Service port's name ("" when unnamed). */
  portName: string;
  kind: FrontendKind;
  address: string;
  port: number;
  protocol: Protocol;
  /** The backends new connections may go to, sorted by ip then port; empty: reject. */
  backends: Backend[];
  /** ClientIP affinity timeout in seconds, or undefined without affinity. */
  affinitySeconds: number | undefined;
  /** Only endpoints on this node (a Local traffic policy applies to this frontend). */
  localOnly: boolean;
}

/** This node, for NodePort frontends and Local policies. */
export interface NodeView {
  name: string;
  /** Addresses NodePort frontends listen on. */
  addresses: string[];
  /** Addresses host ports with hostIP 0.0.0.0 answer on (127.0.0.1 is added); default: `addresses`. */
  hostPortAddresses?: string[];
}

/** The Service type of host-port Services (never one of the API's). */
export const HOST_PORT_TYPE = 'HostPort';

/** Prefix of the namespace of host-port Services: a ':' no Kubernetes namespace can have. */
export const HOST_PORT_NAMESPACE_PREFIX = 'hostport:';

/** A pod on this node with host ports. */
export interface HostPortPod {
  podNamespace?: string | undefined;
  podName?: string | undefined;
  containerId: string;
  ifName: string;
  ip: string;
  mappings: readonly HostPortMapping[];
}

/** The port name of a host-port frontend group: "hostIP:hostPort". */
export const hostPortName = (m: Pick<HostPortMapping, 'hostIP' | 'hostPort'>): string => `${m.hostIP}:${m.hostPort}`;

/** The Service key ("namespace/name") the host ports of a pod are listed under. */
export function hostPortServiceKey(p: Pick<HostPortPod, 'podNamespace' | 'podName' | 'containerId' | 'ifName'>): string {
  const ns = `${HOST_PORT_NAMESPACE_PREFIX}${p.podNamespace ?? ''}`;
  // Without a pod name (a runtime that sends no K8S_POD_NAME): the container id.
  return `${ns}/${p.podName ? p.podName : p.containerId}${p.ifName === 'eth0' ? '' : `@${p.ifName}`}`;
}

/**
 * The host ports of pods as Services and slices desiredFrontends() reads:
 * per pod one Service of type HostPort (a port per mapping, named by
 * hostPortName) and one slice with the pod as its one ready endpoint on
 * this node, the containerPort as its port.
 */
export function hostPortObjects(pods: readonly HostPortPod[], nodeName: string): { services: ServiceObject[]; slices: EndpointSliceObject[] } {
  const services: ServiceObject[] = [];
  const slices: EndpointSliceObject[] = [];
  for (const p of pods) {
    if (p.mappings.length === 0) continue;
    const k = hostPortServiceKey(p);
    const slash = k.indexOf('/');
    const namespace = k.slice(0, slash), name = k.slice(slash + 1);
    const protocol = (m: HostPortMapping): string => m.protocol.toUpperCase();
    services.push({
      metadata: { namespace, name },
      spec: { type: HOST_PORT_TYPE, ports: p.mappings.map((m) => ({ name: hostPortName(m), protocol: protocol(m), port: m.hostPort, hostIP: m.hostIP })) },
    });
    slices.push({
      metadata: { namespace, name, labels: { [SERVICE_NAME_LABEL]: name } },
      addressType: 'IPv4',
      ports: p.mappings.map((m) => ({ name: hostPortName(m), protocol: protocol(m), port: m.containerPort })),
      endpoints: [{ addresses: [p.ip], conditions: { ready: true }, nodeName }],
    });
  }
  return { services, slices };
}

const key = (ns: string | undefined, name: string | undefined): string => joinKey(ns ?? 'default', '/', name ?? '');

function protocolOf(p: string | undefined): Protocol {
  return p === 'UDP' || p === 'SCTP' ? p : 'TCP';
}

const isIPv4 = (a: string): boolean => /^\d{1,3}(\.\d{1,3}){3}$/.test(a);

/** Backends for one Service port from its slices, before any traffic policy. */
function endpointsFor(slices: readonly EndpointSliceObject[], portName: string, protocol: Protocol): Backend[] {
  const ready: Backend[] = [];
  const terminating: Backend[] = [];
  for (const s of slices) {
    if (s.addressType !== undefined && s.addressType !== 'IPv4') continue;
    const sp = (s.ports ?? []).find((p) => (p.name ?? '') === portName && protocolOf(p.protocol) === protocol);
    if (!sp || typeof sp.port !== 'number') continue;
    for (const e of s.endpoints ?? []) {
      const c = e.conditions ?? {};
      // Per the EndpointSlice API, an unset ready means ready; serving defaults to ready.
      const isReady = c.ready !== false;
      const isServing = c.serving ?? isReady;
      const isTerminating = c.terminating === true;
      for (const ip of e.addresses ?? []) {
        if (!isIPv4(ip)) continue;
        const b: Backend = { ip, port: sp.port, state: 'ready', nodeName: e.nodeName };
        if (isReady && !isTerminating) ready.push(b);
        else if (isServing && isTerminating) terminating.push({ ...b, state: 'terminating' });
      }
    }
  }
  const chosen = ready.length > 0 ? ready : terminating;
  const seen = new Set<string>();
  return chosen
    .filter((b) => { const k = `${b.ip}:${b.port}`; if (seen.has(k)) return false; seen.add(k); return true; })
    .sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
}

/**
 * Every frontend of every Service, with its backends.
 * Frontends are sorted by address, port and protocol, so two results compare
 * element by element.
 */
export function desiredFrontends(services: readonly ServiceObject[], slices: readonly EndpointSliceObject[], node: NodeView): Frontend[] {
  const byService = new Map<string, EndpointSliceObject[]>();
  for (const s of slices) {
    const owner = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!owner) continue;
    const k = key(s.metadata?.namespace, owner);
    const list = byService.get(k);
    if (list) list.push(s); else byService.set(k, [s]);
  }
  const out: Frontend[] = [];
  for (const svc of services) {
    const spec = svc.spec ?? {};
    const type = spec.type ?? 'ClusterIP';
    if (type === 'ExternalName') continue;
    const name = key(svc.metadata?.namespace, svc.metadata?.name);
    if (type === HOST_PORT_TYPE) {
      // Only the agent makes these (hostPortObjects); a file's Service of this type is ignored.
      if (name.startsWith(HOST_PORT_NAMESPACE_PREFIX)) out.push(...hostPortFrontends(name, spec.ports ?? [], byService.get(name) ?? [], node));
      continue;
    }
    const clusterIps = (spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []).filter(isIPv4);
    const affinitySeconds = spec.sessionAffinity === 'ClientIP' ? spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS : undefined;
    const externalLocal = spec.externalTrafficPolicy === 'Local';
    const internalLocal = spec.internalTrafficPolicy === 'Local';
    const svcSlices = byService.get(name) ?? [];
    for (const p of spec.ports ?? []) {
      if (typeof p.port !== 'number') continue;
      const protocol = protocolOf(p.protocol);
      const portName = p.name ?? '';
      const all = endpointsFor(svcSlices, portName, protocol);
      const local = all.filter((b) => b.nodeName === node.name);
      const add = (kind: FrontendKind, address: string, port: number, localOnly: boolean): void => {
        out.push({ service: name, portName, kind, address, port, protocol, backends: localOnly ? local : all, affinitySeconds, localOnly });
      };
      for (const ip of clusterIps) add('ClusterIP', ip, p.port, internalLocal);
      if ((type === 'NodePort' || type === 'LoadBalancer') && typeof p.nodePort === 'number' && p.nodePort > 0) {
        for (const a of node.addresses.filter(isIPv4)) add('NodePort', a, p.nodePort, externalLocal);
      }
      for (const ip of (spec.externalIPs ?? []).filter(isIPv4)) add('ExternalIP', ip, p.port, externalLocal);
      if (type === 'LoadBalancer') {
        for (const ing of svc.status?.loadBalancer?.ingress ?? []) if (ing.ip && isIPv4(ing.ip)) add('LoadBalancer', ing.ip, p.port, externalLocal);
      }
    }
  }
  return out.sort((a, b) => (a.address !== b.address ? (a.address < b.address ? -1 : 1) : a.port !== b.port ? a.port - b.port : a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0));
}

/** The frontends of one pod's host ports. */
function hostPortFrontends(service: string, ports: NonNullable<NonNullable<ServiceObject['spec']>['ports']>, slices: EndpointSliceObject[], node: NodeView): Frontend[] {
  const out: Frontend[] = [];
  const every = [...new Set([...(node.hostPortAddresses ?? node.addresses).filter(isIPv4), '127.0.0.1'])];
  for (const p of ports) {
    if (typeof p.port !== 'number' || p.protocol === 'SCTP') continue;
    const protocol = protocolOf(p.protocol);
    const portName = p.name ?? '';
    const backends = endpointsFor(slices, portName, protocol);
    const hostIP = p.hostIP ?? '0.0.0.0';
    const addresses = hostIP === '0.0.0.0' || hostIP === '' ? every : isIPv4(hostIP) ? [hostIP] : [];
    for (const address of addresses) out.push({ service, portName, kind: 'HostPort', address, port: p.port, protocol, backends, affinitySeconds: undefined, localOnly: false });
  }
  return out;
}

/**
 * One endpoint address:port/protocol as the slices list it, whatever its
 * conditions: the datapath keeps a backend for it as long as it exists, so
 * established connections stay on it while it terminates.
 */
export interface EndpointPort {
  ip: string;
  port: number;
  protocol: Protocol;
  /** conditions.terminating is true. */
  terminating: boolean;
  /** On this node. */
  local: boolean;
}

/** The identity of a backend: address, port, protocol. */
export function backendKey(ip: string, port: number, protocol: Protocol): string {
  return joinKey(ip, ':', port, '/', protocol);
}

/**
 * Every IPv4 endpoint port of every slice that belongs to a Service (has
 * the service-name label), ready or not, by backendKey. An endpoint listed
 * by several slices counts once; it is terminating only if every listing says so.
 */
export function endpointPorts(slices: readonly EndpointSliceObject[], node: Pick<NodeView, 'name'>): Map<string, EndpointPort> {
  const out = new Map<string, EndpointPort>();
  for (const s of slices) {
    if (!s.metadata?.labels?.[SERVICE_NAME_LABEL]) continue;
    if (s.addressType !== undefined && s.addressType !== 'IPv4') continue;
    for (const p of s.ports ?? []) {
      if (typeof p.port !== 'number') continue;
      const protocol = protocolOf(p.protocol);
      for (const e of s.endpoints ?? []) {
        const terminating = e.conditions?.terminating === true;
        const local = e.nodeName === node.name;
        for (const ip of e.addresses ?? []) {
          if (!isIPv4(ip)) continue;
          const k = backendKey(ip, p.port, protocol);
          const had = out.get(k);
          if (had) { had.terminating &&= terminating; had.local ||= local; } else out.set(k, { ip, port: p.port, protocol, terminating, local });
        }
      }
    }
  }
  return out;
}

/** The identity of a frontend in the service maps: address, port, protocol. */
export function frontendKey(f: Pick<Frontend, 'address' | 'port' | 'protocol'>): string {
  return joinKey(f.address, ':', f.port, '/', f.protocol);
}

/** What changes between two desired states: frontends to add, to update (backends or settings changed) and to remove. */
export interface FrontendDiff {
  add: Frontend[];
  update: Frontend[];
  remove: Frontend[];
}

const same = (a: Frontend, b: Frontend): boolean =>
  a.service === b.service && a.portName === b.portName && a.kind === b.kind && a.affinitySeconds === b.affinitySeconds && a.localOnly === b.localOnly &&
  a.backends.length === b.backends.length && a.backends.every((x, i) => { const y = b.backends[i]!; return x.ip === y.ip && x.port === y.port && x.state === y.state; });

/**
 * The difference from `before` to `after`. Applying `update` before
 * `remove` and writing each frontend's new backends before dropping old
 * ones is the reconciler's job; this only says what changed.
 */
export function diffFrontends(before: Frontend[], after: Frontend[]): FrontendDiff {
  const old = new Map(before.map((f) => [frontendKey(f), f]));
  const now = new Map(after.map((f) => [frontendKey(f), f]));
  const diff: FrontendDiff = { add: [], update: [], remove: [] };
  for (const [k, f] of now) {
    const o = old.get(k);
    if (!o) diff.add.push(f);
    else if (!same(o, f)) diff.update.push(f);
  }
  for (const [k, f] of old) if (!now.has(k)) diff.remove.push(f);
  return diff;
}
