/**
 * An in-memory API server for one resource kind at a time, behind the
 * agent's KubeTransport interface: lists answer the current objects, open
 * watches get every change as it is made. For tests of the agent's
 * reaction to Node changes without a cluster; the cluster tier runs the
 * same code against a real kube-apiserver.
 */
import type { KubeObject, KubeTransport, ListPage, ResourceType, Selection, WatchEvent, WatchHandle } from '../../agent/src/k8s/index.js';

interface Watcher { plural: string; sel: Selection; onEvent: (e: WatchEvent<KubeObject>) => void; onDone: (err: unknown) => void; open: boolean }

/** Objects by plural, then by name; every change bumps one resourceVersion counter. */
export class FakeKube implements KubeTransport {
  readonly server = 'https://fake-apiserver.invalid';
  private rv = 1;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly watchers: Watcher[] = [];

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
    const name = obj.metadata?.name ?? '';
    const b = this.bucket(plural);
    const type = b.has(name) ? 'MODIFIED' : 'ADDED';
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    b.set(name, stored);
    for (const w of this.watchers) if (w.open && w.plural === plural && this.matches(w.sel, stored)) w.onEvent({ type, object: stored });
  }

  /** Deletes an object and tells open watches. */
  remove(plural: string, name: string): void {
    const b = this.bucket(plural);
    const old = b.get(name);
    if (!old) return;
    b.delete(name);
    const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    for (const w of this.watchers) if (w.open && w.plural === plural && this.matches(w.sel, gone)) w.onEvent({ type: 'DELETED', object: gone });
  }

  /** Ends every open watch as a server restart would. */
  dropWatches(err: unknown = new Error('connection reset')): void {
    for (const w of this.watchers.splice(0)) if (w.open) { w.open = false; w.onDone(err); }
  }

  async list<T extends KubeObject>(type: ResourceType, sel: Selection): Promise<ListPage<T>> {
    const items = [...this.bucket(type.plural).values()].filter((o) => this.matches(sel, o));
    return { items: items as T[], resourceVersion: String(this.rv) };
  }

  async watch<T extends KubeObject>(type: ResourceType, sel: Selection, _rv: string, _timeout: number, onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void): Promise<WatchHandle> {
    const w: Watcher = { plural: type.plural, sel, onEvent: onEvent as (e: WatchEvent<KubeObject>) => void, onDone, open: true };
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
