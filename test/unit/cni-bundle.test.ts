import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CANNED_RESULT, startFakeAgent, type FakeAgent } from '../../cni/test/fake-agent.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

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
 * Variables a runtime's environment may carry that would change how node or
 * bun start, or what they run: none of them may change an answer.
 */
const HOSTILE_ENV: Readonly<Record<string, string>> = {
  NODE_OPTIONS: '--require /nonexistent/podnet-hook.js',
  NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt',
  BUN_BE_BUN: '1',
  BUN_OPTIONS: '--help',
  BUN_INSPECT: '127.0.0.1:1',
  BUN_JSC_useJIT: '0',
  BUN_CONFIG_VERBOSE_FETCH: '1',
  NODE_ENV: 'development',
};

/**
 * Execs the copied executable the way a runtime does: `env` is its whole
 * environment (no PATH, no HOME), `cwd` its working directory.
 */
function exec(env: Record<string, string>, stdin: string, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Exec> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(podnet, [], { env, cwd: opts.cwd ?? dir, stdio: ['pipe', 'pipe', 'pipe'] });
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
  const exe = join(dir, 'out', 'podnet');
  execFileSync(process.execPath, [join(repo, 'cni/build.mjs'), '--node-bundle', '--outfile', bundle], { cwd: repo, stdio: 'pipe', timeout: 60_000 });
  execFileSync(process.execPath, [join(repo, 'cni/build.mjs'), '--outfile', exe], { cwd: repo, stdio: 'pipe', timeout: 120_000 });
  podnet = join(dir, 'bin', 'podnet');
  mkdirSync(dirname(podnet));
  copyFileSync(exe, podnet);
  chmodSync(podnet, 0o755);
  agent = await startFakeAgent(dir);
});
after(async () => {
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the built CNI entry point', () => {
  it('is one executable ELF file of mode 0755', () => {
    const exe = join(dir, 'out', 'podnet');
    assert.equal(statSync(exe).mode & 0o777, 0o755);
    const head = Buffer.alloc(4);
    const fd = openSync(exe, 'r');
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
    assert.deepEqual([...head], [0x7f, 0x45, 0x4c, 0x46], 'starts with the ELF magic, not a shebang');
  });

  it('compiles a bundle that loads no module besides node:fs, node:path and node:net', () => {
    const text = readFileSync(bundle, 'utf8');
    assert.equal(text.slice(0, text.indexOf('\n')), '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS -u NODE_OPTIONS -u NODE_V8_COVERAGE node');
    assert.ok(!/^(import|export) /m.test(text), 'no ESM syntax at top level');
    const required = new Set([...text.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]));
    assert.ok(required.size > 0, 'found the require calls');
    for (const mod of required) assert.ok(['node:fs', 'node:path', 'node:net'].includes(mod!), `bundle requires ${mod}`);
    assert.ok(!/koffi|yargs|pino|prom-client|node:http\b/.test(text), 'no agent dependencies in the bundle');
  });

  it('answers VERSION with an empty environment', async () => {
    const r = await exec({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\n');
    assert.equal(r.stderr, '');
  });

  it('answers VERSION unchanged when the environment carries node and bun start-up variables', async () => {
    const plain = await exec({ CNI_COMMAND: 'VERSION' }, '');
    for (const [name, value] of Object.entries(HOSTILE_ENV)) {
      const r = await exec({ CNI_COMMAND: 'VERSION', [name]: value }, '');
      assert.deepEqual(r, plain, `with ${name}=${value}`);
    }
    const all = await exec({ CNI_COMMAND: 'VERSION', ...HOSTILE_ENV }, '');
    assert.deepEqual(all, plain, 'with all of them at once');
  });

  it('does not run code named by BUN_OPTIONS --preload', async () => {
    const hook = join(dir, 'hook.js');
    const mark = join(dir, 'hook-ran');
    writeFileSync(hook, `require('node:fs').writeFileSync(${JSON.stringify(mark)}, 'x');\n`);
    const r = await exec({ CNI_COMMAND: 'VERSION', BUN_OPTIONS: `--preload ${hook}` }, '');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(mark), false, 'the preload hook ran');
  });

  it('reads no .env or bunfig.toml from its working directory', async () => {
    const cwd = join(dir, 'cwd-with-config');
    mkdirSync(cwd, { recursive: true });
    writeFileSync(join(cwd, '.env'), 'CNI_COMMAND=VERSION\n');
    writeFileSync(join(cwd, 'bunfig.toml'), 'preload = ["./nonexistent.js"]\n');
    const r = await exec({}, '', { cwd });
    assert.equal(r.code, 1, r.stdout);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '1.1.0', code: 4, msg: 'read CNI_COMMAND: not set' });
  });

  it('runs ADD against the agent and prints the converted result', async () => {
    const r = await exec({ ...cniEnv('ADD'), ...HOSTILE_ENV }, conf({ cniVersion: '1.0.0', mtu: 1450 }));
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
    assert.ok(e.msg.includes(join(dir, 'down.sock')), e.msg);
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

  it('exits 1 with code 11 on ADD when the socket path is no listening socket (a crashed agent)', async () => {
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    const r = await exec(cniEnv('ADD'), conf({ agentSocket: stale }));
    assert.equal(r.code, 1, r.stdout);
    const e = JSON.parse(r.stdout) as { code: number; msg: string };
    assert.equal(e.code, 11);
    assert.match(e.msg, /ECONNREFUSED/);
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

  it('exits 1 with code 6 for stdin that is not JSON', async () => {
    const r = await exec(cniEnv('ADD'), '{not json');
    assert.equal(r.code, 1);
    assert.equal((JSON.parse(r.stdout) as { code: number }).code, 6);
  });

  it('reads a config larger than a pipe buffer from stdin', async () => {
    const r = await exec(cniEnv('DEL'), conf({ padding: 'x'.repeat(256 * 1024) }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(`${agent.requests.at(-1)!.method} ${agent.requests.at(-1)!.url}`, 'POST /v1/cni/del');
  });
});
