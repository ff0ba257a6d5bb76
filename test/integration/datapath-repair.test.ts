/**
 * The datapath repairs what it finds on a host veth instead of failing:
 * one pod's tc filter deleted by hand, a stale attachment record, a pin
 * whose link is gone, or a foreign program on podnet's hook. The agent
 * starts again, DEL works with one hook already gone, and the health check
 * names the hook that is wrong. Both attach modes; traffic stays between
 * the namespaces made here.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, inNetns, rand, testCidr } from '../lib/agent-fixture.js';
import { BpfObject, attachTcLegacy, openPinnedLink, probeTcx } from '../../agent/src/libbpf/index.js';

const ipOf = (r: { json: any }): string => String(r.json.ips[0].address).split('/')[0]!;

/** Every pin under links/ that belongs to `ifname` and `direction` (whatever the layout). */
function pinsOf(bpffs: string, ifname: string, direction: 'ingress' | 'egress'): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.includes(ifname) && n.endsWith(direction)) out.push(p);
    }
  };
  walk(join(bpffs, 'links'));
  return out;
}

const tcFilters = (ifname: string, direction: 'ingress' | 'egress'): string =>
  execFileSync('tc', ['filter', 'show', 'dev', ifname, direction], { encoding: 'utf8' });

for (const mode of ['clsact', 'tcx'] as const) {
  describe(`datapath repair (${mode})`, { skip: mode === 'tcx' && !probeTcx() ? 'tcx needs Linux >= 6.6' : false }, () => {
    const node = new TestNode(testCidr(mode === 'clsact' ? 236 : 237), { attachMode: mode });
    after(() => node.cleanup());
    const pods: Array<{ id: string; ns: { name: string; path: string }; ip: string; hostIf: string; ifindex: number }> = [];

    /** Removes one hook's program the way an operator or another tool would: tc for clsact, dropping the only pin of a tcx link. */
    function removeProgram(hostIf: string, direction: 'ingress' | 'egress'): void {
      if (mode === 'clsact') execFileSync('tc', ['filter', 'del', 'dev', hostIf, direction, 'pref', '1']);
      else for (const p of pinsOf(node.bpffs, hostIf, direction)) rmSync(p);
    }
    // Any reply of three: a busy machine may lose the first echo to scheduling, never all three to a broken path.
    const pingOk = () => inNetns(pods[0]!.ns.name, ['ping', '-c', '3', '-i', '0.2', '-W', '2', pods[1]!.ip]).code === 0;

    test('two pods come up and reach each other', async () => {
      await node.start();
      for (const label of ['a', 'b']) {
        const ns = node.netns(`rp${label}`);
        const id = `ctr-rp${label}-${rand()}`;
        const r = await node.cni('ADD', { containerId: id, netns: ns.path });
        assert.equal(r.code, 0, r.stdout);
        const ep = node.agent!.endpointInfos().find((e) => e.containerId === id)!;
        pods.push({ id, ns, ip: ipOf(r), hostIf: ep.hostIfName, ifindex: ep.hostIfIndex });
      }
      assert.equal(pingOk(), true, 'pod to pod before any damage');
    });

    test("the agent starts again after one pod's ingress program was removed, and re-attaches it", async () => {
      await node.stop();
      removeProgram(pods[0]!.hostIf, 'ingress');
      await node.start();
      assert.deepEqual(node.agent!.datapath.health(pods[0]!.hostIf, pods[0]!.ifindex), []);
      if (mode === 'clsact') assert.match(tcFilters(pods[0]!.hostIf, 'ingress'), /from_pod/);
      assert.equal(pingOk(), true, 'pod to pod after the repair');
    });

    test("the agent starts again after one pod's egress program was removed, and re-attaches it", async () => {
      await node.stop();
      removeProgram(pods[1]!.hostIf, 'egress');
      await node.start();
      assert.deepEqual(node.agent!.datapath.health(pods[1]!.hostIf, pods[1]!.ifindex), []);
      if (mode === 'clsact') assert.match(tcFilters(pods[1]!.hostIf, 'egress'), /to_pod/);
    });

    // Only clsact keeps a record apart from the attachment; a tcx link is its own pin.
    if (mode === 'clsact') test('the agent starts again when the record of a live clsact filter is lost, and adopts the filter', async () => {
      await node.stop();
      for (const p of pinsOf(node.bpffs, pods[0]!.hostIf, 'egress')) rmSync(p);
      await node.start();
      assert.deepEqual(node.agent!.datapath.health(pods[0]!.hostIf, pods[0]!.ifindex), []);
      // Replaced in place: still exactly one filter on the hook.
      assert.equal(tcFilters(pods[0]!.hostIf, 'egress').split('\n').filter((l) => l.includes('to_pod')).length, 1);
    });

    test('health names the hook without a program, and the one running a foreign program', async () => {
      const dp = node.agent!.datapath;
      const p = pods[0]!;
      removeProgram(p.hostIf, 'ingress');
      const problems = dp.health(p.hostIf, p.ifindex);
      assert.equal(problems.length, 1, problems.join('; '));
      assert.match(problems[0]!, /^ingress: no program attached/);
      dp.attach(p.hostIf, p.ifindex);
      assert.deepEqual(dp.health(p.hostIf, p.ifindex), []);

      // Another load of the same object: same code, a program id that is not ours.
      // Pinned maps under the test's own bpffs dir: without a pin root libbpf would pin them at /sys/fs/bpf.
      using other = BpfObject.open(join(node.stateDir, 'bpf-cache', readdirSync(join(node.stateDir, 'bpf-cache')).find((n) => n.startsWith('pod-'))!), { pinRoot: node.bpffs });
      other.load();
      const foreign = other.program('to_pod');
      if (mode === 'clsact') attachTcLegacy(foreign, p.ifindex, 'egress', { priority: 1, handle: 1, replace: true });
      else { using l = openPinnedLink(pinsOf(node.bpffs, p.hostIf, 'egress')[0]!); l.update(foreign); }
      assert.deepEqual(dp.health(p.hostIf, p.ifindex), [`egress: program ${foreign.id} attached, want ${dp.program('to_pod').id}`]);
      dp.attach(p.hostIf, p.ifindex);
      assert.deepEqual(dp.health(p.hostIf, p.ifindex), []);
    });

    test('DEL succeeds when one hook is already gone, and leaves no pins', async () => {
      for (const p of pods) {
        removeProgram(p.hostIf, 'egress');
        const r = await node.cni('DEL', { containerId: p.id, netns: p.ns.path });
        assert.equal(r.code, 0, r.stdout);
        assert.deepEqual(pinsOf(node.bpffs, p.hostIf, 'ingress'), []);
        assert.deepEqual(pinsOf(node.bpffs, p.hostIf, 'egress'), []);
      }
      assert.deepEqual(readdirSync(join(node.bpffs, 'links')), []);
    });
  });
}
