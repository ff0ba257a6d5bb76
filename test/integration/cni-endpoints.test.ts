/**
 * CNI ADD/DEL/CHECK/GC through the real entry point against a real agent
 * (in this process) on the real kernel: veths, routes, neighbours, tc
 * programs and pinned maps. Traffic flows only between namespaces made here.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, inNetns, podnetHostVeths, rand, testCidr } from '../lib/agent-fixture.js';
import { ADD_STEPS, hostVethName } from '../../agent/src/endpoints/index.js';
import { CountersMap } from '../../agent/src/maps/index.js';
import { probeTcx } from '../../agent/src/libbpf/index.js';

const ipOf = (r: { json: any }): string => String(r.json.ips[0].address).split('/')[0]!;

/** Everything the kernel and the agent hold for one attachment. */
function leftovers(node: TestNode, containerId: string, ifName = 'eth0'): string[] {
  const left: string[] = [];
  const host = hostVethName(containerId, ifName);
  if (podnetHostVeths().includes(host)) left.push(`veth ${host}`);
  const a = node.agent!;
  const ip = a.ipam.lookup(containerId, ifName);
  if (ip) left.push(`ipam ${ip}`);
  for (const alloc of a.ipam.allocations()) if (alloc.owner.containerId === containerId) left.push(`ipam entry ${alloc.ip}`);
  if (a.endpoints.list().some((m) => m.containerId === containerId)) left.push('endpoint metadata');
  const linkDir = join(node.bpffs, 'links');
  if (existsSync(linkDir) && readdirSync(linkDir).some((n) => n.startsWith(host))) left.push('link pins');
  const routes = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' });
  if (routes.includes(`dev ${host}`)) left.push('host route');
  return left;
}

