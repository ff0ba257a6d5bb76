/**
 * Host ports (a pod's hostPort, CNI runtimeConfig.portMappings) with real
 * traffic: pods made through the real CNI entry point and a real agent
 * (Services on, from an empty file, socket load balancing on), real TCP
 * and UDP sockets. A mapping on every address (hostIP empty) and one on
 * 127.0.0.1 are reached from another pod through the node address, from
 * host processes through the socket hooks (127.0.0.1 and the node
 * address), from outside through the uplink; CHECK finds a missing
 * frontend; a port another pod holds and a bad mapping are refused with
 * nothing left behind; the frontends survive an agent restart and go with DEL.
 *
 * The node address is the test's own: the host end of a veth pair whose
 * other end sits in an "outside" namespace made here. Everything sent goes
 * to that address, to 127.0.0.1 or into the namespaces made here; both are
 * local addresses, so an untranslated packet never leaves the machine, and
 * a blackhole route over the pod CIDR keeps one translated to a deleted
 * pod's address on the machine too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, inNetns, podnetHostVeths, rand, testCidr } from '../lib/agent-fixture.js';
import { ECHO_CLIENT, outsideUplink, startEchoServer, type EchoReply } from '../lib/echo-scripts.js';
import { apiCall } from '../../agent/src/api/client.js';
import type { ServicesInfo } from '../../agent/src/api/protocol.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';
import { svcKey, svcValue } from '../../agent/src/maps/index.js';

const TCP = 6;
const ipOf = (r: { json: any }): string => String(r.json.ips[0].address).split('/')[0]!;

type Reply = EchoReply;

describe('host ports of pods through the Services datapath', { timeout: 300_000 }, () => {
  // A service range of its own: the socket hooks refuse host connects into it.
  const node = new TestNode(testCidr(234), { serviceCidr: '10.96.234.0/24' });
  const servers: ChildProcess[] = [];
  const pods: Array<{ id: string; ns: { name: string; path: string }; ip: string }> = [];
  // Ports of this run: the socket hooks translate every host process's connect to them while the agent runs.
  const base = randomInt(42000, 48000);
  const ANY_PORT = base, LOOP_PORT = base + 1, NODE_PORT = base + 2;
  let uplink = '';
  let outside: { name: string; path: string } | undefined;
  let nodeAddr = '', outsideAddr = '';

  const mappings = () => [
    { hostPort: ANY_PORT, containerPort: 8080, protocol: 'tcp', hostIP: '' },
    { hostPort: ANY_PORT, containerPort: 5353, protocol: 'UDP' },
    { hostPort: LOOP_PORT, containerPort: 8080, protocol: 'tcp', hostIP: '127.0.0.1' },
    { hostPort: NODE_PORT, containerPort: 8080, protocol: 'tcp', hostIP: nodeAddr },
  ];
  const withPorts = (portMappings: unknown, extra: Record<string, unknown> = {}) => node.conf({ runtimeConfig: { portMappings }, ...extra });

  const client = (ns: string | undefined, proto: 'tcp' | 'udp', host: string, port: number, msg = 'ping'): Reply => {
    const argv = [process.execPath, '-e', ECHO_CLIENT, proto, host, String(port), msg];
    let out: string;
    if (ns) {
      const r = inNetns(ns, argv, 10_000);
      assert.equal(r.code, 0, `client in ${ns} ran`);
      out = r.out;
    } else {
      out = execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
    }
    return JSON.parse(out.trim().split('\n').pop()!) as Reply;
  };
  async function serve(ns: string, name: string): Promise<void> {
    servers.push(await startEchoServer(ns, name, '0.0.0.0', 8080, 5353));
  }
  const services = (): Promise<ServicesInfo> => apiCall<ServicesInfo>(node.socket, 'GET', '/v1/services');
  const hostPortFrontends = async (): Promise<string[]> =>
    (await services()).services.filter((s) => s.kind === 'hostport')
      .flatMap((s) => s.ports.flatMap((p) => p.frontends.map((f) => `${s.namespace}/${s.name} ${f.address}:${f.port}/${f.protocol}`))).sort();
  /** Everything an attachment holds in the kernel and the agent. */
  function leftovers(containerId: string): string[] {
    const left: string[] = [];
    const host = hostVethName(containerId, 'eth0');
    if (podnetHostVeths().includes(host)) left.push(`veth ${host}`);
    if (node.agent!.ipam.lookup(containerId, 'eth0')) left.push('address');
    if (node.agent!.endpoints.list().some((m) => m.containerId === containerId)) left.push('endpoint metadata');
    return left;
  }

  let blackhole = false;

  before(async () => {
    // First of all: a pod address without its /32 route (a pod deleted while
    // a frontend still pointed at it) must not follow the default route off
    // the machine. The pods' /32 routes are more specific and win.
    execFileSync('ip', ['route', 'replace', 'blackhole', node.podCidr]);
    blackhole = true;
    // The node address next, so the agent's first pass knows it.
    ({ outside, uplink, nodeAddr, outsideAddr } = outsideUplink(node, 'hpout', 'pnhp', `10.249.${node.podCidr.split('.')[2]}`));
    // No Services: an empty file (the source must deliver a state before host ports are written).
    const file = join(node.dir, 'services.yaml');
    writeFileSync(file, '# no Services\n');
    node.cfg = { ...node.cfg, source: { kind: 'file', path: file } };
    await node.start({ socketLb: true });
    for (const [label, conf] of [['hps', withPorts(mappings())], ['hpc', node.conf()]] as const) {
      const ns = node.netns(label);
      const id = `ctr-${label}-${rand()}`;
      const r = await node.cni('ADD', { containerId: id, netns: ns.path, args: `K8S_POD_NAMESPACE=web;K8S_POD_NAME=pod-${label}`, conf });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      pods.push({ id, ns, ip: ipOf(r) });
    }
    await serve(pods[0]!.ns.name, 'hps');
  });

  after(async () => {
    for (const s of servers) if (s.exitCode === null) s.kill();
    for (const p of pods) await node.cni('DEL', { containerId: p.id, netns: p.ns.path }).catch(() => {});
    if (uplink) { try { execFileSync('ip', ['link', 'del', uplink], { stdio: 'ignore' }); } catch { /* gone with its netns */ } }
    await node.cleanup();
    if (blackhole) execFileSync('ip', ['route', 'del', 'blackhole', node.podCidr]);
  });

  test('ADD writes a frontend per mapping and address, and podnet services lists them under the pod', async () => {
    const fes = await hostPortFrontends();
    for (const want of [
      `web/pod-hps ${nodeAddr}:${ANY_PORT}/TCP`, `web/pod-hps ${nodeAddr}:${ANY_PORT}/UDP`, `web/pod-hps 127.0.0.1:${ANY_PORT}/TCP`,
      `web/pod-hps 127.0.0.1:${LOOP_PORT}/TCP`, `web/pod-hps ${nodeAddr}:${NODE_PORT}/TCP`,
    ]) assert.ok(fes.includes(want), `${want} in ${fes.join(', ')}`);
    assert.ok(!fes.includes(`web/pod-hps ${nodeAddr}:${LOOP_PORT}/TCP`), 'the 127.0.0.1 mapping is not on the node address');
    assert.ok(!fes.includes(`web/pod-hps 127.0.0.1:${NODE_PORT}/TCP`), 'the node-address mapping is not on 127.0.0.1');
    assert.deepEqual(node.agent!.endpoints.list().find((m) => m.containerId === pods[0]!.id)?.hostPorts?.map((m) => `${m.hostIP}:${m.hostPort}/${m.protocol}`),
      [`0.0.0.0:${ANY_PORT}/tcp`, `0.0.0.0:${ANY_PORT}/udp`, `127.0.0.1:${LOOP_PORT}/tcp`, `${nodeAddr}:${NODE_PORT}/tcp`], 'kept with the endpoint');
  });

  test('another pod reaches TCP and UDP host ports through the node address, and sees the node address as its peer', () => {
    const c = pods[1]!.ns.name;
    assert.deepEqual(client(c, 'tcp', nodeAddr, ANY_PORT, 't'), { ok: true, peer: `${nodeAddr}:${ANY_PORT}`, data: 'hps:t' });
    assert.deepEqual(client(c, 'udp', nodeAddr, ANY_PORT, 'u'), { ok: true, peer: `${nodeAddr}:${ANY_PORT}`, data: 'hps:u' });
    assert.deepEqual(client(c, 'tcp', nodeAddr, NODE_PORT, 'n'), { ok: true, peer: `${nodeAddr}:${NODE_PORT}`, data: 'hps:n' });
  });

  test('the pod reaches its own host port through the node address (hairpin)', () => {
    assert.deepEqual(client(pods[0]!.ns.name, 'tcp', nodeAddr, ANY_PORT, 'self'), { ok: true, peer: `${nodeAddr}:${ANY_PORT}`, data: 'hps:self' });
  });

  test('host processes reach a 127.0.0.1 mapping on 127.0.0.1, and the other mappings on 127.0.0.1 and the node address, through the socket hooks', () => {
    assert.deepEqual(client(undefined, 'tcp', '127.0.0.1', LOOP_PORT, 'lo'), { ok: true, peer: `127.0.0.1:${LOOP_PORT}`, data: 'hps:lo' });
    assert.deepEqual(client(undefined, 'tcp', '127.0.0.1', ANY_PORT, 'lo2'), { ok: true, peer: `127.0.0.1:${ANY_PORT}`, data: 'hps:lo2' });
    assert.deepEqual(client(undefined, 'tcp', nodeAddr, ANY_PORT, 'na'), { ok: true, peer: `${nodeAddr}:${ANY_PORT}`, data: 'hps:na' });
    assert.deepEqual(client(undefined, 'udp', nodeAddr, ANY_PORT, 'nu'), { ok: true, peer: `${nodeAddr}:${ANY_PORT}`, data: 'hps:nu' });
  });

  test('a 127.0.0.1 mapping is not reachable from a pod through the node address', () => {
    // Nothing listens on the node address at that port: the host stack resets.
    assert.deepEqual(client(pods[1]!.ns.name, 'tcp', nodeAddr, LOOP_PORT), { ok: false, code: 'ECONNREFUSED' });
  });

  test('a client outside the node reaches a host port through the uplink', async (t) => {
    const forwarding = execFileSync('sysctl', ['-n', 'net.ipv4.ip_forward'], { encoding: 'utf8' }).trim();
    if (forwarding !== '1') execFileSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    t.after(() => { if (forwarding !== '1') execFileSync('sysctl', ['-qw', `net.ipv4.ip_forward=${forwarding}`]); });
    await node.agent!.datapath.attachUplink(uplink);
    t.after(() => node.agent?.datapath.detachUplink(uplink));
    assert.deepEqual(client(outside!.name, 'tcp', nodeAddr, ANY_PORT, 'out'), { ok: true, peer: `${nodeAddr}:${ANY_PORT}`, data: 'hps:out' });
    assert.deepEqual(client(outside!.name, 'udp', nodeAddr, NODE_PORT), { ok: false, code: 'ECONNREFUSED' }, 'the TCP-only mapping takes no UDP: the host stack answers port unreachable');
  });

  test('CHECK passes with the same mappings, fails on other ones and on a frontend missing from the maps', async () => {
    const p = pods[0]!;
    const prev = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: p.ns.path }], ips: [{ address: `${p.ip}/32`, gateway: '169.254.1.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }] };
    const check = (portMappings: unknown) => node.cni('CHECK', { containerId: p.id, netns: p.ns.path, conf: withPorts(portMappings, { prevResult: prev }) });
    const ok = await check(mappings());
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const other = await check(mappings().slice(1));
    assert.notEqual(other.code, 0);
    assert.match(other.json.msg, /runtimeConfig\.portMappings .* differ from the host ports ADD set up/);
    const services = node.agent!.datapath.maps.services.typed(svcKey, svcValue);
    services.delete({ addr: '127.0.0.1', port: LOOP_PORT, proto: TCP, pad: 0 });
    const missing = await check(mappings());
    assert.notEqual(missing.code, 0);
    assert.match(missing.json.msg, new RegExp(`host port frontend 127\\.0\\.0\\.1:${LOOP_PORT}/TCP is missing from pn_services`));
  });

  test('an agent restart keeps serving the host ports (and rewrites a frontend removed behind its back)', async () => {
    await node.stop();
    await node.start({ socketLb: true });
    assert.deepEqual(client(undefined, 'tcp', '127.0.0.1', LOOP_PORT, 'again'), { ok: true, peer: `127.0.0.1:${LOOP_PORT}`, data: 'hps:again' });
    assert.deepEqual(client(pods[1]!.ns.name, 'tcp', nodeAddr, ANY_PORT, 'again'), { ok: true, peer: `${nodeAddr}:${ANY_PORT}`, data: 'hps:again' });
  });

  test('a second pod claiming a held port is refused naming the holder, with nothing left behind', async () => {
    for (const [i, claim] of [
      { hostPort: LOOP_PORT, containerPort: 80, hostIP: '0.0.0.0' },
      { hostPort: ANY_PORT, containerPort: 80, protocol: 'udp', hostIP: nodeAddr },
    ].entries()) {
      const ns = node.netns('hpx');
      const id = `ctr-hpx${i}-${rand()}`;
      try {
        const r = await node.cni('ADD', { containerId: id, netns: ns.path, args: 'K8S_POD_NAMESPACE=web;K8S_POD_NAME=pod-x', conf: withPorts([claim]) });
        assert.notEqual(r.code, 0);
        assert.equal(r.json.code, 7);
        assert.match(r.json.msg, new RegExp(`runtimeConfig\\.portMappings: host port .*:${claim.hostPort}/${claim.protocol ?? 'tcp'} is held by pod web/pod-hps`));
        assert.deepEqual(leftovers(id), []);
        assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
      } finally {
        node.deleteNetns(ns.name);
      }
    }
  });

  test('a bad mapping fails ADD with code 7 naming the field and rolls back everything', async () => {
    const ns = node.netns('hpbad');
    const id = `ctr-hpbad-${rand()}`;
    const before = (await services()).services.length;
    try {
      for (const [bad, field] of [
        [[{ hostPort: 1 + ANY_PORT + 10, containerPort: 80 }, { hostPort: 70000, containerPort: 80 }], 'runtimeConfig\\.portMappings\\[1\\]\\.hostPort'],
        [[{ hostPort: 1 + ANY_PORT + 10, containerPort: 80, protocol: 'sctp' }], 'runtimeConfig\\.portMappings\\[0\\]\\.protocol: sctp is not supported'],
      ] as const) {
        const r = await node.cni('ADD', { containerId: id, netns: ns.path, conf: withPorts(bad) });
        assert.equal(r.code, 1);
        assert.equal(r.json.code, 7, r.stdout);
        assert.match(r.json.msg, new RegExp(field));
        assert.deepEqual(leftovers(id), []);
        assert.equal(inNetns(ns.name, ['ip', '-o', 'link', 'show', 'eth0']).code, 1, 'no eth0 in the pod');
      }
      assert.equal((await services()).services.length, before, 'no frontend written');
      assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
    } finally {
      node.deleteNetns(ns.name);
    }
  });

  test('a failure after the host ports were written rolls them back too', async () => {
    await node.stop();
    await node.start({ socketLb: true, failpoint: (s) => { if (s === 'host-ports') throw new Error('injected failure after host-ports'); } });
    const ns = node.netns('hpfail');
    const id = `ctr-hpfail-${rand()}`;
    const port = NODE_PORT + 10;
    try {
      const r = await node.cni('ADD', { containerId: id, netns: ns.path, args: 'K8S_POD_NAMESPACE=web;K8S_POD_NAME=pod-fail', conf: withPorts([{ hostPort: port, containerPort: 8080, hostIP: '127.0.0.1' }]) });
      assert.notEqual(r.code, 0);
      assert.match(r.json.msg, /injected failure after host-ports/);
      assert.deepEqual(leftovers(id), []);
      assert.ok(!(await hostPortFrontends()).some((f) => f.includes('pod-fail')), 'no frontend of the failed pod');
      assert.equal(node.agent!.datapath.maps.services.typed(svcKey, svcValue).get({ addr: '127.0.0.1', port, proto: TCP, pad: 0 }), undefined);
      assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
    } finally {
      node.deleteNetns(ns.name);
      await node.stop();
      await node.start({ socketLb: true });
    }
  });

  test('DEL removes the frontends: connections to the host ports fail afterwards', async () => {
    const p = pods.shift()!;
    assert.equal((await node.cni('DEL', { containerId: p.id, netns: p.ns.path })).code, 0);
    assert.deepEqual((await hostPortFrontends()).filter((f) => f.startsWith('web/pod-hps')), []);
    // Nothing on the host listens there: refused at once, well inside the client's 2.5 s bound.
    assert.deepEqual(client(undefined, 'tcp', '127.0.0.1', LOOP_PORT), { ok: false, code: 'ECONNREFUSED' });
    assert.deepEqual(client(undefined, 'tcp', nodeAddr, ANY_PORT), { ok: false, code: 'ECONNREFUSED' });
    assert.deepEqual(client(pods[0]!.ns.name, 'tcp', nodeAddr, ANY_PORT), { ok: false, code: 'ECONNREFUSED' });
  });

  test('with Services off an ADD with host ports is refused, saying why, with nothing left behind', async () => {
    await node.stop();
    await node.start({}, { services: false });
    const ns = node.netns('hpoff');
    const id = `ctr-hpoff-${rand()}`;
    try {
      const r = await node.cni('ADD', { containerId: id, netns: ns.path, conf: withPorts([{ hostPort: NODE_PORT + 20, containerPort: 80 }]) });
      assert.equal(r.code, 1);
      assert.equal(r.json.code, 2, r.stdout);
      assert.match(r.json.msg, /runtimeConfig\.portMappings: host ports need podnet's Services \(--services on\); this agent runs with --services off/);
      assert.deepEqual(leftovers(id), []);
      const plain = await node.cni('ADD', { containerId: id, netns: ns.path });
      assert.equal(plain.code, 0, 'a pod without host ports is added as ever');
      assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
    } finally {
      node.deleteNetns(ns.name);
    }
  });
});
