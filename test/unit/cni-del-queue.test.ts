import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CniDelRequest } from '../../agent/src/api/protocol.js';
import { delQueueDir, delQueueFileName, enqueueDel, readDelQueue, removeFromDelQueue } from '../../cni/src/del-queue.js';

let root: string;
let n = 0;
/** A fresh queue directory per test. */
const freshDir = (): string => join(root, `state-${++n}`, 'del-queue');

const req = (containerId: string, extra: Partial<CniDelRequest> = {}): CniDelRequest => ({
  containerId,
  ifName: 'eth0',
  args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: `pod-${containerId}` },
  network: 'podnet',
  cniVersion: '1.1.0',
  ...extra,
});

before(() => {
  root = mkdtempSync(join(tmpdir(), 'pn-cni-delq-'));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('DEL queue', () => {
  it('lives in <stateDir>/del-queue and names entries <containerId>-<ifName>.json', () => {
    assert.equal(delQueueDir('/var/lib/podnet'), '/var/lib/podnet/del-queue');
    assert.equal(delQueueFileName('abc', 'eth0'), 'abc-eth0.json');
  });

  it('refuses names that could leave the directory', () => {
    for (const [c, i] of [
      ['../x', 'eth0'],
      ['a/b', 'eth0'],
      ['abc', '..'],
      ['', 'eth0'],
      ['.hidden', 'eth0'],
    ] as const) {
      assert.throws(() => delQueueFileName(c, i), /not usable in a file name/, `${c} ${i}`);
    }
  });

  it('writes the request as JSON with mode 0600 in a 0700 directory and leaves no temp file', () => {
    const dir = freshDir();
    const r = req('c1', { netns: '/var/run/netns/p', mtu: 1450 });
    const path = enqueueDel(dir, r);
    assert.equal(path, join(dir, 'c1-eth0.json'));
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), r);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['c1-eth0.json']);
  });

  it('replaces an earlier entry for the same attachment', () => {
    const dir = freshDir();
    enqueueDel(dir, req('c1', { cniVersion: '1.0.0' }));
    enqueueDel(dir, req('c1', { cniVersion: '1.1.0' }));
    const entries = readDelQueue(dir);
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.kind, 'request');
    assert.equal(entries[0]?.kind === 'request' && entries[0].request.cniVersion, '1.1.0');
  });

  it('reads an absent directory as an empty queue', () => {
    assert.deepEqual(readDelQueue(join(root, 'never-created')), []);
  });

  it('lists requests oldest first, skips temp files and reports unreadable entries as invalid', () => {
    const dir = freshDir();
    const p1 = enqueueDel(dir, req('newer'));
    const p2 = enqueueDel(dir, req('older', { netns: '/proc/1/ns/net' }));
    const old = new Date(Date.now() - 60_000);
    utimesSync(p2, old, old);
    writeFileSync(join(dir, '.x-eth0.json.123.abc.tmp'), '{"partial":');
    writeFileSync(join(dir, 'broken-eth0.json'), '{"containerId":');
    writeFileSync(join(dir, 'wrong-eth0.json'), '{"containerId":"wrong","ifName":"eth0","network":"podnet"}');
    writeFileSync(join(dir, 'README'), 'not an entry');
    const entries = readDelQueue(dir);
    const requests = entries.filter((e) => e.kind === 'request');
    assert.deepEqual(
      requests.map((e) => e.kind === 'request' && e.request.containerId),
      ['older', 'newer'],
    );
    assert.deepEqual(requests[0], { kind: 'request', path: p2, request: req('older', { netns: '/proc/1/ns/net' }) });
    assert.equal(requests[1]?.path, p1);
    const invalid = entries.filter((e) => e.kind === 'invalid');
    assert.deepEqual(invalid.map((e) => e.path).sort(), [join(dir, 'broken-eth0.json'), join(dir, 'wrong-eth0.json')]);
    assert.ok(invalid.every((e) => e.kind === 'invalid' && e.reason.startsWith('decode ')));
    assert.ok(invalid.some((e) => e.kind === 'invalid' && /cniVersion missing/.test(e.reason)));
  });

  it('removes a replayed entry and tolerates removing it twice', () => {
    const dir = freshDir();
    const path = enqueueDel(dir, req('c1'));
    removeFromDelQueue(path);
    assert.ok(!existsSync(path));
    removeFromDelQueue(path);
    assert.deepEqual(readDelQueue(dir), []);
  });

  it('fails with the fs error when the directory cannot be created', () => {
    const blocker = join(root, 'file-not-dir');
    writeFileSync(blocker, '');
    assert.throws(() => enqueueDel(join(blocker, 'del-queue'), req('c1')), (e: NodeJS.ErrnoException) => e.code === 'ENOTDIR' || e.code === 'EEXIST');
  });

  it('keeps an existing directory mode instead of widening or narrowing it', () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    enqueueDel(dir, req('c1'));
    assert.equal(statSync(dir).mode & 0o777, 0o750);
  });
});
