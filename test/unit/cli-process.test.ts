/**
 * The `podnet` CLI as a process (bin/podnet after `make build`) against a
 * fake agent socket: environment handling, usage errors, help, completion,
 * and the JSON and table shapes of the read commands.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentStatus, EndpointInfo } from '../../agent/src/api/protocol.js';
import { VERSION } from '../../agent/src/version.js';

const REPO = resolve(fileURLToPath(import.meta.url), '../../..');
const PODNET = join(REPO, 'bin/podnet');

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs bin/podnet with exactly `env` (plus PATH), bounded to 20 s. */
function podnet(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn(PODNET, args, { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', (e) => { clearTimeout(timer); rej(e); });
    child.on('close', (code) => { clearTimeout(timer); res({ code, stdout, stderr }); });
  });
}

const CONTAINER = 'c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc';
const endpoint = (over: Partial<EndpointInfo>): EndpointInfo => ({
  endpointId: 1, containerId: CONTAINER, ifName: 'eth0', podNamespace: 'default', podName: 'web-1', ip: '10.244.1.2',
  hostIfName: 'pn0123456789ab', hostIfIndex: 12, podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02',
  netns: '/run/netns/p1', created: '2026-01-01T00:00:00.000Z', state: 'ready', problems: [], ...over,
});
const ENDPOINTS: EndpointInfo[] = [
  endpoint({}),
  endpoint({ endpointId: 2, containerId: 'aa'.repeat(32), podNamespace: 'kube-system', podName: 'dns-1', ip: '10.244.1.3', state: 'unhealthy', problems: ['tc ingress filter missing on pn0123456789ac'] }),
  endpoint({ endpointId: 3, containerId: 'bb'.repeat(32), podNamespace: undefined, podName: undefined, ip: '10.244.1.4', state: 'deleting' }),
];
const STATUS: AgentStatus = {
  version: '9.9.9', nodeName: 'node-a', ready: false, notReadyReason: 'pod CIDR exhausted', datapathMode: 'clsact', hostRouting: 'kernel', bpffs: '/sys/fs/bpf/podnet',
  podCidr: '10.244.1.0/24', ipam: { size: 253, used: 3, free: 250 }, endpoints: 3, endpointsUnhealthy: 1, lastReconcile: null, uptimeSeconds: 5,
};

