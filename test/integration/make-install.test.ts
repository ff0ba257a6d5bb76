/**
 * `make install` and `make uninstall` into a DESTDIR: what lands where, that
 * only production dependencies are installed, that the installed CLI loads
 * them, and that uninstall removes exactly what install put there.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const VARS = ['PREFIX=/usr/local', 'CNI_BIN_DIR=/opt/cni/bin', 'CNI_CONF_DIR=/etc/cni/net.d'];

function make(target: string, destdir: string): { code: number | null; out: string } {
  const r = spawnSync('make', ['--no-print-directory', '-s', target, `DESTDIR=${destdir}`, ...VARS], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}${r.error ? r.error.message : ''}` };
}

/** Every file and symlink under `dir`, relative to it, sorted. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

describe('make install and make uninstall with DESTDIR', () => {
  const dest = mkdtempSync(join(tmpdir(), 'podnet-install-'));
  const lib = join(dest, 'usr/local/lib/podnet');
  let installed: string[] = [];
  before(() => {
    const r = make('install', dest);
    assert.equal(r.code, 0, `make install:\n${r.out}`);
    installed = files(dest);
  });
  after(() => rmSync(dest, { recursive: true, force: true }));

  test('install puts the CLI on the PATH, the agent bundle, the BPF sources and the CNI entry point and conflist in place', () => {
    for (const f of [
      'usr/local/bin/podnet', 'usr/local/lib/podnet/bin/podnet', 'usr/local/lib/podnet/build/podnet.mjs', 'usr/local/lib/podnet/package.json',
      'usr/local/lib/podnet/package-lock.json', 'usr/local/lib/podnet/bpf/pod.bpf.c', 'usr/local/lib/podnet/bpf/lib/maps/endpoints.h', 'usr/local/lib/podnet/bpf/cflags',
      'opt/cni/bin/podnet', 'etc/cni/net.d/10-podnet.conflist',
    ]) assert.ok(installed.includes(f), `${f} is installed`);
    const link = join(dest, 'usr/local/bin/podnet');
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.equal(readlinkSync(link), '/usr/local/lib/podnet/bin/podnet', 'the link points at the installed path, not into DESTDIR');
    assert.equal(lstatSync(join(lib, 'bin/podnet')).mode & 0o111, 0o111, 'the CLI is executable');
  });

  test('install copies no build tree, no tests and no TypeScript sources', () => {
    const outside = installed.filter((f) => !f.startsWith('usr/local/lib/podnet/node_modules/'));
    assert.deepEqual(outside.filter((f) => /(^|\/)(test|agent|cni\/src)\//.test(f) || f.endsWith('.ts') || f.includes('/build/bpf/') || f.includes('/build/cni/')), []);
  });

  test('install brings the production dependencies and none of the development ones', () => {
    const modules = new Set(readdirSync(join(lib, 'node_modules')));
    for (const dep of ['koffi', 'prom-client', 'pino', 'yargs', 'yaml', 'js-yaml', 'ipaddr.js']) assert.ok(modules.has(dep), `${dep} is installed`);
    for (const dev of ['typescript', 'esbuild', 'tsx', '@esbuild', '@types']) assert.ok(!modules.has(dev), `${dev} (a devDependency) is not installed`);
  });

  test('the installed CLI starts with the installed dependencies alone', () => {
    const r = spawnSync(process.execPath, [join(lib, 'bin/podnet'), '--help'], { encoding: 'utf8', timeout: 60_000, cwd: dest, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
    assert.equal(r.status, 0, `podnet --help from the install:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /agent/);
  });

  test('uninstall removes every file install put there and leaves a podnet on the PATH it did not make', () => {
    const other = mkdtempSync(join(tmpdir(), 'podnet-install-'));
    try {
      // A second install into another root whose bin/podnet is someone else's file.
      mkdirSync(join(other, 'usr/local/bin'), { recursive: true });
      assert.equal(make('install', other).code, 0);
      rmSync(join(other, 'usr/local/bin/podnet'));
      writeFileSync(join(other, 'usr/local/bin/podnet'), '#!/bin/sh\n');
      assert.equal(make('uninstall', other).code, 0);
      assert.deepEqual(files(other), ['usr/local/bin/podnet']);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    const r = make('uninstall', dest);
    assert.equal(r.code, 0, `make uninstall:\n${r.out}`);
    assert.deepEqual(files(dest), [], 'nothing is left behind');
    assert.equal(make('uninstall', dest).code, 0, 'uninstall twice succeeds');
  });
});

describe('make help', () => {
  test('lists every documented target with one line each', () => {
    const r = spawnSync('make', ['--no-print-directory', '-s', 'help'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const targets = lines.map((l) => l.trim().split(/\s+/)[0]);
    for (const t of ['setup', 'build', 'test', 'test-unit', 'test-e2e', 'demo', 'bench', 'install', 'install-cni', 'uninstall', 'uninstall-cni', 'clean', 'help']) {
      assert.ok(targets.includes(t), `make help lists ${t}`);
    }
    for (const l of lines) assert.match(l, /^ {2}[a-z][-a-z0-9]* +\S/, `one target and its text per line: ${JSON.stringify(l)}`);
  });
});
