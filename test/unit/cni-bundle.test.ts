import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CANNED_RESULT, startFakeAgent, type FakeAgent } from '../../cni/test/fake-agent.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

let dir: string;
let bundle: string;
let podnet: string;
let agent: FakeAgent;

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Execs the copied binary through its shebang, the way a runtime does, with
 * a hostile start-up environment (NODE_OPTIONS that would fail, and a CA
 * bundle that would slow node down) on top of `env`.
 */
function exec(env: Record<string, string>, stdin: string, timeoutMs = 15_000): Promise<Exec> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(podnet, [], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', NODE_OPTIONS: '--require /nonexistent/podnet-hook.js', NODE_EXTRA_CA_CERTS: CA_BUNDLE, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`podnet did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}

const cniEnv = (command: string, extra: Record<string, string> = {}): Record<string, string> => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'bundle1',
  CNI_NETNS: '/var/run/netns/bundle1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns-0',
  ...extra,
});

const conf = (extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ cniVersion: '1.1.0', name: 'podnet', type: 'podnet', agentSocket: agent.socketPath, stateDir: join(dir, 'state'), ...extra });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pn-cni-bundle-'));
  bundle = join(dir, 'out', 'podnet.cjs');
  execFileSync(process.execPath, [join(repo, 'cni/build.mjs'), '--outfile', bundle], { cwd: repo, stdio: 'pipe', timeout: 60_000 });
  podnet = join(dir, 'podnet');
  copyFileSync(bundle, podnet);
  agent = await startFakeAgent(dir);
});
after(async () => {
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the built CNI bundle', () => {
  it('is one executable CommonJS file with the env -S shebang', () => {
    const text = readFileSync(bundle, 'utf8');
    const first = text.slice(0, text.indexOf('\n'));
    assert.equal(first, '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS -u NODE_OPTIONS -u NODE_V8_COVERAGE node');
    assert.equal(statSync(bundle).mode & 0o777, 0o755);
    assert.ok(!/^(import|export) /m.test(text), 'no ESM syntax at top level');
  });

  it('loads no module besides node:fs, node:path and node:net', () => {
    const text = readFileSync(bundle, 'utf8');
    const required = new Set([...text.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]));
    assert.ok(required.size > 0, 'found the require calls');
    for (const mod of required) assert.ok(['node:fs', 'node:path', 'node:net'].includes(mod!), `bundle requires ${mod}`);
    assert.ok(!/koffi|yargs|pino|prom-client|node:http\b/.test(text));
  });

  it('answers VERSION when exec-ed directly, despite a hostile NODE_OPTIONS', async () => {
    const r = await exec({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });

  it('runs ADD against the agent and prints the converted result', async () => {
    const r = await exec(cniEnv('ADD'), conf({ cniVersion: '1.0.0', mtu: 1450 }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const req = agent.requests.at(-1)!;
    assert.equal(req.url, '/v1/cni/add');
    assert.deepEqual(req.body, {
      containerId: 'bundle1',
      netns: '/var/run/netns/bundle1',
      ifName: 'eth0',
      args: { K8S_POD_NAMESPACE: 'kube-system', K8S_POD_NAME: 'dns-0' },
      network: 'podnet',
      cniVersion: '1.0.0',
      mtu: 1450,
    });
    const out = JSON.parse(r.stdout) as { cniVersion: string; ips: unknown[]; interfaces: unknown[] };
    assert.equal(out.cniVersion, '1.0.0');
    assert.deepEqual(out.ips, CANNED_RESULT.ips);
    assert.deepEqual(out.interfaces[1], { name: 'eth0', mac: '0a:58:0a:f4:00:05', sandbox: '/var/run/netns/pod1' });
  });

  it('exits 1 with code 11 on ADD when the agent is down', async () => {
    const r = await exec(cniEnv('ADD'), conf({ agentSocket: join(dir, 'down.sock') }));
    assert.equal(r.code, 1);
    const e = JSON.parse(r.stdout) as { code: number; msg: string; cniVersion: string };
    assert.equal(e.code, 11);
    assert.equal(e.cniVersion, '1.1.0');
    assert.ok(e.msg.includes(join(dir, 'down.sock')));
  });

  it('exits 0 on DEL when the agent is down and leaves the queue entry', async () => {
    const r = await exec(cniEnv('DEL'), conf({ agentSocket: join(dir, 'down.sock') }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
    const file = join(dir, 'state', 'del-queue', 'bundle1-eth0.json');
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {
      containerId: 'bundle1',
      netns: '/var/run/netns/bundle1',
      ifName: 'eth0',
      args: { K8S_POD_NAMESPACE: 'kube-system', K8S_POD_NAME: 'dns-0' },
      network: 'podnet',
      cniVersion: '1.1.0',
    });
    assert.match(r.stderr, /queued in/);
  });

  it('exits 1 with code 50 on STATUS when the agent is down', async () => {
    const r = await exec({ CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' }, conf({ agentSocket: join(dir, 'down.sock') }));
    assert.equal(r.code, 1);
    assert.equal((JSON.parse(r.stdout) as { code: number }).code, 50);
  });

  it('runs DEL, CHECK, GC and STATUS against the agent with empty output', async () => {
    const cases: Array<[Record<string, string>, string, string]> = [
      [cniEnv('DEL'), conf(), 'POST /v1/cni/del'],
      [cniEnv('CHECK'), conf({ prevResult: CANNED_RESULT }), 'POST /v1/cni/check'],
      [{ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf({ 'cni.dev/valid-attachments': [{ containerID: 'bundle1', ifname: 'eth0' }] }), 'POST /v1/cni/gc'],
      [{ CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' }, conf(), 'GET /v1/cni/status'],
    ];
    for (const [env, stdin, route] of cases) {
      const r = await exec(env, stdin);
      assert.equal(r.code, 0, `${route}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '', route);
      const last = agent.requests.at(-1)!;
      assert.equal(`${last.method} ${last.url}`, route);
    }
  });

  it('exits 1 with code 4 naming CNI_IFNAME for an invalid interface name', async () => {
    const r = await exec(cniEnv('ADD', { CNI_IFNAME: 'this-is-too-long0' }), conf());
    assert.equal(r.code, 1);
    const e = JSON.parse(r.stdout) as { code: number; msg: string };
    assert.equal(e.code, 4);
    assert.match(e.msg, /CNI_IFNAME/);
  });

  it('starts within a few ms of a bare node -e 0 although the caller sets NODE_EXTRA_CA_CERTS', (t) => {
    if (!existsSync(CA_BUNDLE)) {
      t.skip(`${CA_BUNDLE} is missing, so NODE_EXTRA_CA_CERTS cannot slow node down here`);
      return;
    }
    const runs = 11;
    const timeOnce = (cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): number => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(cmd, args, { env, input, stdio: ['pipe', 'ignore', 'ignore'], timeout: 10_000 });
      assert.equal(r.status, 0, `${cmd} exited ${r.status}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const base: number[] = [];
    const ours: number[] = [];
    const path = process.env['PATH'] ?? '/usr/bin:/bin';
    // Interleaved, so machine noise hits both series alike.
    for (let i = 0; i < runs; i++) {
      base.push(timeOnce('env', ['-i', `PATH=${path}`, 'node', '-e', '0'], { PATH: path }));
      ours.push(timeOnce(podnet, [], { PATH: path, NODE_EXTRA_CA_CERTS: CA_BUNDLE, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}'));
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const b = median(base);
    const o = median(ours);
    t.diagnostic(`median of ${runs}: env -i node -e 0 ${b.toFixed(1)} ms, podnet VERSION ${o.toFixed(1)} ms`);
    // With NODE_EXTRA_CA_CERTS left in place node takes about three times as long.
    assert.ok(o < b * 1.5 + 15, `podnet VERSION took ${o.toFixed(1)} ms against ${b.toFixed(1)} ms for node -e 0`);
  });
});
