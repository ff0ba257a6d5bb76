import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetaStore, type EndpointMeta } from '../../agent/src/endpoints/meta-store.js';
import { hostVethName } from '../../agent/src/endpoints/naming.js';

function meta(n: number, over: Partial<EndpointMeta> = {}): EndpointMeta {
  const containerId = `c${n}`;
  return {
    endpointId: n,
    containerId,
    ifName: 'eth0',
    netns: `/var/run/netns/pod${n}`,
    podNamespace: 'default',
    podName: `pod-${n}`,
    ip: `10.244.1.${n + 1}`,
    hostIfName: hostVethName(containerId, 'eth0'),
    hostIfIndex: 100 + n,
    podMac: '02:00:00:00:00:01',
    hostMac: '02:00:00:00:00:02',
    created: '2024-01-01T00:00:00.000Z',
    ...over,
  };
}

const byId = (a: EndpointMeta, b: EndpointMeta): number => a.endpointId - b.endpointId;

describe('MetaStore', () => {
  let root: string;
  let dir: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pn-meta-'));
    dir = join(root, 'endpoints');
  });
  afterEach(() => { rmSync(root, { recursive: true, force: true }); });

  it('lists nothing when the directory does not exist yet', () => {
    const store = new MetaStore(dir);
    assert.deepEqual(store.list(), []);
    assert.equal(store.get('pn000000000000'), undefined);
  });

  it('gets back what it put, keyed by host interface name', () => {
    const store = new MetaStore(dir);
    const m = meta(1);
    store.put(m);
    assert.deepEqual(store.get(m.hostIfName), m);
    assert.deepEqual(store.list(), [m]);
    assert.equal(store.get('pn000000000000'), undefined);
  });

  it('creates the directory 0700 and writes one 0600 file per endpoint, leaving no .tmp behind', () => {
    const store = new MetaStore(dir);
    store.put(meta(1));
    store.put(meta(2));
    store.put(meta(1, { hostIfIndex: 999 }));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, [`${meta(1).hostIfName}.json`, `${meta(2).hostIfName}.json`].sort());
    for (const f of files) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, `${meta(1).hostIfName}.json`), 'utf8')), meta(1, { hostIfIndex: 999 }));
  });

  it('replaces an entry on a second put', () => {
    const store = new MetaStore(dir);
    store.put(meta(1));
    store.put(meta(1, { hostIfIndex: 7 }));
    assert.equal(store.get(meta(1).hostIfName)?.hostIfIndex, 7);
    assert.equal(store.list().length, 1);
  });

  it('shows earlier entries to a fresh store on the same directory, as after an agent restart', () => {
    const first = new MetaStore(dir);
    first.put(meta(1));
    first.put(meta(2));
    first.put(meta(3));
    first.remove(meta(2).hostIfName);
    const second = new MetaStore(dir);
    assert.deepEqual(second.list().sort(byId), [meta(1), meta(3)]);
    assert.deepEqual(second.get(meta(3).hostIfName), meta(3));
    assert.equal(second.get(meta(2).hostIfName), undefined);
  });

  it('keeps optional pod labels absent when they were not given', () => {
    const m = meta(4);
    delete m.podNamespace;
    delete m.podName;
    new MetaStore(dir).put(m);
    const got = new MetaStore(dir).get(m.hostIfName);
    assert.deepEqual(got, m);
    assert.equal(got !== undefined && 'podName' in got, false);
  });

  it('removes an entry from memory and disk, and removing a missing one is fine', () => {
    const store = new MetaStore(dir);
    store.put(meta(1));
    store.remove(meta(1).hostIfName);
    assert.equal(store.get(meta(1).hostIfName), undefined);
    assert.deepEqual(store.list(), []);
    assert.equal(existsSync(join(dir, `${meta(1).hostIfName}.json`)), false);
    assert.doesNotThrow(() => store.remove(meta(1).hostIfName));
    assert.doesNotThrow(() => new MetaStore(join(root, 'never-made')).remove('pn000000000000'));
  });

  it('skips unreadable and non-JSON files and ignores other names', () => {
    mkdirSync(dir, { recursive: true });
    new MetaStore(dir).put(meta(1));
    writeFileSync(join(dir, 'pn0000000000aa.json'), '{"endpointId": 9, "hostIfName": "pn00'); // torn
    writeFileSync(join(dir, 'pn0000000000bb.json'), 'null');
    mkdirSync(join(dir, 'pn0000000000cc.json')); // EISDIR on read
    writeFileSync(join(dir, 'notes.txt'), JSON.stringify(meta(5)));
    writeFileSync(join(dir, `${meta(6).hostIfName}.json.tmp`), JSON.stringify(meta(6)));
    const store = new MetaStore(dir);
    assert.deepEqual(store.list(), [meta(1)]);
  });

  it('skips a file holding valid JSON that is not endpoint metadata', () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'pn0000000000dd.json'), '{}');
    writeFileSync(join(dir, 'pn0000000000ee.json'), '[1,2]');
    assert.deepEqual(new MetaStore(dir).list(), []);
  });
});
