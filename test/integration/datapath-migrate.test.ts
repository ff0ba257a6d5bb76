/**
 * The first start on the previous pin layout (progs/<16 hex>/{from_pod,to_pod},
 * links/<hostif>_{ingress,egress}, pn_ifcount) migrates every attachment to
 * links/<hostif>/<program>-<hook> and the current program generation in
 * place: pod-to-pod pings running across the start lose nothing, tcx links
 * keep their kernel ids, and nothing of the old layout is left. The old
 * layout is written by hand from a node the current agent set up, with an
 * older program generation loaded into every attachment.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, inNetns, rand, testCidr } from '../lib/agent-fixture.js';
import { BpfMap, BpfObject, openPinnedLink, probeTcx } from '../../agent/src/libbpf/index.js';
import { NODE_OBJECTS } from '../../agent/src/datapath/index.js';

const ipOf = (r: { json: any }): string => String(r.json.ips[0].address).split('/')[0]!;
const OLD_GEN = '0123456789abcdef';
const OLD = { from_pod: 'ingress', to_pod: 'egress' } as const;

/** Rewrites a stopped node's pins into the previous layout, with programs of another load in every attachment. */
function writeOldLayout(bpffs: string, objectPath: string): { oldIds: Record<string, number> } {
  const progs = join(bpffs, 'progs');
  for (const d of readdirSync(progs)) rmSync(join(progs, d), { recursive: true, force: true });
  using obj = BpfObject.open(objectPath, { pinRoot: bpffs });
  obj.load();
  mkdirSync(join(progs, OLD_GEN));
  for (const name of Object.keys(OLD)) obj.program(name).pin(join(progs, OLD_GEN, name));
  const links = join(bpffs, 'links');
  for (const ifname of readdirSync(links)) {
    for (const [name, dir] of Object.entries(OLD)) {
      const pin = join(links, ifname, `${name}-tc_${dir}`);
      using link = openPinnedLink(pin);
      link.update(obj.program(name));
      link.pin(join(links, `${ifname}_${dir}`));
      unlinkSync(pin);
    }
    rmdirSync(join(links, ifname));
  }
  // The previous layout pinned the interface counter map on every node.
  using ifcount = BpfMap.create({ type: 'percpu_hash', name: 'pn_ifcount', keySize: 8, valueSize: 16, maxEntries: 1024 });
  ifcount.pin(join(bpffs, 'pn_ifcount'));
  return { oldIds: { from_pod: obj.program('from_pod').id, to_pod: obj.program('to_pod').id } };
}

/** Pings at 100 per second until stopped; resolves with the counts ping prints. */
function pingFlood(ns: string, ip: string): { stop: () => Promise<{ sent: number; received: number; out: string }>; running: () => boolean } {
  const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-i', '0.01', '-W', '1', '-w', '60', '-q', ip], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  return {
    running: () => child.exitCode === null,
    stop: async () => {
      child.kill('SIGINT');
      await exited;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      assert.ok(m, `ping statistics in: ${out}`);
      return { sent: Number(m[1]), received: Number(m[2]), out };
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const mode of ['clsact', 'tcx'] as const) {
  describe(`migration from the previous pin layout (${mode})`, { skip: mode === 'tcx' && !probeTcx() ? 'tcx needs Linux >= 6.6' : false }, () => {
    const node = new TestNode(testCidr(mode === 'clsact' ? 238 : 239), { attachMode: mode });
    after(() => node.cleanup());

    test('a new agent moves every attachment to the new layout and generation without a traffic gap', async () => {
      await node.start();
      const pods = [];
      for (const label of ['m1', 'm2']) {
        const ns = node.netns(label);
        const id = `ctr-${label}-${rand()}`;
        const r = await node.cni('ADD', { containerId: id, netns: ns.path });
        assert.equal(r.code, 0, r.stdout);
        const ep = node.agent!.endpointInfos().find((e) => e.containerId === id)!;
        pods.push({ id, ns, ip: ipOf(r), hostIf: ep.hostIfName, ifindex: ep.hostIfIndex });
      }
      await node.stop();
      const cache = join(node.stateDir, 'bpf-cache');
      const { oldIds } = writeOldLayout(node.bpffs, join(cache, readdirSync(cache).find((n) => n.startsWith('pod-'))!));
      const linkIds = new Map<string, number | undefined>();
      for (const p of pods) for (const dir of Object.values(OLD)) {
        using l = openPinnedLink(join(node.bpffs, 'links', `${p.hostIf}_${dir}`));
        linkIds.set(`${p.hostIf}_${dir}`, l.id);
        assert.equal(l.programId, dir === 'ingress' ? oldIds.from_pod : oldIds.to_pod, 'the old generation is attached');
      }
      assert.equal(inNetns(pods[0]!.ns.name, ['ping', '-c', '1', '-W', '2', pods[1]!.ip]).code, 0, 'the old layout forwards');

      const flood = pingFlood(pods[0]!.ns.name, pods[1]!.ip);
      await sleep(300);
      await node.start();
      await sleep(300);
      assert.equal(flood.running(), true, 'the pings ran across the whole start');
      const { sent, received, out } = await flood.stop();
      // A loaded machine slows ping's 10 ms interval; a dozen echoes across the start still show it ran throughout.
      assert.ok(sent > 12, `enough pings were sent: ${out}`);
      // SIGINT can catch the last echo in flight: at most that one is missing.
      assert.ok(sent - received <= 1, `no pings lost across the migration: ${out}`);

      const dp = node.agent!.datapath;
      for (const p of pods) {
        assert.deepEqual(dp.health(p.hostIf, p.ifindex), [], `${p.hostIf} runs the new generation`);
        assert.deepEqual(readdirSync(join(node.bpffs, 'links', p.hostIf)).sort(), ['from_pod-tc_ingress', 'to_pod-tc_egress']);
        for (const [name, dir] of Object.entries(OLD)) {
          assert.equal(existsSync(join(node.bpffs, 'links', `${p.hostIf}_${dir}`)), false, 'the old pin is gone');
          using l = openPinnedLink(join(node.bpffs, 'links', p.hostIf, `${name}-tc_${dir}`));
          assert.equal(l.programId, dp.program(name).id);
          assert.notEqual(l.programId, oldIds[name]);
          // tcx: the same kernel link, so it was never detached.
          if (mode === 'tcx') assert.equal(l.id, linkIds.get(`${p.hostIf}_${dir}`));
        }
      }
      // One generation of each object a node without an uplink loads.
      const progs = readdirSync(join(node.bpffs, 'progs')).sort();
      const loaded = NODE_OBJECTS.filter((o) => o.programs.some((p) => p.target !== 'uplink')).map((o) => o.name).sort();
      assert.deepEqual(progs.map((d) => d.replace(/-[0-9a-f]{16}$/, '')), loaded);
      assert.ok(progs.every((d) => /^[a-z]+-[0-9a-f]{16}$/.test(d)), progs.join(', '));
      assert.equal(existsSync(join(node.bpffs, 'pn_ifcount')), false, 'pn_ifcount is no longer pinned');
      assert.equal(node.agent!.ipam.lookup(pods[0]!.id, 'eth0'), pods[0]!.ip, 'IPAM state survived');

      for (const p of pods) assert.equal((await node.cni('DEL', { containerId: p.id, netns: p.ns.path })).code, 0);
      assert.deepEqual(readdirSync(join(node.bpffs, 'links')), []);
    });
  });
}
