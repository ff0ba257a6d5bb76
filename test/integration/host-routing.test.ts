/**
 * Host routing with real pods: two pods made through the real CNI entry
 * point and an agent with `--services off` (host routing auto, so kernel),
 * and a Service proxy in netfilter the way kube-proxy is one: a nat DNAT
 * rule in the host namespace, in a chain of this test's own jumped to from
 * PREROUTING, turns VIP:80 into the server pod's address and port for
 * traffic from the client pod. With kernel host routing the server's answer
 * passes the host's conntrack and reaches the client from VIP:80; with BPF
 * host routing from_pod hands it straight to the client from the server's
 * own address, and the connection never completes (the defect kernel host
 * routing fixes). Pod-to-pod ICMP is counted exactly once per side in both
 * modes. A blackhole route over the test's VIP range goes in before
 * anything is sent, so an untranslated packet can never leave the machine.
 * Traffic stays between the namespaces and host veths made here.
 * Kernel host routing with podnet's own Services (a ClusterIP written into
 * the service maps by hand) keeps the answer's source the ClusterIP too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { TestNode, inNetns, testCidr } from '../lib/agent-fixture.js';
import { CountersMap, backendKey, backendValue, slotKey, slotValue, svcKey, svcRangeKey, svcRangeValue, svcValue } from '../../agent/src/maps/index.js';
import type { HostRouting } from '../../agent/src/datapath/index.js';

const VIP_RANGE = '10.96.231.0/24';
const VIP = '10.96.231.10', VIP_PORT = 80, SERVER_PORT = 8080;
const CHAIN = `PODNET-TEST-${process.pid}`;
const PINGS = 3;
const SVC_RANGE = '10.96.232.0/24', CLUSTER_IP = '10.96.232.10';
const TCP = 6;

/** A TCP server answering "server:<what it got>"; prints "ready" once it listens. */
const SERVER = `
const net = require('node:net');
net.createServer((s) => s.on('data', (d) => s.end('server:' + d))).listen(Number(process.argv[1]), '0.0.0.0', () => console.log('ready'));
setTimeout(() => process.exit(0), 180000).unref();
`;

