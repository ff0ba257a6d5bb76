/**
 * Defects found running podnet as an operator would, each reproduced against
 * a real agent on the real kernel: a DEL that was answered stays done across
 * a SIGKILL, an ADD never takes over a live pod in another netns, a CNI_NETNS
 * that is not a network namespace is a code-4 error, one agent per state
 * dir, no pins left by a failed first start, STATUS fails when the pool is
 * exhausted, and one broken endpoint is repaired or shown as unhealthy
 * without stopping the agent.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, inNetns, podnetHostVeths, rand, testCidr } from '../lib/agent-fixture.js';
import { apiCall } from '../../agent/src/api/client.js';
import { startAgentProcess, waitAgentStatus, type AgentProcess } from '../lib/podnet-cli.js';
import type { AgentStatus, EndpointInfo } from '../../agent/src/api/protocol.js';
import { Agent } from '../../agent/src/agent.js';
import { buildAgentConfig } from '../../agent/src/config/index.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

const ipOf = (r: { json: any }): string => String(r.json.ips[0].address).split('/')[0]!;

type Running = AgentProcess;

function startAgentFor(node: TestNode): Running {
  return startAgentProcess(['--pod-cidr', node.podCidr, '--bpffs', node.bpffs, '--state-dir', node.stateDir, '--api-socket', node.socket,
    '--metrics-addr', 'off', '--source', 'file:/dev/null', '--node-name', 'test-node', '--log-level', 'warn']);
}

const waitServing = (socket: string, r: Running): Promise<AgentStatus> => waitAgentStatus(socket, r, () => true);

describe('a DEL that was answered stays done', () => {
  const node = new TestNode(testCidr(243));
  const running: Running[] = [];
  after(async () => {
    for (const r of running) if (r.child.exitCode === null) { r.child.kill('SIGKILL'); await r.exited; }
    await node.cleanup();
  });

  test('ten DELs answered just before a SIGKILL are finished, not repaired, by the next agent', async () => {
    const first = startAgentFor(node);
    running.push(first);
    await waitServing(node.socket, first);
    const pods: Array<{ id: string; ns: { name: string; path: string }; ip: string }> = [];
    for (let i = 0; i < 10; i++) {
      const ns = node.netns('del');
      const id = `ctr-del${i}-${rand()}`;
      const r = await node.cni('ADD', { containerId: id, netns: ns.path });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      pods.push({ id, ns, ip: ipOf(r) });
    }
    // The pods' netns stay: the runtime deletes them after DEL returns, and
    // the agent must not need their absence to know the pods are gone.
    const dels = await Promise.all(pods.map((p) => node.cni('DEL', { containerId: p.id, netns: p.ns.path })));
    for (const d of dels) assert.equal(d.code, 0, d.stdout + d.stderr);
    first.child.kill('SIGKILL');
    await first.exited;

    const second = startAgentFor(node);
    running.push(second);
    await waitServing(node.socket, second);
    const eps = await apiCall<EndpointInfo[]>(node.socket, 'GET', '/v1/endpoints');
    assert.deepEqual(eps.map((e) => e.containerId).filter((c) => pods.some((p) => p.id === c)), [], 'no deleted pod came back');
    const ipam = await apiCall<{ allocations: Array<{ ip: string }> }>(node.socket, 'GET', '/v1/ipam');
    assert.deepEqual(ipam.allocations.map((a) => a.ip).filter((ip) => pods.some((p) => p.ip === ip)), [], 'every address is free');
    const left = new Set(podnetHostVeths());
    assert.deepEqual(pods.map((p) => hostVethName(p.id, 'eth0')).filter((h) => left.has(h)), [], 'every host veth is gone');
    for (const p of pods) assert.equal(inNetns(p.ns.name, ['ip', '-o', 'link', 'show', 'eth0']).code, 1, `eth0 is gone from ${p.ns.name}`);
    assert.deepEqual(readdirSync(join(node.stateDir, 'deleting')), [], 'no teardown left pending');
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  });
});

describe('ADD and CNI_NETNS checks', () => {
  const node = new TestNode(testCidr(244));
  const dir = mkdtempSync(join(tmpdir(), 'podnet-netns-'));
  after(async () => {
    await node.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an ADD with a live pod\'s container id and ifname in another netns is refused and the pod keeps working', async () => {
    await node.start();
    const a = node.netns('live');
    const id = `ctr-live-${rand()}`;
    const r = await node.cni('ADD', { containerId: id, netns: a.path });
    assert.equal(r.code, 0, r.stdout);
    const ip = ipOf(r);
    const other = node.netns('other');
    const again = await node.cni('ADD', { containerId: id, netns: other.path });
    assert.equal(again.code, 1);
    assert.equal(again.json.code, 4, again.stdout);
    assert.match(again.json.msg, /CNI_NETNS .* differs from the netns .* of the live endpoint/);
    assert.ok(podnetHostVeths().includes(hostVethName(id, 'eth0')), 'the live pod\'s veth is still there');
    assert.equal(inNetns(other.name, ['ip', '-o', 'link', 'show', 'eth0']).code, 1, 'nothing was added to the other netns');
    assert.ok(inNetns(a.name, ['ip', '-o', '-4', 'addr', 'show', 'eth0']).out.includes(`${ip}/32`), 'the live pod keeps its address');
    assert.equal(node.agent!.endpointInfos().find((e) => e.containerId === id)?.state, 'ready');
    assert.equal((await node.cni('DEL', { containerId: id, netns: a.path })).code, 0);
  });

  test('an ADD with a 64-character container id, as container runtimes make them, gets an address, and its DEL frees it', async () => {
    const ns = node.netns('long');
    const id = `${rand(16)}${rand(16)}`.padEnd(64, '0');
    assert.equal(id.length, 64);
    const r = await node.cni('ADD', { containerId: id, netns: ns.path });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(node.agent!.ipam.lookup(id, 'eth0'), ipOf(r));
    assert.equal(node.agent!.ipam.allocations().find((a) => a.ip === ipOf(r))?.owner.containerId, id, 'the whole id is stored');
    assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
    assert.equal(node.agent!.ipam.lookup(id, 'eth0'), undefined);
  });

  for (const [what, make] of [
    ['a regular file', (): string => { const p = join(dir, 'file'); writeFileSync(p, ''); return p; }],
    ['a directory', (): string => { const p = join(dir, 'd'); mkdirSync(p, { recursive: true }); return p; }],
    ['a mount namespace', (): string => '/proc/self/ns/mnt'],
    ['a UTS namespace', (): string => '/proc/self/ns/uts'],
  ] as const) {
    test(`a CNI_NETNS that is ${what} is a bad environment (code 4) naming CNI_NETNS, and changes nothing`, async () => {
      const path = make();
      const id = `ctr-bad-${rand()}`;
      const usedBefore = node.agent!.ipam.usage().used;
      const r = await node.cni('ADD', { containerId: id, netns: path });
      assert.equal(r.code, 1);
      assert.equal(r.json.code, 4, r.stdout);
      assert.match(r.json.msg, /CNI_NETNS/);
      assert.equal(node.agent!.ipam.usage().used, usedBefore);
      assert.ok(!podnetHostVeths().includes(hostVethName(id, 'eth0')));
    });
  }
});

describe('one agent per state dir, and clean failed starts', () => {
  const nodes: TestNode[] = [];
  const servers: Server[] = [];
  after(async () => {
    for (const s of servers) s.close();
    for (const n of nodes) await n.cleanup();
  });

  test('a second agent on the same state dir refuses to start and leaves the first serving', async () => {
    const node = new TestNode(testCidr(245));
    nodes.push(node);
    await node.start();
    const otherSocket = join(node.dir, 'second.sock');
    await assert.rejects(
      Agent.start(buildAgentConfig({
        podCidr: node.podCidr, bpffs: node.bpffs, stateDir: node.stateDir, apiSocket: otherSocket, metricsAddr: 'off', source: 'file:/dev/null',
      }, 'test-node'), silentLogger()),
      /lock .*agent\.lock: held by process \d+ \(another podnet agent uses this state dir\)/,
    );
    assert.equal(existsSync(otherSocket), false, 'the second agent made no socket');
    assert.equal((await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status')).ready, true);
  });

  test('a busy API socket fails start-up before anything is pinned', async () => {
    const node = new TestNode(testCidr(246));
    nodes.push(node);
    const busy = createServer(() => {});
    servers.push(busy);
    await new Promise<void>((res) => busy.listen(node.socket, res));
    await assert.rejects(node.start(), /listen on .*: another agent is serving it/);
    assert.equal(existsSync(node.bpffs), false, `nothing was pinned under ${node.bpffs}`);
  });

  test('a busy metrics port fails start-up naming metrics-addr, before anything is pinned', async () => {
    const node = new TestNode(testCidr(247));
    nodes.push(node);
    const busy = createServer(() => {});
    servers.push(busy);
    await new Promise<void>((res) => busy.listen(0, '127.0.0.1', res));
    const port = (busy.address() as { port: number }).port;
    await assert.rejects(node.start({}, { metrics: { host: '127.0.0.1', port } }),
      /listen on 127\.0\.0\.1:\d+ for metrics \(metrics-addr\): EADDRINUSE/);
    assert.equal(existsSync(node.bpffs), false, `nothing was pinned under ${node.bpffs}`);
    assert.equal(existsSync(node.socket), false, 'the API socket is gone again');
  });

  test('a start that fails after loading the datapath removes the pins it made', async () => {
    const node = new TestNode(testCidr(248));
    nodes.push(node);
    // A state dir entry that is a file where a directory must be: reconcile cannot read labels, the DEL queue cannot be read.
    mkdirSync(node.stateDir, { recursive: true });
    writeFileSync(join(node.stateDir, 'del-queue'), 'not a directory');
    await assert.rejects(node.start());
    assert.equal(existsSync(node.bpffs), false, `the pins under ${node.bpffs} were removed`);
  });
});

describe('STATUS and status with an exhausted pool', () => {
  const node = new TestNode(testCidr(249, 30)); // two usable addresses
  after(() => node.cleanup());

  test('STATUS fails with code 50 and podnet status says not ready while no address is free', async () => {
    await node.start();
    const pods = [];
    for (let i = 0; i < 2; i++) {
      const ns = node.netns('full');
      const id = `ctr-full${i}-${rand()}`;
      assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path })).code, 0);
      pods.push({ id, ns });
    }
    const st = await node.cni('STATUS');
    assert.equal(st.code, 1);
    assert.equal(st.json.code, 50, st.stdout);
    assert.match(st.json.msg, /cannot service ADD requests: IP pool .* exhausted \(0 of 2 addresses free\)/);
    const s = await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status');
    assert.equal(s.ready, false);
    assert.match(s.notReadyReason ?? '', /exhausted/);
    assert.equal((await node.cni('DEL', { containerId: pods[0]!.id, netns: pods[0]!.ns.path })).code, 0);
    assert.equal((await node.cni('STATUS')).code, 0, 'STATUS succeeds again once an address is free');
    assert.equal((await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status')).ready, true);
    await node.cni('DEL', { containerId: pods[1]!.id, netns: pods[1]!.ns.path });
  });
});

describe('reconcile repairs one endpoint without stopping the agent', () => {
  const node = new TestNode(testCidr(250));
  const routesAdded: string[] = [];
  after(async () => {
    for (const r of routesAdded) try { execFileSync('ip', ['route', 'del', r, 'dev', 'lo'], { stdio: 'ignore' }); } catch { /* gone */ }
    await node.cleanup();
  });

  test('a pod whose tc filter was deleted does not stop the agent from starting again, and is repaired', async () => {
    await node.start({ reconcileIntervalMs: 0 });
    const ns = node.netns('rep');
    const id = `ctr-rep-${rand()}`;
    assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path })).code, 0);
    const host = hostVethName(id, 'eth0');
    execFileSync('tc', ['filter', 'del', 'dev', host, 'egress']);
    await node.stop();
    await node.start({ reconcileIntervalMs: 0 });
    const ep = node.agent!.endpointInfos().find((e) => e.containerId === id);
    assert.deepEqual({ state: ep?.state, problems: ep?.problems }, { state: 'ready', problems: [] });
    assert.equal(node.agent!.status().lastReconcile?.result, 'repaired');
    assert.match(execFileSync('tc', ['filter', 'show', 'dev', host, 'egress'], { encoding: 'utf8' }), /bpf/);
  });

  test('an endpoint that cannot be repaired is shown unhealthy in endpoints and status, and recovers once the cause is gone', async () => {
    const ns = node.netns('unh');
    const id = `ctr-unh-${rand()}`;
    const r = await node.cni('ADD', { containerId: id, netns: ns.path });
    assert.equal(r.code, 0);
    const ip = ipOf(r);
    const host = hostVethName(id, 'eth0');
    // Another route for the pod's address takes its place: the repair cannot add the pod's own.
    execFileSync('ip', ['route', 'del', `${ip}/32`, 'dev', host]);
    execFileSync('ip', ['route', 'add', `${ip}/32`, 'dev', 'lo']);
    routesAdded.push(`${ip}/32`);
    const out = await node.agent!.reconcile();
    assert.equal(out.result, 'failed');
    const eps = await apiCall<EndpointInfo[]>(node.socket, 'GET', '/v1/endpoints');
    const ep = eps.find((e) => e.containerId === id);
    assert.equal(ep?.state, 'unhealthy');
    assert.ok(ep!.problems.some((p) => p.includes(`host route ${ip}/32`)), ep!.problems.join('; '));
    const s = await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status');
    assert.equal(s.endpointsUnhealthy, eps.filter((e) => e.state === 'unhealthy').length);
    assert.ok(s.endpointsUnhealthy >= 1);
    assert.equal(s.lastReconcile?.result, 'failed');
    assert.equal(s.ready, true, 'one unhealthy endpoint does not make the agent unready');

    execFileSync('ip', ['route', 'del', `${ip}/32`, 'dev', 'lo']);
    routesAdded.pop();
    assert.equal((await node.agent!.reconcile()).result, 'repaired');
    assert.equal(node.agent!.endpointInfos().find((e) => e.containerId === id)?.state, 'ready');
  });
});
