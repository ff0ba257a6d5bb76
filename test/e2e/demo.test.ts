/**
 * `make demo`'s script as a user runs it: with overrides for the pod CIDR and
 * the metrics port, output to a pipe (no colour codes), and refusing a pod
 * CIDR that overlaps an address or route of this host before it creates
 * anything. Traffic stays between the namespaces the demo makes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../lib/prometheus.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ESC = '\x1b';

function demo(env: Record<string, string>, viaTerminal = false): { code: number | null; out: string; err: string } {
  const base = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env['HOME'] ?? '/root', ...env };
  // script(1) gives the demo a terminal on stdout; its output is then the terminal's.
  const [cmd, args] = viaTerminal ? ['script', ['-qec', 'bash scripts/demo.sh', '/dev/null']] as const : ['bash', ['scripts/demo.sh']] as const;
  const r = spawnSync(cmd, [...args], { cwd: ROOT, env: base, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: `${r.stderr}${r.error ? r.error.message : ''}` };
}

const demoDirs = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('podnet-demo.'));

test('the demo runs with an overridden pod CIDR and metrics port, and prints no colour codes to a pipe', async () => {
  const cidr = `10.239.${randomBytes(1)[0]!}.0/24`;
  const port = await freePort();
  const r = demo({ DEMO_POD_CIDR: cidr, DEMO_METRICS_PORT: String(port) });
  assert.equal(r.code, 0, `demo failed:\n${r.out}\n${r.err}`);
  assert.match(r.out, /counters equal the traffic sent/);
  assert.match(r.out, new RegExp(`pod CIDR ${cidr.replace(/\./g, '\\.')}`));
  assert.match(r.out, new RegExp(`Live metrics from http://127\\.0\\.0\\.1:${port}/metrics`));
  assert.match(r.out, /podnet_reconcile_runs_total\{result="ok"\}/, 'the new metrics are shown');
  assert.match(r.out, /A Service in front of backend and db: demo\/web at 10\.96\.7\.10:80/, 'the demo grows a Service');
  assert.match(r.out, /clusterIP: 10\.96\.7\.10\n/, 'the services file it wrote is shown');
  assert.ok(!r.out.includes(ESC), 'no escape sequence in piped output');
});

test('the demo refuses a pod CIDR that overlaps a route of this host, names the override and creates nothing', () => {
  const before = demoDirs();
  const r = demo({ DEMO_POD_CIDR: '127.0.0.0/24' });
  assert.equal(r.code, 1, r.out + r.err);
  assert.match(r.err, /the demo pod CIDR 127\.0\.0\.0\/24 overlaps "127\.0\.0\.0\/8 \(route: local 127\.0\.0\.0\/8 dev lo/);
  assert.match(r.err, /DEMO_POD_CIDR=/);
  assert.deepEqual(demoDirs(), before, 'no demo directory was made');
});

test('the demo refuses a malformed pod CIDR or port, naming the variable', () => {
  for (const [env, msg] of [
    [{ DEMO_POD_CIDR: '10.123.0.0' }, /DEMO_POD_CIDR=10\.123\.0\.0 is not an IPv4 CIDR/],
    [{ DEMO_POD_CIDR: '10.123.0.0/31' }, /DEMO_POD_CIDR=10\.123\.0\.0\/31: the prefix length must be between \/8 and \/30/],
    [{ DEMO_METRICS_PORT: '70000' }, /DEMO_METRICS_PORT=70000 is not a TCP port/],
    [{ DEMO_SERVICE_CIDR: '10.96.7.0' }, /DEMO_SERVICE_CIDR=10\.96\.7\.0 is not an IPv4 CIDR/],
    [{ DEMO_POD_CIDR: '10.123.0.0/24', DEMO_SERVICE_CIDR: '10.123.0.0/25' }, /DEMO_SERVICE_CIDR=10\.123\.0\.0\/25 overlaps the pod CIDR 10\.123\.0\.0\/24/],
  ] as const) {
    const r = demo({ ...env });
    assert.equal(r.code, 1, `${JSON.stringify(env)}: ${r.out}${r.err}`);
    assert.match(r.err, msg);
  }
});

test('the demo uses colour on a terminal unless NO_COLOR is set', () => {
  // Both runs stop at the pod CIDR check, after the first heading.
  const tty = demo({ DEMO_POD_CIDR: '127.0.0.0/24' }, true);
  assert.match(tty.out, /Checking that pod CIDR/);
  assert.ok(tty.out.includes(`${ESC}[1m`), `bold heading on a terminal: ${JSON.stringify(tty.out)}`);
  const plain = demo({ DEMO_POD_CIDR: '127.0.0.0/24', NO_COLOR: '1' }, true);
  assert.match(plain.out, /Checking that pod CIDR/);
  assert.ok(!plain.out.includes(ESC), `no colour with NO_COLOR: ${JSON.stringify(plain.out)}`);
});
