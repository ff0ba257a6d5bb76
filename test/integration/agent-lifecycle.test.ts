/**
 * The agent across restarts and outages: pinned state survives, traffic keeps
 * flowing while no agent runs, queued DELs are replayed, the pool runs out
 * cleanly, and 100 parallel ADDs never share an address.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, inNetns, podnetHostVeths, rand, testCidr } from '../lib/agent-fixture.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';
import { Program } from '../../agent/src/libbpf/index.js';

const ipOf = (r: { json: any }): string => String(r.json.ips[0].address).split('/')[0]!;

describe('agent restart', () => {
  const node = new TestNode(testCidr(232));
  after(() => node.cleanup());

  test('pods keep their traffic while the agent is down, and a new agent adopts them', async () => {
    await node.start();
    const pods = [];
    for (const label of ['r1', 'r2']) {
      const ns = node.netns(label);
      const id = `ctr-${label}-${rand()}`;
      const r = await node.cni('ADD', { containerId: id, netns: ns.path });
      assert.equal(r.code, 0, r.stdout);
      pods.push({ id, ns, ip: ipOf(r) });
    }
    const progDir = join(node.bpffs, 'progs');
    const gens = readdirSync(progDir).sort();
    const gen = gens.find((d) => d.startsWith('pod-'));
    const progId = Program.openPinned(join(progDir, gen!, 'from_pod')).id;
    await node.stop();

    // No agent: the pinned datapath still redirects pod to pod.
    assert.equal(inNetns(pods[0]!.ns.name, ['ping', '-c', '2', '-i', '0.2', '-W', '2', pods[1]!.ip]).code, 0);

    await node.start();
    const eps = node.agent!.endpointInfos();
    assert.deepEqual(eps.map((e) => e.containerId).sort(), pods.map((p) => p.id).sort());
    assert.equal(node.agent!.ipam.lookup(pods[0]!.id, 'eth0'), pods[0]!.ip);
    // Same object and constants: the programs were adopted, not reloaded.
    assert.deepEqual(readdirSync(progDir).sort(), gens);
    assert.equal(Program.openPinned(join(progDir, gen!, 'from_pod')).id, progId);
    assert.equal(inNetns(pods[0]!.ns.name, ['ping', '-c', '1', '-W', '2', pods[1]!.ip]).code, 0);

    // A third pod gets a fresh address, never one of the adopted ones.
    const ns3 = node.netns('r3');
    const r3 = await node.cni('ADD', { containerId: `ctr-r3-${rand()}`, netns: ns3.path });
    assert.equal(r3.code, 0);
    assert.ok(!pods.some((p) => p.ip === ipOf(r3)));

    for (const p of pods) assert.equal((await node.cni('DEL', { containerId: p.id, netns: p.ns.path })).code, 0);
    node.deleteNetns(ns3.name);
  });

  test('an endpoint whose netns vanished while the agent was down is cleaned up at start', async () => {
    await node.stop().catch(() => {});
    await node.start();
    const ns = node.netns('vanish');
    const id = `ctr-vanish-${rand()}`;
    assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path })).code, 0);
    await node.stop();
    node.deleteNetns(ns.name);
    await node.start();
    assert.equal(node.agent!.ipam.lookup(id, 'eth0'), undefined);
    assert.ok(!node.agent!.endpointInfos().some((e) => e.containerId === id));
    assert.ok(!existsSync(join(node.bpffs, 'links', hostVethName(id, 'eth0'))), 'no attachment pins are left for the vanished endpoint');
  });
});

describe('agent down', () => {
  const node = new TestNode(testCidr(233));
  after(() => node.cleanup());

  test('ADD answers code 11 and STATUS code 50 while no agent runs', async () => {
    const ns = node.netns('down');
    const add = await node.cni('ADD', { containerId: `ctr-down-${rand()}`, netns: ns.path });
    assert.equal(add.code, 1);
    assert.equal(add.json.code, 11);
    const st = await node.cni('STATUS');
    assert.equal(st.json.code, 50);
    node.deleteNetns(ns.name);
  });

  test('DEL while the agent is down exits 0 and is replayed when the agent starts', async () => {
    await node.start();
    const ns = node.netns('queue');
    const id = `ctr-queue-${rand()}`;
    assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path })).code, 0);
    await node.stop();
    const del = await node.cni('DEL', { containerId: id, netns: ns.path });
    assert.equal(del.code, 0, del.stdout);
    assert.equal(readdirSync(join(node.stateDir, 'del-queue')).filter((n) => n.endsWith('.json')).length, 1);
    await node.start();
    assert.equal(node.agent!.ipam.lookup(id, 'eth0'), undefined);
    assert.ok(!podnetHostVeths().includes(hostVethName(id, 'eth0')));
    assert.deepEqual(readdirSync(join(node.stateDir, 'del-queue')).filter((n) => n.endsWith('.json')), []);
    node.deleteNetns(ns.name);
  });
});

describe('pool limits and concurrency', () => {
  test('an exhausted pool is a CNI error that leaves nothing behind', async () => {
    const node = new TestNode(testCidr(234, 30)); // two usable addresses
    try {
      await node.start();
      const ids: string[] = [];
      const nss = [];
      for (let i = 0; i < 3; i++) {
        const ns = node.netns('ex');
        nss.push(ns);
        const id = `ctr-ex${i}-${rand()}`;
        ids.push(id);
        const r = await node.cni('ADD', { containerId: id, netns: ns.path });
        if (i < 2) assert.equal(r.code, 0, r.stdout);
        else {
          assert.equal(r.json.code, 100);
          assert.ok(r.json.msg.includes(`${node.podCidr}: pool exhausted`), r.json.msg);
          assert.equal(inNetns(ns.name, ['ip', '-o', 'link', 'show', 'eth0']).code, 1);
          assert.ok(!podnetHostVeths().includes(hostVethName(id, 'eth0')));
        }
      }
      for (let i = 0; i < 3; i++) assert.equal((await node.cni('DEL', { containerId: ids[i]!, netns: nss[i]!.path })).code, 0);
      assert.equal(node.agent!.ipam.usage().used, 0);
    } finally {
      await node.cleanup();
    }
  });

  test('100 ADDs in parallel batches get distinct addresses, and their DELs leave nothing', async () => {
    const node = new TestNode(testCidr(235));
    try {
      await node.start();
      const pods = Array.from({ length: 100 }, (_, i) => ({ id: `ctr-par${i}-${rand()}`, ns: node.netns('par') }));
      const ips: string[] = [];
      for (let i = 0; i < pods.length; i += 20) {
        const batch = await Promise.all(pods.slice(i, i + 20).map((p) => node.cni('ADD', { containerId: p.id, netns: p.ns.path })));
        for (const r of batch) { assert.equal(r.code, 0, r.stdout); ips.push(ipOf(r)); }
      }
      assert.equal(new Set(ips).size, 100, 'no address handed out twice');
      assert.equal(node.agent!.ipam.usage().used, 100);
      for (let i = 0; i < pods.length; i += 20) {
        const batch = await Promise.all(pods.slice(i, i + 20).map((p) => node.cni('DEL', { containerId: p.id, netns: p.ns.path })));
        for (const r of batch) assert.equal(r.code, 0, r.stdout);
      }
      assert.equal(node.agent!.ipam.usage().used, 0);
      assert.deepEqual(node.agent!.endpointInfos(), []);
      const left = new Set(podnetHostVeths());
      assert.deepEqual(pods.filter((p) => left.has(hostVethName(p.id, 'eth0'))), []);
      assert.deepEqual(readdirSync(join(node.bpffs, 'links')), []);
    } finally {
      await node.cleanup();
    }
  });
});
