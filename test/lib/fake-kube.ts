/**
 * An in-memory API server behind the agent's KubeTransport interface:
 * lists answer the current objects, open watches get every change as it is
 * made. Objects are kept per plural and keyed namespace/name (name for
 * cluster-scoped ones). Like a real server, a watch from an older
 * resourceVersion first replays the changes made since, unless the history
 * was compacted past it (then it answers 410 Gone). An API version can be
 * left unserved (lists and watches answer 404, as for a ServiceCIDR API the
 * server lacks), and open watches can be expired (410 Gone) or dropped. For tests of the agent's
 * reaction to API changes without a cluster; the cluster tier runs the same
 * code against a real kube-apiserver.
 */
import { ApiStatusError, collectionPath, objectKey } from '../../agent/src/k8s/index.js';
import type { KubeObject, KubeTransport, ListPage, ResourceType, Selection, WatchEvent, WatchHandle } from '../../agent/src/k8s/index.js';

interface Watcher { plural: string; sel: Selection; onEvent: (e: WatchEvent<KubeObject>) => void; onDone: (err: unknown) => void; open: boolean }

/** Objects by plural, then by name; every change bumps one resourceVersion counter. */
export class FakeKube implements KubeTransport {
  readonly server = 'https://fake-apiserver.invalid';
  private rv = 1;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly watchers: Watcher[] = [];
  /** Every change since the last compact(), for watches that resume from an older resourceVersion. */
  private history: Array<{ rv: number; plural: string; event: WatchEvent<KubeObject> }> = [];
  private compactedRv = 0;
  /** "apiVersion/plural" of APIs this server does not have: lists and watches answer 404. */
  readonly unserved = new Set<string>();
  /** List calls per "apiVersion/plural", for tests that count retries. */
  readonly listCalls = new Map<string, number>();
  /** Status code to fail the next list of a plural with (once each), e.g. 403 or 503. */
  readonly failNextList = new Map<string, number[]>();

  private bucket(plural: string): Map<string, KubeObject> {
    let b = this.objects.get(plural);
    if (!b) this.objects.set(plural, (b = new Map()));
    return b;
  }

  private matches(sel: Selection, o: KubeObject): boolean {
    const m = /^metadata\.name=(.+)$/.exec(sel.fieldSelector ?? '');
    return !m || o.metadata?.name === m[1];
  }

  /** Creates or replaces an object and tells open watches. */
  put(plural: string, obj: KubeObject): void {
    const name = objectKey(obj);
    const b = this.bucket(plural);
    const type = b.has(name) ? 'MODIFIED' : 'ADDED';
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    b.set(name, stored);
    this.history.push({ rv: this.rv, plural, event: { type, object: stored } });
    for (const w of this.watchers) if (w.open && w.plural === plural && this.matches(w.sel, stored)) w.onEvent({ type, object: stored });
  }

  /** Deletes an object (by namespace/name, or name when cluster-scoped) and tells open watches. */
  remove(plural: string, name: string): void {
    const b = this.bucket(plural);
    const old = b.get(name);
    if (!old) return;
    b.delete(name);
    const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    this.history.push({ rv: this.rv, plural, event: { type: 'DELETED', object: gone } });
    for (const w of this.watchers) if (w.open && w.plural === plural && this.matches(w.sel, gone)) w.onEvent({ type: 'DELETED', object: gone });
  }

  /** Ends every open watch as a server restart would. */
  dropWatches(err: unknown = new Error('connection reset')): void {
    for (const w of this.watchers.splice(0)) if (w.open) { w.open = false; w.onDone(err); }
  }

