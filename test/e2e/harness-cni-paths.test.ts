/**
 * The CNI directory installer, exercised on private directories: what it
 * displaces comes back, what it creates goes away, and its lock keeps two
 * tests from owning /etc/cni/net.d at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installCniPaths } from './tools/index.js';

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out[`${r}/`] = '';
        await walk(p, r);
      } else out[r] = `${(await stat(p)).mode.toString(8)}:${await readFile(p, 'utf8')}`;
    }
  };
  await walk(dir, '');
  return out;
}

describe('installCniPaths on private directories', () => {
  let root = '';
  let conf = '';
  let bin = '';
  let lock = '';
  let plugin = '';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'podnet-cnipaths-'));
    conf = join(root, 'etc', 'cni', 'net.d');
    bin = join(root, 'opt', 'cni', 'bin');
    lock = join(root, 'lock');
    plugin = join(root, 'src', 'ptp');
    await mkdir(join(root, 'src'));
    await writeFile(plugin, '#!/bin/sh\necho test plugin\n', { mode: 0o755 });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('installed files replace existing ones and the originals come back on restore', async () => {
    await mkdir(conf, { recursive: true });
    await mkdir(bin, { recursive: true });
    await writeFile(join(conf, '05-other.conflist'), '{"name":"other"}');
    await writeFile(join(conf, '10-mine.conflist'), '{"name":"old-mine"}');
    await writeFile(join(bin, 'ptp'), 'original ptp', { mode: 0o700 });
    await writeFile(join(bin, 'bridge'), 'original bridge', { mode: 0o755 });
    const before = { conf: await tree(conf), bin: await tree(bin), parent: (await readdir(join(root, 'etc', 'cni'))).sort() };

    const inst = await installCniPaths({ confDir: conf, binDir: bin, lockPath: lock, conflists: { '10-mine.conflist': { name: 'mine' } }, plugins: [plugin] });
    try {
      assert.deepEqual(await readdir(conf), ['10-mine.conflist'], 'the conf dir holds only the test conflist');
      assert.equal(JSON.parse(await readFile(join(conf, '10-mine.conflist'), 'utf8')).name, 'mine');
      assert.equal(await readFile(join(bin, 'ptp'), 'utf8'), '#!/bin/sh\necho test plugin\n');
      assert.ok(((await stat(join(bin, 'ptp'))).mode & 0o111) !== 0, 'the plugin copy is executable');
      assert.equal(await readFile(join(bin, 'bridge'), 'utf8'), 'original bridge', 'plugins not named stay put');
      const backups = (await readdir(join(root, 'etc', 'cni'))).filter((n) => n.startsWith('.podnet-backup-'));
      assert.equal(backups.length, 1);
      assert.match(await readFile(join(root, 'etc', 'cni', backups[0] ?? '', 'MANIFEST'), 'utf8'), /05-other\.conflist -> /);
    } finally {
      await inst.restore();
    }
    assert.deepEqual(await tree(conf), before.conf);
    assert.deepEqual(await tree(bin), before.bin);
    assert.deepEqual((await readdir(join(root, 'etc', 'cni'))).sort(), before.parent, 'no backup directory is left');
    await rm(join(root, 'etc'), { recursive: true });
    await rm(join(root, 'opt'), { recursive: true });
  });

  test('directories the installer created are removed again, parents included', async () => {
    const inst = await installCniPaths({ confDir: conf, binDir: bin, lockPath: lock, conflists: { 'a.conflist': '{}' }, plugins: [plugin] });
    assert.ok((await stat(conf)).isDirectory());
    await inst.restore();
    assert.deepEqual((await readdir(root)).sort(), ['src'], 'etc/ and opt/ are gone');
  });

  test('a failed install puts everything back and releases the lock', async () => {
    await mkdir(conf, { recursive: true });
    await writeFile(join(conf, '00-keep.conflist'), 'keep');
    await assert.rejects(
      installCniPaths({ confDir: conf, binDir: bin, lockPath: lock, conflists: { 'x.conflist': '{}' }, plugins: [join(root, 'src', 'missing')] }),
      /ENOENT/,
    );
    assert.deepEqual(await readdir(conf), ['00-keep.conflist']);
    await assert.rejects(stat(bin), /ENOENT/, 'the bin dir it created is gone');
    await assert.rejects(stat(lock), /ENOENT/, 'the lock is released');
    await rm(join(root, 'etc'), { recursive: true });
  });

  test('a second installer waits for the lock and times out while the first holds it', async () => {
    const first = await installCniPaths({ confDir: conf, binDir: bin, lockPath: lock, conflists: { 'a.conflist': '{}' } });
    try {
      const started = Date.now();
      await assert.rejects(installCniPaths({ confDir: conf, binDir: bin, lockPath: lock, lockTimeoutMs: 300 }), /held by pid \d+/);
      assert.ok(Date.now() - started >= 300, 'it waited for the timeout');
    } finally {
      await first.restore();
    }
    const second = await installCniPaths({ confDir: conf, binDir: bin, lockPath: lock, lockTimeoutMs: 300 });
    await second.restore();
  });

  test('a lock left by a dead process is taken over', async () => {
    await mkdir(lock);
    // PID 2^22 + 1 is above the kernel's pid_max ceiling, so no process has it.
    await writeFile(join(lock, 'pid'), `${2 ** 22 + 1}\n`);
    const inst = await installCniPaths({ confDir: conf, binDir: bin, lockPath: lock, lockTimeoutMs: 1_000 });
    assert.equal((await readFile(join(lock, 'pid'), 'utf8')).trim(), String(process.pid));
    await inst.restore();
    await assert.rejects(stat(lock), /ENOENT/);
  });
});
