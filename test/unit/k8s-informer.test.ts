import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Informer, NodeSource, nodeInfo, type KubeObject, type KubeTransport, type ListPage, type WatchEvent } from '../../agent/src/k8s/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

type Obj = KubeObject & { spec?: unknown };

const obj = (name: string, rv: string, spec: unknown = {}): Obj => ({ metadata: { name, resourceVersion: rv }, spec });

interface OpenWatch {
  rv: string;
  timeout: number;
  emit(e: WatchEvent<Obj>): void;
  close(err: unknown): void;
  aborted: boolean;
}

/** A transport whose lists and watches the test scripts. */
class FakeTransport implements KubeTransport {
  readonly server = 'https://fake';
  lists: Array<ListPage<Obj> | Error> = [];
  listCalls: Array<{ continueToken: string | undefined }> = [];
  watches: OpenWatch[] = [];
  watchFailures: Error[] = [];

  async list<T extends KubeObject>(_t: unknown, _s: unknown, page: { limit: number; continueToken?: string }): Promise<ListPage<T>> {
    this.listCalls.push({ continueToken: page.continueToken });
    const next = this.lists.shift();
    if (!next) throw new Error('no list scripted');
    if (next instanceof Error) throw next;
    return next as unknown as ListPage<T>;
  }

  async watch<T extends KubeObject>(_t: unknown, _s: unknown, rv: string, timeout: number, onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void) {
    const fail = this.watchFailures.shift();
    if (fail) throw fail;
    const w: OpenWatch = {
      rv, timeout, aborted: false,
      emit: (e) => onEvent(e as unknown as WatchEvent<T>),
      close: (err) => onDone(err),
    };
    this.watches.push(w);
    return { abort: () => { w.aborted = true; } };
  }

  last(): OpenWatch {
    const w = this.watches.at(-1);
    assert.ok(w, 'a watch is open');
    return w;
  }
}

