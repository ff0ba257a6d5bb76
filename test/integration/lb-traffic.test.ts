/**
 * Service translation with real traffic: two pods made through the real CNI
 * entry point and agent, Services written by hand into the agent's service
 * maps, and real TCP and UDP sockets. The client connects to the ClusterIP
 * and must see it as its peer (reverse NAT), a Service without backends
 * refuses at once (TCP reset / ICMP unreachable built in BPF), a pod reaches
 * itself through its Service (hairpin), a backend on the host network
 * answers through to_pod, and an unknown address inside the service range is
 * dropped. A blackhole route over the test's service range is installed
 * before anything is sent, so an untranslated packet can never leave the
 * machine. Traffic stays between the namespaces and the host veths made here.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, inNetns, testCidr } from '../lib/agent-fixture.js';
import { ECHO_CLIENT, outsideUplink, startEchoServer, type EchoReply } from '../lib/echo-scripts.js';
import { Datapath } from '../../agent/src/datapath/index.js';
import { parsePool } from '../../agent/src/ipam/index.js';
import { silentLogger } from '../../agent/src/log/index.js';
import {
  CT_FLAG, CountersMap, DROP_REASONS, backendKey, backendValue, ctKey, ctValue, slotKey, slotValue, svcKey, svcRangeKey, svcRangeValue, svcValue,
} from '../../agent/src/maps/index.js';

const RANGE = '10.96.2.0/24';
const CLUSTER_IP = '10.96.2.1', NO_BACKEND_IP = '10.96.2.2', HAIRPIN_IP = '10.96.2.3', HOST_SVC_IP = '10.96.2.5', UNKNOWN_IP = '10.96.2.200';
const TCP = 6, UDP = 17;
const reason = (name: string): number => DROP_REASONS.find((r) => r.name === name)!.value;


describe('Service traffic through ClusterIPs between real pods', () => {
  const node = new TestNode(testCidr(238));
  const servers: ChildProcess[] = [];
  const pods: Array<{ id: string; ns: { name: string; path: string }; ip: string }> = [];
  let hostAddr = '';
  let hostVethA = '';
  let blackhole = false;
  let uplink = '';
  let outside: { name: string; path: string } | undefined;
  let nodeAddr = '', outsideAddr = '';

  /** Starts the echo server (in a namespace, or on the host with ns undefined) and waits for "ready". */
  async function serve(ns: string | undefined, name: string, host: string, tcpPort: number, udpPort: number): Promise<void> {
    servers.push(await startEchoServer(ns, name, host, tcpPort, udpPort));
  }
  const client = (ns: string, proto: 'tcp' | 'udp', host: string, port: number, msg = 'ping'): { ok: boolean; peer?: string; data?: string; code?: string } => {
    const r = inNetns(ns, [process.execPath, '-e', ECHO_CLIENT, proto, host, String(port), msg], 10_000);
    assert.equal(r.code, 0, `client in ${ns} ran`);
    return JSON.parse(r.out.trim().split('\n').pop()!);
  };

  before(async () => {
    // First of all: nothing sent to the range can leave the machine untranslated.
    execFileSync('ip', ['route', 'replace', 'blackhole', RANGE]); // replace: a crashed run may have left it
    blackhole = true;
    await node.start();
    for (const label of ['lbc', 'lbs']) pods.push(await node.addPod(label));
    const ep = node.agent!.endpointInfos().find((e) => e.containerId === pods[0]!.id)!;
    hostVethA = ep.hostIfName;
    // A host-network backend reachable only from here: an address on the
    // client's host veth, outside the pod CIDR (from_pod drops unknown pod addresses).
    hostAddr = `10.239.${node.podCidr.split('.')[2]}.250`;
    execFileSync('ip', ['addr', 'add', `${hostAddr}/32`, 'dev', hostVethA]);

    const m = node.agent!.datapath.maps;
    const services = m.services.typed(svcKey, svcValue), slots = m.svcSlots.typed(slotKey, slotValue), backends = m.backends.typed(backendKey, backendValue);
    const frontend = (addr: string, port: number, proto: number, id: number, ids: number[]) => {
      ids.forEach((b, slot) => slots.set({ groupId: id, slot }, { backendId: b }));
      services.set({ addr, port, proto, pad: 0 }, { frontendId: id, groupId: id, count: ids.length, flags: 0, affinitySeconds: 0, pad: 0 });
    };
    const server = pods[1]!;
    backends.set({ backendId: 1 }, { addr: server.ip, port: 8080, proto: TCP, flags: 0 });
    backends.set({ backendId: 2 }, { addr: server.ip, port: 5353, proto: UDP, flags: 0 });
    backends.set({ backendId: 3 }, { addr: hostAddr, port: 18443, proto: TCP, flags: 0 });
    backends.set({ backendId: 4 }, { addr: server.ip, port: 5999, proto: UDP, flags: 0 }); // nothing listens there
    frontend(CLUSTER_IP, 80, TCP, 101, [1]);
    frontend(CLUSTER_IP, 53, UDP, 102, [2]);
    frontend(CLUSTER_IP, 54, UDP, 109, [4]);
    frontend(NO_BACKEND_IP, 80, TCP, 103, []);
    frontend(NO_BACKEND_IP, 53, UDP, 104, []);
    frontend(HAIRPIN_IP, 80, TCP, 105, [1]);
    frontend(HOST_SVC_IP, 443, TCP, 106, [3]);
    m.svcRanges.typed(svcRangeKey, svcRangeValue).set({ prefixLen: 24, data: '10.96.2.0' }, { flags: 0 });

    // The uplink: a veth whose far end sits in an "outside" namespace.
    ({ outside, uplink, nodeAddr, outsideAddr } = outsideUplink(node, 'lbout', 'pnup', `10.239.${node.podCidr.split('.')[2]}`));
    frontend(nodeAddr, 30080, TCP, 107, [1]);
    frontend(nodeAddr, 30081, TCP, 108, []);
    frontend(nodeAddr, 30082, TCP, 110, [3]); // the host-network backend

    await serve(server.ns.name, 'backend', '0.0.0.0', 8080, 5353);
    await serve(undefined, 'host', hostAddr, 18443, 18053);
  });

  after(async () => {
    for (const s of servers) if (s.exitCode === null) s.kill();
    for (const p of pods) await node.cni('DEL', { containerId: p.id, netns: p.ns.path }).catch(() => {});
    if (uplink) execFileSync('ip', ['link', 'del', uplink], { stdio: 'ignore' });
    await node.cleanup();
    if (blackhole) execFileSync('ip', ['route', 'del', 'blackhole', RANGE]);
  });

  test('a TCP connection to a ClusterIP reaches the backend pod and its peer is the ClusterIP', () => {
    const r = client(pods[0]!.ns.name, 'tcp', CLUSTER_IP, 80, 'hello');
    assert.deepEqual(r, { ok: true, peer: `${CLUSTER_IP}:80`, data: 'backend:hello' });
  });

  test('many TCP connections in a row all succeed', () => {
    for (let i = 0; i < 5; i++) assert.equal(client(pods[0]!.ns.name, 'tcp', CLUSTER_IP, 80, `n${i}`).data, `backend:n${i}`);
  });

  test("the agent's conntrack sweep removes a closed connection's entries once its closing timeout is past, and keeps the rest", () => {
    const ct = node.agent!.datapath.maps.conntrack.typed(ctKey, ctValue);
    const ours = (): Array<{ dir: number; flags: number }> => [...ct.entries()]
      .filter(([k, v]) => k.proto === TCP && (k.daddr === CLUSTER_IP || v.natAddr === CLUSTER_IP))
      .map(([k, v]) => ({ dir: k.dir, flags: v.flags }));
    const before = ours();
    assert.ok(before.length >= 2, `the connections above left their entries (${before.length})`);
    assert.ok(before.every((e) => (e.flags & CT_FLAG.closing) !== 0), `every one saw its FIN: ${JSON.stringify(before)}`);
    const raw = node.agent!.datapath.maps.conntrack;
    const total = raw.count();
    const sweeps = node.agent!.services!;
    // Now: every entry is younger than any timeout.
    assert.equal(sweeps.sweepConntrack().last?.removed, 0);
    // 11 s on (closing timeout 10 s): the closed connections' entries go, and nothing else.
    const r = sweeps.sweepConntrack(process.hrtime.bigint() + 11_000_000_000n);
    assert.deepEqual(ours(), []);
    assert.equal(r.last?.removed, before.length);
    assert.equal(raw.count(), total - before.length);
  });

  test('a UDP datagram to a ClusterIP is answered from the ClusterIP', () => {
    const r = client(pods[0]!.ns.name, 'udp', CLUSTER_IP, 53, 'q');
    assert.deepEqual(r, { ok: true, peer: `${CLUSTER_IP}:53`, data: 'backend:q' });
  });

  test("the backend's port unreachable reaches the client as the ClusterIP's, so a connected UDP socket reports it", () => {
    assert.deepEqual(client(pods[0]!.ns.name, 'udp', CLUSTER_IP, 54), { ok: false, code: 'ECONNREFUSED' });
  });

  test('a Service without backends refuses a TCP connection at once (reset built in BPF)', () => {
    assert.deepEqual(client(pods[0]!.ns.name, 'tcp', NO_BACKEND_IP, 80), { ok: false, code: 'ECONNREFUSED' });
  });

  test('a Service without backends answers UDP with port unreachable, which a connected socket reports', () => {
    assert.deepEqual(client(pods[0]!.ns.name, 'udp', NO_BACKEND_IP, 53), { ok: false, code: 'ECONNREFUSED' });
  });

  test('a pod reaches itself through its own Service (hairpin)', () => {
    const r = client(pods[1]!.ns.name, 'tcp', HAIRPIN_IP, 80, 'self');
    assert.deepEqual(r, { ok: true, peer: `${HAIRPIN_IP}:80`, data: 'backend:self' });
  });

  test('a backend on the host network answers through to_pod with the ClusterIP as source', () => {
    const r = client(pods[0]!.ns.name, 'tcp', HOST_SVC_IP, 443, 'api');
    assert.deepEqual(r, { ok: true, peer: `${HOST_SVC_IP}:443`, data: 'host:api' });
  });

  test('the uplink programs take NodePort connections from outside the node to a backend pod and to a host-network backend', async (t) => {
    // The answer is forwarded by the host stack from the pod's veth to the uplink.
    const forwarding = execFileSync('sysctl', ['-n', 'net.ipv4.ip_forward'], { encoding: 'utf8' }).trim();
    if (forwarding !== '1') execFileSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    t.after(() => { if (forwarding !== '1') execFileSync('sysctl', ['-qw', `net.ipv4.ip_forward=${forwarding}`]); });
    assert.deepEqual(await node.agent!.datapath.attachUplink(uplink), ['from_netdev', 'to_netdev']);
    assert.deepEqual(await node.agent!.datapath.attachUplink(uplink), [], 'attaching again changes nothing');
    const r = client(outside!.name, 'tcp', nodeAddr, 30080, 'np');
    assert.deepEqual(r, { ok: true, peer: `${nodeAddr}:30080`, data: 'backend:np' });
    assert.deepEqual(client(outside!.name, 'tcp', nodeAddr, 30081), { ok: false, code: 'ECONNREFUSED' }, 'a NodePort without backends resets');
    assert.deepEqual(client(outside!.name, 'tcp', nodeAddr, 30082, 'hn'), { ok: true, peer: `${nodeAddr}:30082`, data: 'host:hn' }, 'a NodePort to a host-network backend, answered through to_netdev');
    node.agent!.datapath.detachUplink(uplink);
    assert.equal(existsSync(join(node.bpffs, 'links', uplink)), false, 'no pins left for the uplink');
    node.agent!.datapath.detachUplink(uplink); // already detached: fine
  });

  test('a datapath started with the uplink option loads and attaches the uplink programs itself', async () => {
    const dp = await Datapath.start({
      bpffs: node.bpffs, cacheDir: join(node.stateDir, 'bpf-cache'), pool: parsePool(node.podCidr), attachMode: node.cfg.attachMode, log: silentLogger(), uplink,
    });
    try {
      assert.ok(existsSync(join(node.bpffs, 'links', uplink)), 'uplink attachments pinned');
      assert.equal(client(outside!.name, 'tcp', nodeAddr, 30080, 'again').data, 'backend:again');
      dp.detachUplink(uplink);
    } finally {
      dp.close();
    }
  });

  test('a connection to an address in the service range that is no Service is dropped on the node and counted', () => {
    const counters = new CountersMap(node.agent!.datapath.maps.counters);
    const count = () => counters.readAll().filter((c) => c.reason === reason('no_service')).reduce((s, c) => s + c.packets, 0n);
    const before = count();
    assert.deepEqual(client(pods[0]!.ns.name, 'tcp', UNKNOWN_IP, 80), { ok: false, code: 'TIMEOUT' });
    assert.ok(count() > before, 'the SYN was dropped as no_service');
  });
});