  /** Forgets the change history: a watch from any resourceVersion before now answers 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /** Ends every open watch with a 410 Gone ERROR event, as when its resourceVersion is too old. */
  expireWatches(): void {
    for (const w of this.watchers.splice(0)) {
      if (w.open) w.onEvent({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } });
    }
  }

  /** Open watches of a plural. */
  openWatches(plural: string): number {
    return this.watchers.filter((w) => w.open && w.plural === plural).length;
  }

  private check(type: ResourceType, verb: string): void {
    if (this.unserved.has(`${type.apiVersion}/${type.plural}`)) throw new ApiStatusError(404, `${verb} ${collectionPath(type)} on ${this.server}: 404 Not Found`);
  }

  async list<T extends KubeObject>(type: ResourceType, sel: Selection): Promise<ListPage<T>> {
    const k = `${type.apiVersion}/${type.plural}`;
    this.listCalls.set(k, (this.listCalls.get(k) ?? 0) + 1);
    const fail = this.failNextList.get(type.plural)?.shift();
    if (fail !== undefined) throw new ApiStatusError(fail, `list ${collectionPath(type)} on ${this.server}: status ${fail}`);
    this.check(type, 'list');
    const items = [...this.bucket(type.plural).values()].filter((o) => this.matches(sel, o));
    return { items: items as T[], resourceVersion: String(this.rv) };
  }

  async watch<T extends KubeObject>(type: ResourceType, sel: Selection, rv: string, _timeout: number, onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void): Promise<WatchHandle> {
    this.check(type, 'watch');
    const w: Watcher = { plural: type.plural, sel, onEvent: onEvent as (e: WatchEvent<KubeObject>) => void, onDone, open: true };
    const from = Number(rv);
    // Events reach the caller only after it holds the handle, as from a real stream.
    if (from < this.compactedRv) {
      queueMicrotask(() => { if (w.open) w.onEvent({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: `too old resource version: ${rv} (${this.compactedRv})` } }); });
      return { abort: () => { w.open = false; } };
    }
    const replay = this.history.filter((h) => h.rv > from && h.plural === type.plural && this.matches(sel, h.event.object as KubeObject));
    if (replay.length > 0) queueMicrotask(() => { for (const h of replay) if (w.open) w.onEvent(h.event); });
    this.watchers.push(w);
    return { abort: () => { w.open = false; } };
  }
}

/** A v1 Node with the given pod CIDRs and InternalIP. */
export function nodeObject(name: string, podCidrs: string[], internalIp = '10.220.0.2'): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Node', metadata: { name },
    spec: podCidrs.length > 0 ? { podCIDR: podCidrs[0], podCIDRs: podCidrs } : {},
    status: { addresses: [{ type: 'InternalIP', address: internalIp }] },
  };
}

/** A v1 ClusterIP Service with one TCP port per entry of `ports` (named when there are several). */
export function serviceObject(namespace: string, name: string, clusterIP: string, ports: number[] = [80], extra: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name, namespace, uid: `uid-${namespace}-${name}`, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } },
    spec: { type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], selector: { app: name }, ports: ports.map((p, i) => ({ ...(ports.length > 1 ? { name: `p${i}` } : {}), protocol: 'TCP', port: p, targetPort: p + 8000 })), ...extra },
    status: { loadBalancer: {} },
  };
}

/** A discovery.k8s.io/v1 EndpointSlice of `service` with ready endpoints at `ips` on `port` (the port unnamed). */
export function sliceObject(namespace: string, name: string, service: string, ips: string[], port = 8080, nodeName = 'node-1'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }, ownerReferences: [{ kind: 'Service', name: service }] },
    addressType: 'IPv4',
    ports: [{ name: '', protocol: 'TCP', port }],
    endpoints: ips.map((ip, i) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName, zone: 'z1', targetRef: { kind: 'Pod', namespace, name: `${service}-${i}`, uid: `pod-uid-${ip}` } })),
  };
}

/** A networking.k8s.io ServiceCIDR. */
export function serviceCidrObject(name: string, cidrs: string[]): KubeObject {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name }, spec: { cidrs }, status: { conditions: [{ type: 'Ready', status: 'True' }] } };
}
