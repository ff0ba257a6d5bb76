/**
 * The agent as an operator runs it: `bin/podnet agent` as its own process,
 * configured from a file, PODNET_* environment and flags (flags win over
 * env, env over the file), logging JSON lines, and stopping on SIGTERM
 * without touching the datapath it pinned.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { rand, testCidr } from '../lib/agent-fixture.js';
import { apiCall } from '../../agent/src/api/client.js';
import { PODNET, startAgentProcess, waitAgentStatus, type AgentProcess } from '../lib/podnet-cli.js';
import type { AgentStatus } from '../../agent/src/api/protocol.js';

type Running = AgentProcess;
const startAgent = startAgentProcess;
const waitReady = (socket: string, r: Running): Promise<AgentStatus> => waitAgentStatus(socket, r);

/** The one JSON log line a failed start-up writes: level fatal, a code and the message. */
function fatalLine(stderr: string): { level: string; code: string; msg: string } {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${stderr}`);
  const rec = JSON.parse(lines[0]!) as { level: string; code: string; msg: string };
  assert.equal(rec.level, 'fatal');
  assert.equal(typeof rec.code, 'string');
  return rec;
}

describe('podnet agent process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-agentproc-'));
  const bpffs = `/sys/fs/bpf/podnet-test-${rand()}`;
  const socket = join(dir, 'agent.sock');
  const running: Running[] = [];
  after(async () => {
    for (const r of running) if (r.child.exitCode === null) { r.child.kill('SIGKILL'); await r.exited; }
    rmSync(bpffs, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  const [fileCidr, envCidr, flagCidr] = [testCidr(240), testCidr(241), testCidr(242)];
  const configFile = join(dir, 'podnet.yaml');
  writeFileSync(configFile, [
    `pod-cidr: ${fileCidr}`,
    `bpffs: ${bpffs}`,
    `state-dir: ${join(dir, 'state')}`,
    `api-socket: ${socket}`,
    'metrics-addr: "off"',
    'source: file:/dev/null',
    'node-name: from-file',
    '',
  ].join('\n'));

  test('flags override PODNET_* env, which overrides the config file', async () => {
    const r = startAgent(['--config', configFile, '--pod-cidr', flagCidr], { PODNET_POD_CIDR: envCidr, PODNET_NODE_NAME: 'from-env' });
    running.push(r);
    const s = await waitReady(socket, r);
    assert.equal(s.podCidr, flagCidr);
    assert.equal(s.nodeName, 'from-env');
    assert.equal(s.datapathMode, 'clsact');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
  });

  test('the environment overrides the file when no flag is given', async () => {
    // A new pod CIDR means new program constants: the agent loads a new
    // generation and retires the old one.
    const r = startAgent(['--config', configFile], { PODNET_POD_CIDR: envCidr });
    running.push(r);
    const s = await waitReady(socket, r);
    assert.equal(s.podCidr, envCidr);
    assert.equal(s.nodeName, 'from-file');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
  });

  test('SIGTERM stops the agent with exit 0, logs JSON lines, and leaves the datapath pinned', async () => {
    // Kubernetes injects these for a Service named podnet; they are not settings.
    const r = startAgent(['--config', configFile, '--log-level', 'info'], { PODNET_SERVICE_HOST: '10.96.0.10', PODNET_PORT: 'tcp://10.96.0.10:9962', PODNET_SERVICE_PORT: '9962' });
    running.push(r);
    await waitReady(socket, r);
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
    const lines = r.stderr().trim().split('\n');
    const records = lines.map((l) => JSON.parse(l) as { msg: string; level: unknown });
    assert.ok(records.some((x) => x.msg === 'agent ready'), 'logged "agent ready"');
    assert.deepEqual([...new Set(records.map((x) => typeof x.level))], ['string'], 'levels are names');
    assert.ok(records.every((x) => ['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(x.level as string)), lines.join('\n'));
    assert.ok(records.some((x) => x.msg.startsWith('stopping agent')), 'logged the stop');
    for (const m of ['pn_endpoints', 'pn_ipam', 'pn_counters', 'pn_events']) assert.ok(existsSync(join(bpffs, m)), `${m} still pinned`);
    const objects = readdirSync(join(bpffs, 'progs')).map((d) => d.replace(/-[0-9a-f]{16}$/, ''));
    assert.ok(objects.includes('pod'), objects.join(', '));
    assert.equal(objects.length, new Set(objects).size, `one program generation pinned per object: ${objects.join(', ')}`);
    assert.equal(existsSync(socket), false, 'the API socket is removed');
  });

  test('a bad setting stops start-up with a message naming it, and changes nothing', () => {
    const before = readdirSync(bpffs).sort();
    const r = spawnSync(PODNET, ['agent', '--config', configFile, '--pod-cidr', '10.243.0.1/24'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1);
    assert.equal(fatalLine(r.stderr).msg, 'start agent: invalid config pod-cidr: "10.243.0.1/24" has host bits set (did you mean 10.243.0.0/24?)');
    const unknown = spawnSync(PODNET, ['agent', '--config', configFile, '--attach-mode', 'xdp'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(fatalLine(unknown.stderr).msg, 'start agent: invalid config attach-mode: "xdp" must be auto, tcx or clsact');
    assert.deepEqual(readdirSync(bpffs).sort(), before);
  });

  test('without root the agent says it needs root and CAP_BPF, not libbpf\'s RLIMIT_MEMLOCK advice', () => {
    const before = readdirSync(bpffs).sort();
    // Settings as flags: the test's config file is in a directory only root can read.
    const flags = ['--pod-cidr', fileCidr, '--bpffs', bpffs, '--state-dir', join(dir, 'state'), '--api-socket', socket, '--metrics-addr', 'off', '--source', 'file:/dev/null'];
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', PODNET, 'agent', ...flags], { encoding: 'utf8', timeout: 30_000, env: { PATH: '/usr/bin:/bin' } });
    assert.equal(r.status, 1, r.stderr);
    const rec = fatalLine(r.stderr);
    assert.equal(rec.code, 'PERMISSION');
    assert.match(rec.msg, /^start agent: needs root \(CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN\); uid 65534 lacks CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN$/);
    assert.doesNotMatch(r.stderr, /RLIMIT_MEMLOCK|libbpf/);
    assert.deepEqual(readdirSync(bpffs).sort(), before);
  });

  test('a busy metrics port stops start-up with a message naming metrics-addr, before anything is loaded', async () => {
    const holder = createServer();
    await new Promise<void>((res) => holder.listen({ host: '127.0.0.1', port: 0 }, res));
    const port = (holder.address() as AddressInfo).port;
    try {
      const before = readdirSync(bpffs).sort();
      const r = spawnSync(PODNET, ['agent', '--config', configFile, '--metrics-addr', `127.0.0.1:${port}`], { encoding: 'utf8', timeout: 30_000, env: { PATH: '/usr/bin:/bin' } });
      assert.equal(r.status, 1, r.stderr);
      const rec = fatalLine(r.stderr);
      assert.equal(rec.code, 'IN_USE');
      assert.equal(rec.msg, `start agent: listen on metrics-addr 127.0.0.1:${port}: EADDRINUSE: another process holds the port; set --metrics-addr (PODNET_METRICS_ADDR) to a free one or "off"`);
      assert.deepEqual(readdirSync(bpffs).sort(), before);
      assert.equal(existsSync(socket), false, 'no API socket was created');
    } finally {
      await new Promise<void>((res) => holder.close(() => res()));
    }
  });
});
