/**
 * Network namespaces for real (root): creation and removal as `ip netns`
 * sees them, and the guarantee that the calling thread always comes back to
 * its own namespace.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NetlinkHandle, NetNs, withNetns } from '../../agent/src/netlink/index.js';
import { PodnetError, SyscallError } from '../../agent/src/errors/index.js';

const suffix = randomBytes(3).toString('hex');
const created: Array<{ name: string; dir?: string }> = [];
const opened: Array<{ close(): void }> = [];

/** Runs a command with a hard time limit and returns its stdout; fails the test on a non-zero exit. */
function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stderr || r.error}`);
  return r.stdout;
}

function track<T extends { close(): void }>(x: T): T {
  opened.push(x);
  return x;
}

function createNs(name: string, dir?: string): NetNs {
  created.push(dir === undefined ? { name } : { name, dir });
  return track(NetNs.create(name, dir));
}

let privateDir = '';

before(() => {
  privateDir = mkdtempSync(join(tmpdir(), 'pn-netns-'));
});

after(() => {
  for (const x of opened.reverse()) x.close();
  for (const { name, dir } of created) NetNs.remove(name, dir);
  if (privateDir) {
    // The directory was made a shared bind mount of itself by NetNs.create.
    spawnSync('umount', ['-l', privateDir], { timeout: 10_000 });
    rmSync(privateDir, { recursive: true, force: true });
  }
});

test('create makes a namespace that ip netns lists and remove makes it disappear', () => {
  const name = `pnns-a-${suffix}`;
  const ns = createNs(name);
  assert.equal(ns.name, name);
  assert.equal(ns.path, `/run/netns/${name}`);
  const listed = JSON.parse(run('ip', ['-j', 'netns', 'list']) || '[]') as Array<{ name: string }>;
  assert.ok(listed.some((n) => n.name === name), `${name} missing from ip netns list`);
  // A fresh namespace has only its own loopback, as ip sees from inside it.
  const links = JSON.parse(run('ip', ['-n', name, '-j', 'link', 'show'])) as Array<{ ifname: string }>;
  assert.deepEqual(
    links.map((l) => l.ifname),
    ['lo'],
  );
  const home = NetNs.current();
  try {
    assert.equal(ns.sameAs(home), false);
    assert.equal(ns.sameAs(track(NetNs.open(ns.path))), true);
  } finally {
    home.close();
  }
  ns.close();
  NetNs.remove(name);
  assert.equal(existsSync(`/run/netns/${name}`), false);
  const after = JSON.parse(run('ip', ['-j', 'netns', 'list']) || '[]') as Array<{ name: string }>;
  assert.ok(!after.some((n) => n.name === name));
});

test('remove succeeds when the namespace is already gone', () => {
  const name = `pnns-gone-${suffix}`;
  assert.equal(existsSync(`/run/netns/${name}`), false);
  NetNs.remove(name);
  NetNs.remove(name);
});

test('create refuses a name that is already taken with EEXIST and leaves the existing one alone', () => {
  const name = `pnns-b-${suffix}`;
  const first = createNs(name);
  assert.throws(
    () => NetNs.create(name),
    (e: unknown) => e instanceof SyscallError && e.errnoName === 'EEXIST',
  );
  const again = track(NetNs.open(`/run/netns/${name}`));
  assert.ok(again.sameAs(first));
});

test('create refuses a name that is not a single path component', () => {
  for (const bad of ['', '..', 'a/b']) {
    assert.throws(() => NetNs.create(bad), (e: unknown) => e instanceof PodnetError && e.code === 'INVALID_ARGUMENT', JSON.stringify(bad));
  }
});

test('create works in a directory other than /run/netns', () => {
  const name = `pnns-c-${suffix}`;
  const ns = createNs(name, privateDir);
  assert.equal(ns.path, join(privateDir, name));
  const h = track(NetlinkHandle.open({ netns: ns }));
  assert.deepEqual(
    h.links().map((l) => l.name),
    ['lo'],
  );
});

test('withNetns runs the callback inside the namespace and returns its value', () => {
  const ns = createNs(`pnns-d-${suffix}`);
  const home = track(NetNs.current());
  const inside = withNetns(ns, () => {
    const cur = NetNs.current();
    try {
      return cur.inode();
    } finally {
      cur.close();
    }
  });
  assert.equal(inside, ns.inode());
  const now = track(NetNs.current());
  assert.equal(now.inode(), home.inode());
});

test('the calling thread is back in its own namespace after the callback throws', () => {
  const ns = createNs(`pnns-e-${suffix}`);
  const before = track(NetNs.current()).inode();
  assert.notEqual(before, ns.inode());
  let sawInside = 0n;
  assert.throws(
    () =>
      withNetns(ns, () => {
        const cur = NetNs.current();
        sawInside = cur.inode();
        cur.close();
        throw new Error('failure inside the namespace');
      }),
    /failure inside the namespace/,
  );
  assert.equal(sawInside, ns.inode(), 'the callback did run inside the namespace');
  assert.equal(track(NetNs.current()).inode(), before);
});

test('withNetns refuses an async callback and still returns the thread home', () => {
  const ns = createNs(`pnns-f-${suffix}`);
  const before = track(NetNs.current()).inode();
  assert.throws(
    () => withNetns(ns, async () => 1),
    (e: unknown) => e instanceof PodnetError && e.code === 'INVALID_ARGUMENT' && /returned a promise/.test(e.message),
  );
  assert.equal(track(NetNs.current()).inode(), before);
});

test('withNetns on a closed namespace fails with EBADF without moving the thread', () => {
  const ns = createNs(`pnns-g-${suffix}`);
  const before = track(NetNs.current()).inode();
  ns.close();
  assert.equal(ns.fd, -1);
  assert.throws(
    () => withNetns(ns, () => 1),
    (e: unknown) => e instanceof SyscallError && e.errnoName === 'EBADF',
  );
  assert.equal(track(NetNs.current()).inode(), before);
});

test('a handle opened inside a namespace acts there while the thread stays home', () => {
  const name = `pnns-h-${suffix}`;
  const ns = createNs(name);
  const before = track(NetNs.current()).inode();
  const h = track(NetlinkHandle.open({ netns: ns }));
  assert.equal(track(NetNs.current()).inode(), before);
  const lo = h.linkByName('lo');
  assert.ok(lo);
  assert.equal(lo.up, false);
  h.setUp(lo.index);
  const seen = JSON.parse(run('ip', ['-n', name, '-j', 'link', 'show', 'lo'])) as Array<{ flags: string[] }>;
  assert.ok(seen[0]?.flags.includes('UP'), 'ip sees lo up inside the namespace');
  assert.equal(track(NetNs.current()).inode(), before);
});