// Both attach modes; tcx is skipped only where the kernel lacks it.
for (const mode of ['clsact', 'tcx'] as const) describe(`CNI endpoints on one node (${mode} attach)`, { skip: mode === 'tcx' && !probeTcx() ? 'tcx links need Linux >= 6.6' : false }, () => {
  const node = new TestNode(testCidr(231), { attachMode: mode });
  const prefix = node.podCidr.slice(0, node.podCidr.lastIndexOf('.') + 1);
  const pods: Array<{ id: string; ns: { name: string; path: string }; ip: string }> = [];

  before(async () => {
    try {
      await addPods();
    } catch (err) {
      await node.cleanup();
      throw err;
    }
  });
  async function addPods(): Promise<void> {
    await node.start();
    for (const label of ['a', 'b']) {
      const ns = node.netns(label);
      const id = `ctr-${label}-${rand()}`;
      const r = await node.cni('ADD', { containerId: id, netns: ns.path, args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-${label}` });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      pods.push({ id, ns, ip: ipOf(r) });
    }
  }
  after(async () => {
    for (const p of pods) await node.cni('DEL', { containerId: p.id, netns: p.ns.path }).catch(() => {});
    await node.cleanup();
  });

  test('ADD returns a 1.1.0 result with both interfaces, a /32 and the link-local gateway', async () => {
    const ns = node.netns('res');
    const id = `ctr-res-${rand()}`;
    const r = await node.cni('ADD', { containerId: id, netns: ns.path });
    try {
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.json.cniVersion, '1.1.0');
      assert.equal(r.json.interfaces.length, 2);
      assert.equal(r.json.interfaces[0].name, hostVethName(id, 'eth0'));
      assert.equal(r.json.interfaces[1].name, 'eth0');
      assert.equal(r.json.interfaces[1].sandbox, ns.path);
      assert.ok(r.json.ips[0].address.startsWith(prefix) && r.json.ips[0].address.endsWith('/32'), r.json.ips[0].address);
      assert.equal(r.json.ips[0].gateway, '169.254.1.1');
      assert.equal(r.json.ips[0].interface, 1);
      assert.deepEqual(r.json.routes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
      // The pod side as the kernel has it.
      const addr = inNetns(ns.name, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']).out;
      assert.match(addr, new RegExp(`inet ${ipOf(r).replace(/\./g, '\\.')}/32`));
      const neigh = inNetns(ns.name, ['ip', 'neigh', 'show', 'dev', 'eth0']).out;
      assert.match(neigh, new RegExp(`169\\.254\\.1\\.1 lladdr ${r.json.interfaces[0].mac} PERMANENT`));
      assert.match(inNetns(ns.name, ['ip', 'route']).out, /default via 169\.254\.1\.1 dev eth0/);
    } finally {
      assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
      node.deleteNetns(ns.name);
    }
  });

  test('the endpoint records the pod namespace and name from CNI_ARGS', () => {
    const eps = node.agent!.endpointInfos();
    const a = eps.find((e) => e.containerId === pods[0]!.id);
    assert.equal(a?.podNamespace, 'default');
    assert.equal(a?.podName, 'pod-a');
  });

  test('pod to pod traffic flows and the from_pod counters prove it went through BPF', () => {
    const [a, b] = pods as [typeof pods[0], typeof pods[0]];
    const counters = new CountersMap(node.agent!.datapath.maps.counters);
    const idOf = (p: typeof a) => node.agent!.endpointInfos().find((e) => e.containerId === p.id)!.endpointId;
    const before = counters.readAll();
    const sum = (rows: typeof before, id: number, dir: string) => rows.filter((r) => r.endpointId === id && r.direction === dir && r.reason === 0).reduce((s, r) => s + r.packets, 0n);
    const r = inNetns(a.ns.name, ['ping', '-c', '5', '-i', '0.2', '-W', '2', b.ip]);
    assert.equal(r.code, 0, r.out);
    const after = counters.readAll();
    // 5 echo requests leave a and enter b; 5 replies leave b and enter a.
    assert.ok(sum(after, idOf(a), 'egress') - sum(before, idOf(a), 'egress') >= 5n);
    assert.ok(sum(after, idOf(b), 'ingress') - sum(before, idOf(b), 'ingress') >= 5n);
    assert.ok(sum(after, idOf(b), 'egress') - sum(before, idOf(b), 'egress') >= 5n);
  });

  test('pod to host and host to pod traffic flows', () => {
    const [a] = pods as [typeof pods[0]];
    assert.equal(execFileSync('ping', ['-c', '2', '-i', '0.2', '-W', '2', a.ip], { encoding: 'utf8' }).includes(' 0% packet loss'), true);
    // A host address of the test's own, on a host-only veth pair (this kernel
    // has no dummy driver): the pod reaches it through its default route and
    // the host stack answers.
    const dummy = `pntd${rand()}`;
    execFileSync('ip', ['link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${dummy}p`]);
    try {
      execFileSync('ip', ['addr', 'add', '10.230.255.1/32', 'dev', dummy]);
      execFileSync('ip', ['link', 'set', dummy, 'up']);
      assert.equal(inNetns(a.ns.name, ['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.230.255.1']).code, 0);
    } finally {
      execFileSync('ip', ['link', 'del', dummy]);
    }
  });

  test('a spoofed source address is dropped and counted by reason', () => {
    const [a, b] = pods as [typeof pods[0], typeof pods[0]];
    const spoof = `${prefix}250`;
    inNetns(a.ns.name, ['ip', 'addr', 'add', `${spoof}/32`, 'dev', 'eth0']);
    try {
      const counters = new CountersMap(node.agent!.datapath.maps.counters);
      const drops = () => counters.readAll().filter((c) => c.reason === 1 && c.direction === 'egress').reduce((s, c) => s + c.packets, 0n);
      const d0 = drops();
      const r = inNetns(a.ns.name, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', spoof, b.ip]);
      assert.notEqual(r.code, 0, 'spoofed pings must not be answered');
      assert.equal(drops() - d0, 3n);
    } finally {
      inNetns(a.ns.name, ['ip', 'addr', 'del', `${spoof}/32`, 'dev', 'eth0']);
    }
  });

  test('CHECK passes for a healthy pod and fails after its default route is removed', async () => {
    const ns = node.netns('chk');
    const id = `ctr-chk-${rand()}`;
    const add = await node.cni('ADD', { containerId: id, netns: ns.path });
    assert.equal(add.code, 0, add.stdout);
    try {
      const conf = node.conf({ prevResult: add.json });
      const ok = await node.cni('CHECK', { containerId: id, netns: ns.path, conf });
      assert.equal(ok.code, 0, ok.stdout);
      inNetns(ns.name, ['ip', 'route', 'del', 'default']);
      const bad = await node.cni('CHECK', { containerId: id, netns: ns.path, conf });
      assert.notEqual(bad.code, 0);
      assert.match(bad.json.msg, /route 0\.0\.0\.0\/0 via 169\.254\.1\.1 is missing/);
    } finally {
      await node.cni('DEL', { containerId: id, netns: ns.path });
      node.deleteNetns(ns.name);
    }
  });

  test('ADD of an ifname that already exists in the pod fails and changes nothing', async () => {
    const [a] = pods as [typeof pods[0]];
    const id = `ctr-dup-${rand()}`;
    const r = await node.cni('ADD', { containerId: id, netns: a.ns.path });
    assert.notEqual(r.code, 0);
    assert.match(r.json.msg, /eth0 already exists/);
    assert.deepEqual(leftovers(node, id), []);
    // The pod that owns eth0 is untouched.
    assert.equal(inNetns(a.ns.name, ['ping', '-c', '1', '-W', '2', pods[1]!.ip]).code, 0);
  });

  test('DEL twice succeeds', async () => {
    const ns = node.netns('del2');
    const id = `ctr-del2-${rand()}`;
    assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path })).code, 0);
    assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
    assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
    assert.deepEqual(leftovers(node, id), []);
    node.deleteNetns(ns.name);
  });

  test('DEL succeeds when the netns is already gone, and frees everything', async () => {
    const ns = node.netns('gone');
    const id = `ctr-gone-${rand()}`;
    assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path })).code, 0);
    node.deleteNetns(ns.name);
    const r = await node.cni('DEL', { containerId: id, netns: ns.path });
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(leftovers(node, id), []);
  });

  for (const step of ADD_STEPS) {
    test(`a failure after ADD step "${step}" rolls back everything, and DEL afterwards succeeds`, async () => {
      await node.stop();
      await node.start({ failpoint: (s) => { if (s === step) throw new Error(`injected failure after ${s}`); } });
      const ns = node.netns('fail');
      const id = `ctr-fail-${rand()}`;
      try {
        const r = await node.cni('ADD', { containerId: id, netns: ns.path });
        assert.notEqual(r.code, 0);
        assert.match(r.json.msg, new RegExp(`injected failure after ${step}`));
        assert.deepEqual(leftovers(node, id), []);
        assert.equal(inNetns(ns.name, ['ip', '-o', 'link', 'show', 'eth0']).code, 1, 'no eth0 left in the pod');
        assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
        assert.deepEqual(leftovers(node, id), []);
      } finally {
        node.deleteNetns(ns.name);
        await node.stop();
        await node.start();
      }
    });
  }

  test('GC releases exactly the attachments not in cni.dev/valid-attachments', async () => {
    const extra: Array<{ id: string; ns: { name: string; path: string } }> = [];
    for (let i = 0; i < 3; i++) {
      const ns = node.netns('gc');
      const id = `ctr-gc${i}-${rand()}`;
      assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path })).code, 0);
      extra.push({ id, ns });
    }
    const valid = [...pods.map((p) => p.id), extra[0]!.id].map((containerID) => ({ containerID, ifname: 'eth0' }));
    const r = await node.cni('GC', { conf: node.conf({ 'cni.dev/valid-attachments': valid }) });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(leftovers(node, extra[1]!.id), []);
    assert.deepEqual(leftovers(node, extra[2]!.id), []);
    for (const keep of [...pods.map((p) => p.id), extra[0]!.id]) assert.ok(node.agent!.ipam.lookup(keep, 'eth0'), `${keep} kept its address`);
    assert.equal(inNetns(pods[0]!.ns.name, ['ping', '-c', '1', '-W', '2', pods[1]!.ip]).code, 0);
    await node.cni('DEL', { containerId: extra[0]!.id, netns: extra[0]!.ns.path });
    for (const e of extra) node.deleteNetns(e.ns.name);
  });
});