describe('podnet CLI process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-cli-'));
  const sock = join(dir, 'agent.sock');
  let server: Server;
  before(async () => {
    server = createServer((req, res) => {
      const body = req.url === '/v1/status' ? STATUS : req.url === '/v1/endpoints' ? ENDPOINTS : req.url === '/v1/ipam' ? { pool: '10.244.1.0/24', size: 253, used: 0, free: 253, allocations: [] } : undefined;
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? { msg: 'no route' }));
    });
    await new Promise<void>((r) => server.listen(sock, r));
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('ignores PODNET_* variables that are not settings, as Kubernetes service links inject them', async () => {
    const env = { PODNET_SERVICE_HOST: '10.96.0.10', PODNET_PORT: 'tcp://10.96.0.10:9962', PODNET_DEMO_METRICS_PORT: '29963' };
    const v = await podnet(['version', '--api-socket', sock], env);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^podnet ${VERSION.replace(/\./g, '\\.')}\\nagent  9\\.9\\.9\\n`));
    const help = await podnet(['agent', '--help'], env);
    assert.equal(help.code, 0, help.stderr);
    const status = await podnet(['status', '-o', 'json'], { ...env, PODNET_API_SOCKET: sock });
    assert.equal(status.code, 0, status.stderr);
  });

  it('reads the API socket from PODNET_API_SOCKET, and the flag wins over it', async () => {
    const fromEnv = await podnet(['status'], { PODNET_API_SOCKET: join(dir, 'absent.sock') });
    assert.equal(fromEnv.code, 1);
    assert.equal(fromEnv.stderr, `podnet: connect to agent at ${join(dir, 'absent.sock')}: ENOENT: is the agent running?\n`);
    const flag = await podnet(['ipam', '--api-socket', sock], { PODNET_API_SOCKET: join(dir, 'absent.sock') });
    assert.equal(flag.code, 0, flag.stderr);
  });

  it('prints --version and exits 0', async () => {
    const r = await podnet(['--version']);
    assert.deepEqual(r, { code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('suggests the command or flag meant, and exits 2 with no stack', async () => {
    const cmd = await podnet(['stauts']);
    assert.equal(cmd.code, 2);
    assert.match(cmd.stderr, /Did you mean status\?/);
    const flag = await podnet(['status', '--api-sokcet', sock]);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /^podnet: unknown flag --api-sokcet; did you mean --api-socket\?\n/);
    const extra = await podnet(['status', 'now']);
    assert.equal(extra.code, 2);
    assert.match(extra.stderr, /^podnet: unexpected argument now\n/);
    for (const r of [cmd, flag, extra]) assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('names a repeated flag of a read command instead of failing on an array', async () => {
    const r = await podnet(['status', '--api-socket', sock, '--api-socket', '/b']);
    assert.deepEqual({ code: r.code, stderr: r.stderr.split('\n')[0] }, { code: 2, stderr: `podnet: --api-socket given 2 times ("${sock}", "/b"); give it once` });
    const o = await podnet(['endpoints', '--api-socket', sock, '-o', 'json', '-o', 'table']);
    assert.equal(o.stderr.split('\n')[0], 'podnet: --output given 2 times ("json", "table"); give it once');
  });

  it('lists only the flags that apply in each command\'s help', async () => {
    const status = await podnet(['status', '--help']);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /--api-socket/);
    assert.match(status.stdout, /--output/);
    for (const f of ['--mtu', '--bpffs', '--pod-cidr', '--state', '--dry-run']) assert.doesNotMatch(status.stdout, new RegExp(`${f}(?![-\\w])`), f);
    const agent = await podnet(['agent', '--help']);
    for (const f of ['--mtu', '--pod-cidr', '--metrics-addr', '--config', 'PODNET_POD_CIDR']) assert.match(agent.stdout, new RegExp(f), f);
    assert.doesNotMatch(agent.stdout, /--state(?![-\w])|--output|--dry-run/);
    const endpoints = await podnet(['endpoints', '--help']);
    for (const f of ['--state', '--namespace', '--pod']) assert.match(endpoints.stdout, new RegExp(f), f);
    const viaHelp = await podnet(['help', 'status']);
    assert.equal(viaHelp.stdout, status.stdout, 'podnet help status is podnet status --help');
    const cleanup = await podnet(['cleanup', '--help']);
    for (const f of ['--dry-run', '--bpffs', '--state-dir', '--api-socket', '--cni-conf-dir', '--cni-bin-dir']) assert.match(cleanup.stdout, new RegExp(f), f);
  });

  it('prints a shell completion script and completes command names', async () => {
    const script = await podnet(['completion']);
    assert.equal(script.code, 0, script.stderr);
    assert.match(script.stdout, /--get-yargs-completions/);
    assert.match(script.stdout, /podnet/);
    const words = await podnet(['--get-yargs-completions', 'end']);
    assert.equal(words.code, 0, words.stderr);
    assert.match(words.stdout, /^endpoints$/m);
  });

  it('gives status in JSON with every field present, null where the agent has no value', async () => {
    const r = await podnet(['status', '--api-socket', sock, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ...STATUS });
    const text = await podnet(['status', '--api-socket', sock]);
    assert.match(text.stdout, /^Agent: +NOT READY: pod CIDR exhausted/m);
    assert.match(text.stdout, /^Datapath: +clsact, kernel host routing, pins in \/sys\/fs\/bpf\/podnet$/m);
    assert.match(text.stdout, /^Endpoints: 3, 1 UNHEALTHY/m);
    assert.match(text.stdout, /^Reconcile: not run yet$/m);
  });

  it('gives endpoints in JSON with full container IDs and a stable type for every field', async () => {
    const r = await podnet(['endpoints', '--api-socket', sock, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const eps = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.equal(eps.length, 3);
    assert.equal(eps[0]!['containerId'], CONTAINER);
    const keys = Object.keys(eps[0]!).sort();
    for (const e of eps) {
      assert.deepEqual(Object.keys(e).sort(), keys, 'the same fields on every endpoint');
      for (const k of keys) {
        const t = (v: unknown): string => (v === null ? 'string|null' : Array.isArray(v) ? 'array' : typeof v === 'string' && ['podNamespace', 'podName'].includes(k) ? 'string|null' : typeof v);
        assert.equal(t(e[k]), t(eps[0]![k]), `${k} has one type`);
      }
    }
    assert.equal(eps[2]!['podNamespace'], null);
    assert.equal(eps[2]!['podName'], null);
  });

  it('shows a STATE column and filters endpoints by state, namespace and pod, on both parsers', async () => {
    const table = await podnet(['endpoints', '--api-socket', sock]);
    assert.equal(table.code, 0, table.stderr);
    const [head, ...rows] = table.stdout.trimEnd().split('\n');
    assert.match(head!, /^ID +STATE +IP +POD +CONTAINER /);
    assert.match(rows[1]!, /^2 +unhealthy +10\.244\.1\.3 +kube-system\/dns-1 +aaaaaaaaaaaa .*tc ingress filter missing/);
    const ids = async (args: string[]): Promise<number[]> => {
      const r = await podnet(['endpoints', '--api-socket', sock, '-o', 'json', ...args]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as Array<{ endpointId: number }>).map((e) => e.endpointId);
    };
    assert.deepEqual(await ids(['--state', 'unhealthy']), [2]);
    assert.deepEqual(await ids(['--state=deleting']), [3]);
    assert.deepEqual(await ids(['--namespace', 'default']), [1]);
    assert.deepEqual(await ids(['-n', 'kube-system', '--pod', 'dns-1']), [2]);
    assert.deepEqual(await ids(['--pod', 'nope']), []);
    // A flag before the command is beyond the hand parser: yargs runs the same command.
    const viaYargs = await podnet(['--api-socket', sock, 'endpoints', '-o', 'json', '--state', 'unhealthy', '--namespace', 'kube-system', '--pod', 'dns-1']);
    assert.equal(viaYargs.code, 0, viaYargs.stderr);
    assert.deepEqual((JSON.parse(viaYargs.stdout) as Array<{ endpointId: number }>).map((e) => e.endpointId), [2]);
    const bad = await podnet(['endpoints', '--api-socket', sock, '--state', 'sleepy']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^podnet: Invalid values:\n {2}Argument: state, Given: "sleepy", Choices: "ready", "unhealthy", "deleting"/);
    const short = await podnet(['endpoints', '--api-socket', sock, '-ojson']);
    assert.equal(short.code, 2, 'a yargs parse error is a usage error');
    assert.doesNotMatch(short.stderr, /internal error|\n\s+at /);
  });

  it('reports a bad or repeated agent flag by setting name, as one JSON log line', async () => {
    const mtu = await podnet(['agent', '--mtu', 'abc']);
    assert.equal(mtu.code, 1);
    const rec = JSON.parse(mtu.stderr.trim()) as { level: string; msg: string; code: string };
    assert.deepEqual({ level: rec.level, code: rec.code, msg: rec.msg }, { level: 'fatal', code: 'INVALID_CONFIG', msg: 'start agent: invalid config mtu: "abc" must be an integer between 576 and 65535' });
    const twice = await podnet(['agent', '--mtu', '1400', '--mtu', '1500']);
    assert.equal(twice.code, 1);
    assert.equal((JSON.parse(twice.stderr.trim()) as { msg: string }).msg, 'start agent: invalid config mtu: given 2 times ("1400", "1500"); give it once');
    const env = await podnet(['agent'], { PODNET_MTU: 'big' });
    assert.equal((JSON.parse(env.stderr.trim()) as { msg: string }).msg, 'start agent: invalid config mtu: "big" must be an integer between 576 and 65535');
  });
});