async function until(what: string, cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

function recorder() {
  const events: string[] = [];
  return {
    events,
    handlers: {
      add: (o: Obj) => events.push(`add ${o.metadata!.name}@${o.metadata!.resourceVersion}`),
      update: (o: Obj, old: Obj) => events.push(`update ${o.metadata!.name}@${old.metadata!.resourceVersion}->${o.metadata!.resourceVersion}`),
      delete: (o: Obj) => events.push(`delete ${o.metadata!.name}`),
      synced: () => events.push('synced'),
    },
  };
}

const fast = { backoffInitialMs: 5, backoffMaxMs: 40, random: () => 0.5, watchTimeoutSeconds: 100 };

describe('Informer', () => {
  it('lists every page, resolves synced, and watches from the list\'s resourceVersion with bookmarks advancing it', async () => {
    const t = new FakeTransport();
    t.lists.push({ items: [obj('a', '1')], resourceVersion: '10', continueToken: 'p2' }, { items: [obj('b', '2')], resourceVersion: '11' });
    const r = recorder();
    const inf = new Informer<Obj>(t, { apiVersion: 'v1', kind: 'Node', plural: 'nodes' }, {}, r.handlers, silentLogger(), fast);
    inf.start();
    await inf.synced;
    assert.deepEqual(t.listCalls, [{ continueToken: undefined }, { continueToken: 'p2' }]);
    assert.deepEqual(r.events, ['add a@1', 'add b@2', 'synced']);
    await until('watch', () => t.watches.length === 1);
    assert.equal(t.last().rv, '11');
    t.last().emit({ type: 'MODIFIED', object: obj('a', '12') });
    t.last().emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '15' } } as Obj });
    t.last().emit({ type: 'DELETED', object: obj('b', '16') });
    t.last().emit({ type: 'ADDED', object: obj('c', '17') });
    assert.deepEqual(r.events.slice(3), ['update a@1->12', 'delete b', 'add c@17']);
    assert.deepEqual(inf.list().map((o) => o.metadata!.name).sort(), ['a', 'c']);
    // The server ends the stream after timeoutSeconds: resumed at once from the last version seen.
    t.last().close(null);
    await until('resumed watch', () => t.watches.length === 2);
    assert.equal(t.last().rv, '17');
    assert.equal(inf.stats.watchRestarts, 1);
    assert.equal(inf.stats.relists, 0);
    assert.ok(inf.stats.lastEventMs !== undefined);
    inf.stop();
    assert.equal(t.last().aborted, true);
  });

  it('lists the same array until the store changes, and a new one after every add, update and delete', async () => {
    const t = new FakeTransport();
    t.lists.push({ items: [obj('a', '1'), obj('b', '2')], resourceVersion: '10' });
    const inf = new Informer<Obj>(t, { apiVersion: 'v1', kind: 'Node', plural: 'nodes' }, {}, {}, silentLogger(), fast);
    inf.start();
    await inf.synced;
    await until('watch', () => t.watches.length === 1);
    const first = inf.list();
    assert.equal(inf.list(), first, 'nothing changed: the same array');
    assert.equal(inf.size, 2);
    const names = (): string[] => inf.list().map((o) => `${o.metadata!.name}@${o.metadata!.resourceVersion}`).sort();
    t.last().emit({ type: 'MODIFIED', object: obj('a', '11') });
    assert.notEqual(inf.list(), first);
    assert.deepEqual(names(), ['a@11', 'b@2']);
    assert.deepEqual(first.map((o) => o.metadata!.resourceVersion), ['1', '2'], 'an array handed out is never changed');
    const second = inf.list();
    t.last().emit({ type: 'ADDED', object: obj('c', '12') });
    assert.deepEqual(names(), ['a@11', 'b@2', 'c@12']);
    const third = inf.list();
    t.last().emit({ type: 'DELETED', object: obj('b', '13') });
    assert.deepEqual(names(), ['a@11', 'c@12']);
    assert.ok(second !== third && third !== inf.list());
    assert.equal(inf.size, 2);
    inf.stop();
  });

  it('relists on 410 Gone and tells handlers about objects deleted while it was away', async () => {
    const t = new FakeTransport();
    t.lists.push({ items: [obj('a', '1'), obj('b', '2')], resourceVersion: '5' }, { items: [obj('a', '9')], resourceVersion: '20' });
    const r = recorder();
    const inf = new Informer<Obj>(t, { apiVersion: 'v1', kind: 'Node', plural: 'nodes' }, {}, r.handlers, silentLogger(), fast);
    inf.start();
    await until('watch', () => t.watches.length === 1);
    t.last().emit({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } });
    await until('second watch', () => t.watches.length === 2);
    assert.equal(t.watches[0]!.aborted, true, 'the expired stream is closed');
    assert.equal(t.last().rv, '20');
    assert.deepEqual(r.events, ['add a@1', 'add b@2', 'synced', 'update a@1->9', 'delete b', 'synced']);
    assert.equal(inf.stats.relists, 1);
    inf.stop();
  });

  it('resumes a failed watch after a growing backoff, from the last resourceVersion, and counts each restart', async () => {
    const t = new FakeTransport();
    t.lists.push({ items: [], resourceVersion: '7' });
    const inf = new Informer<Obj>(t, { apiVersion: 'v1', kind: 'Node', plural: 'nodes' }, {}, {}, silentLogger(), fast);
    inf.start();
    await until('watch', () => t.watches.length === 1);
    t.last().emit({ type: 'ADDED', object: obj('x', '8') });
    t.watchFailures.push(new Error('connect ECONNREFUSED'), new Error('connect ECONNREFUSED'));
    const t0 = Date.now();
    t.last().close(new Error('socket hang up'));
    await until('watch after two failed reconnects', () => t.watches.length === 2);
    // 5 ms, then 10, then 20 (jitter 0.5 keeps each as is).
    assert.ok(Date.now() - t0 >= 30, `backed off ${Date.now() - t0} ms`);
    assert.equal(t.last().rv, '8');
    assert.equal(inf.stats.watchRestarts, 3);
    assert.equal(inf.stats.errors, 3);
    assert.match(inf.stats.lastError ?? '', /ECONNREFUSED/);
    inf.stop();
  });

  it('retries a failed first list and resolves synced only once one succeeds', async () => {
    const t = new FakeTransport();
    t.lists.push(new Error('503 Service Unavailable'), { items: [obj('a', '1')], resourceVersion: '3' });
    const inf = new Informer<Obj>(t, { apiVersion: 'v1', kind: 'Node', plural: 'nodes' }, {}, {}, silentLogger(), fast);
    inf.start();
    assert.equal(inf.hasSynced, false);
    await inf.synced;
    assert.equal(inf.hasSynced, true);
    assert.equal(t.listCalls.length, 2);
    assert.equal(inf.stats.errors, 1);
    inf.stop();
  });

  it('ignores events of a stream it stopped', async () => {
    const t = new FakeTransport();
    t.lists.push({ items: [], resourceVersion: '1' });
    const r = recorder();
    const inf = new Informer<Obj>(t, { apiVersion: 'v1', kind: 'Node', plural: 'nodes' }, {}, r.handlers, silentLogger(), fast);
    inf.start();
    await until('watch', () => t.watches.length === 1);
    inf.stop();
    t.watches[0]!.emit({ type: 'ADDED', object: obj('late', '2') });
    t.watches[0]!.close(new Error('gone'));
    await sleep(30);
    assert.deepEqual(r.events, ['synced']);
    assert.equal(t.watches.length, 1, 'no new watch after stop');
  });
});

describe('NodeSource', () => {
  it('reads podCIDRs (or the older podCIDR) and InternalIPs of its own Node, and reports each change', async () => {
    const t = new FakeTransport();
    t.lists.push({ items: [{ metadata: { name: 'n1', resourceVersion: '1' }, spec: {} } as Obj], resourceVersion: '1' });
    const src = new NodeSource(t, 'n1', silentLogger(), fast);
    const seen: Array<string[] | undefined> = [];
    src.onChange((n) => seen.push(n?.podCidrs));
    src.start();
    await src.synced;
    assert.deepEqual(src.current(), { name: 'n1', podCidrs: [], internalIps: [] });
    await until('watch', () => t.watches.length === 1);
    t.last().emit({ type: 'MODIFIED', object: { metadata: { name: 'n1', resourceVersion: '2' }, spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'] }, status: { addresses: [{ type: 'InternalIP', address: '10.220.0.2' }, { type: 'Hostname', address: 'n1' }] } } as Obj });
    assert.deepEqual(src.current(), { name: 'n1', podCidrs: ['10.244.0.0/24'], internalIps: ['10.220.0.2'] });
    t.last().emit({ type: 'DELETED', object: { metadata: { name: 'n1', resourceVersion: '3' } } as Obj });
    assert.equal(src.current(), undefined);
    assert.deepEqual(seen, [[], ['10.244.0.0/24'], undefined]);
    src.stop();
  });

  it('falls back to spec.podCIDR when podCIDRs is absent', () => {
    assert.deepEqual(nodeInfo({ metadata: { name: 'x' }, spec: { podCIDR: '10.1.0.0/24' } }).podCidrs, ['10.1.0.0/24']);
  });
});