/** One TCP exchange, connect bounded to 2 s; prints JSON {ok, peer, data} or {ok: false, code}. */
const CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const done = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
setTimeout(() => done({ ok: false, code: 'TIMEOUT' }), 2000);
const s = net.connect(Number(port), host);
let data = '';
s.on('connect', () => s.write('ping'));
s.on('data', (d) => (data += d));
s.on('end', () => done({ ok: true, peer: s.remoteAddress + ':' + s.remotePort, data }));
s.on('error', (e) => done({ ok: false, code: e.code }));
`;

function iptables(args: string[]): void {
  execFileSync('iptables', ['-w', '5', '-t', 'nat', ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

describe('kernel host routing beside a netfilter Service proxy (services off)', () => {
  const node = new TestNode(testCidr(230), { services: 'off' });
  const pods: Array<{ id: string; ns: { name: string; path: string }; ip: string }> = [];
  let server: ChildProcess | undefined;
  let blackhole = false;
  let chain = false, jump = false;
  let forwarding = '';

  const client = () => pods[0]!;
  const backend = () => pods[1]!;
  const connect = (host: string, port: number): { ok: boolean; peer?: string; data?: string; code?: string } => {
    const r = inNetns(client().ns.name, [process.execPath, '-e', CLIENT, host, String(port)], 10_000);
    assert.equal(r.code, 0, `client in ${client().ns.name} ran`);
    return JSON.parse(r.out.trim().split('\n').pop()!);
  };
  /** Restarts the agent with another host routing; the pods and their attachments stay. */
  async function restartAs(hostRouting: HostRouting): Promise<void> {
    await node.stop();
    await node.start({}, { hostRouting });
    assert.equal(node.agent!.status().hostRouting, hostRouting, 'status reports the host routing it runs');
  }
  /** Sends PINGS echo requests client -> server and returns how each counter moved (packets, reason none). */
  function pingCounted(): Record<string, bigint> {
    const counters = new CountersMap(node.agent!.datapath.maps.counters);
    const ids = new Map(node.agent!.endpointInfos().map((e) => [e.containerId, e.endpointId]));
    const [c, s] = [ids.get(client().id)!, ids.get(backend().id)!];
    const read = (): Record<string, bigint> => {
      const sum = (id: number, dir: string) => counters.readAll().filter((x) => x.endpointId === id && x.direction === dir && x.reason === 0).reduce((n, x) => n + x.packets, 0n);
      return { clientEgress: sum(c, 'egress'), serverIngress: sum(s, 'ingress'), serverEgress: sum(s, 'egress'), clientIngress: sum(c, 'ingress') };
    };
    const before = read();
    const r = inNetns(client().ns.name, ['ping', '-n', '-q', '-c', String(PINGS), '-i', '0.2', '-W', '1', backend().ip], 15_000);
    assert.equal(r.code, 0, `ping ${backend().ip} from the client: ${r.out}`);
    const now = read();
    return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - before[k]!]));
  }

  before(async () => {
    // First of all: nothing sent to the VIP range can leave the machine untranslated.
    execFileSync('ip', ['route', 'replace', 'blackhole', VIP_RANGE]); // replace: a crashed run may have left it
    blackhole = true;
    // Kernel host routing forwards between host veths.
    forwarding = execFileSync('sysctl', ['-n', 'net.ipv4.ip_forward'], { encoding: 'utf8' }).trim();
    if (forwarding !== '1') execFileSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await node.start();
    for (const label of ['hrc', 'hrs']) pods.push(await node.addPod(label));
    server = spawn('ip', ['netns', 'exec', backend().ns.name, process.execPath, '-e', SERVER, String(SERVER_PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('start TCP server: not ready after 10 s')), 10_000);
      let err = '';
      server!.stderr!.on('data', (d: Buffer) => (err += d));
      server!.stdout!.on('data', (d: Buffer) => { if (String(d).includes('ready')) { clearTimeout(t); resolve(); } });
      server!.on('exit', (code) => { clearTimeout(t); reject(new Error(`start TCP server: exited ${code}: ${err}`)); });
    });
    // kube-proxy's shape: PREROUTING jumps to a chain that DNATs the VIP to the backend.
    iptables(['-N', CHAIN]);
    chain = true;
    iptables(['-A', CHAIN, '-s', `${client().ip}/32`, '-d', `${VIP}/32`, '-p', 'tcp', '--dport', String(VIP_PORT), '-j', 'DNAT', '--to-destination', `${backend().ip}:${SERVER_PORT}`]);
    iptables(['-I', 'PREROUTING', '1', '-j', CHAIN]);
    jump = true;
  });

  after(async () => {
    const errors: unknown[] = [];
    const attempt = (fn: () => void): void => { try { fn(); } catch (err) { errors.push(err); } };
    if (jump) attempt(() => iptables(['-D', 'PREROUTING', '-j', CHAIN]));
    if (chain) {
      attempt(() => iptables(['-F', CHAIN]));
      attempt(() => iptables(['-X', CHAIN]));
    }
    if (server && server.exitCode === null) server.kill('SIGKILL');
    for (const p of pods) await node.cni('DEL', { containerId: p.id, netns: p.ns.path }).catch((err: unknown) => errors.push(err));
    await node.cleanup();
    if (blackhole) attempt(() => execFileSync('ip', ['route', 'del', 'blackhole', VIP_RANGE]));
    if (forwarding !== '' && forwarding !== '1') attempt(() => execFileSync('sysctl', ['-qw', `net.ipv4.ip_forward=${forwarding}`]));
    if (errors.length > 0) throw new AggregateError(errors, 'clean up the host routing test');
  });

  test('with services off the agent resolves host routing auto to kernel and reports it', () => {
    assert.equal(node.cfg.hostRouting, 'auto');
    assert.equal(node.agent!.datapath.hostRouting, 'kernel');
    assert.equal(node.agent!.status().hostRouting, 'kernel');
  });

  test('kernel: two pods of the node talk TCP through the host stack', () => {
    const r = connect(backend().ip, SERVER_PORT);
    assert.deepEqual(r, { ok: true, peer: `${backend().ip}:${SERVER_PORT}`, data: 'server:ping' });
  });

  test('kernel: pod-to-pod echo requests and replies are counted once on each side', () => {
    assert.deepEqual(pingCounted(), { clientEgress: BigInt(PINGS), serverIngress: BigInt(PINGS), serverEgress: BigInt(PINGS), clientIngress: BigInt(PINGS) });
  });

  test('kernel: a connection to the VIP that netfilter DNATs to a pod of the same node gets its answer from the VIP', () => {
    const r = connect(VIP, VIP_PORT);
    assert.deepEqual(r, { ok: true, peer: `${VIP}:${VIP_PORT}`, data: 'server:ping' });
  });

  test('bpf: the same DNATed connection gets no answer, because the reply bypasses conntrack; kernel again fixes it', async () => {
    await restartAs('bpf');
    const direct = connect(backend().ip, SERVER_PORT);
    assert.deepEqual(direct, { ok: true, peer: `${backend().ip}:${SERVER_PORT}`, data: 'server:ping' }, 'pod to pod works in bpf mode');
    assert.deepEqual(pingCounted(), { clientEgress: BigInt(PINGS), serverIngress: BigInt(PINGS), serverEgress: BigInt(PINGS), clientIngress: BigInt(PINGS) }, 'bpf mode counts each side once too');
    const viaVip = connect(VIP, VIP_PORT);
    assert.equal(viaVip.ok, false, `the answer arrives from ${backend().ip}:${SERVER_PORT} instead of the VIP, so the connection fails: ${JSON.stringify(viaVip)}`);
    await restartAs('kernel');
    assert.deepEqual(connect(VIP, VIP_PORT), { ok: true, peer: `${VIP}:${VIP_PORT}`, data: 'server:ping' });
  });
});

describe('kernel host routing with podnet serving Services', () => {
  // reconcileInterval 0: no periodic Service resync touches the entries written here by hand.
  const node = new TestNode(testCidr(229), { hostRouting: 'kernel', reconcileInterval: 0 });
  const pods: Array<{ id: string; ns: { name: string; path: string }; ip: string }> = [];
  let server: ChildProcess | undefined;
  let blackhole = false;
  let forwarding = '';

  const connect = (ns: string, host: string, port: number): { ok: boolean; peer?: string; data?: string; code?: string } => {
    const r = inNetns(ns, [process.execPath, '-e', CLIENT, host, String(port)], 10_000);
    assert.equal(r.code, 0, `client in ${ns} ran`);
    return JSON.parse(r.out.trim().split('\n').pop()!);
  };

  before(async () => {
    execFileSync('ip', ['route', 'replace', 'blackhole', SVC_RANGE]);
    blackhole = true;
    forwarding = execFileSync('sysctl', ['-n', 'net.ipv4.ip_forward'], { encoding: 'utf8' }).trim();
    if (forwarding !== '1') execFileSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await node.start();
    for (const label of ['hsc', 'hss']) pods.push(await node.addPod(label));
    const m = node.agent!.datapath.maps;
    m.backends.typed(backendKey, backendValue).set({ backendId: 1 }, { addr: pods[1]!.ip, port: SERVER_PORT, proto: TCP, flags: 0 });
    m.svcSlots.typed(slotKey, slotValue).set({ groupId: 201, slot: 0 }, { backendId: 1 });
    m.services.typed(svcKey, svcValue).set({ addr: CLUSTER_IP, port: VIP_PORT, proto: TCP, pad: 0 }, { frontendId: 201, groupId: 201, count: 1, flags: 0, affinitySeconds: 0, pad: 0 });
    m.svcRanges.typed(svcRangeKey, svcRangeValue).set({ prefixLen: 24, data: '10.96.232.0' }, { flags: 0 });
    server = spawn('ip', ['netns', 'exec', pods[1]!.ns.name, process.execPath, '-e', SERVER, String(SERVER_PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('start TCP server: not ready after 10 s')), 10_000);
      server!.stdout!.on('data', (d: Buffer) => { if (String(d).includes('ready')) { clearTimeout(t); resolve(); } });
      server!.on('exit', (code) => { clearTimeout(t); reject(new Error(`start TCP server: exited ${code}`)); });
    });
  });

  after(async () => {
    const errors: unknown[] = [];
    if (server && server.exitCode === null) server.kill('SIGKILL');
    for (const p of pods) await node.cni('DEL', { containerId: p.id, netns: p.ns.path }).catch((err: unknown) => errors.push(err));
    await node.cleanup();
    try { if (blackhole) execFileSync('ip', ['route', 'del', 'blackhole', SVC_RANGE]); } catch (err) { errors.push(err); }
    try { if (forwarding !== '' && forwarding !== '1') execFileSync('sysctl', ['-qw', `net.ipv4.ip_forward=${forwarding}`]); } catch (err) { errors.push(err); }
    if (errors.length > 0) throw new AggregateError(errors, 'clean up the host routing test');
  });

  test('an explicit kernel host routing is kept with services on', () => {
    assert.equal(node.agent!.status().hostRouting, 'kernel');
  });

  test('a connection to a ClusterIP whose backend is a pod of the same node is answered from the ClusterIP', () => {
    assert.deepEqual(connect(pods[0]!.ns.name, CLUSTER_IP, VIP_PORT), { ok: true, peer: `${CLUSTER_IP}:${VIP_PORT}`, data: 'server:ping' });
  });

  test('a pod reaches itself through its own Service (hairpin) through the host stack', () => {
    assert.deepEqual(connect(pods[1]!.ns.name, CLUSTER_IP, VIP_PORT), { ok: true, peer: `${CLUSTER_IP}:${VIP_PORT}`, data: 'server:ping' });
  });
});
