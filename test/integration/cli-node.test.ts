/**
 * The CLI against a real agent's state on this kernel: `podnet maps` errors
 * that say why (no root, missing directory, a program pin, a path off
 * bpffs, a ring buffer), endpoints in JSON, and `podnet cleanup` removing a
 * stopped agent's leftovers (pod veths, pins, state, CNI files), with a dry run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, podnetHostVeths, rand, testCidr } from '../lib/agent-fixture.js';
import { podnet } from '../lib/podnet-cli.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';

/** Asserts a failed command: exit 1, one line "podnet: <msg>" and no stack trace. */
function failsWith(r: { code: number | null; stderr: string }, msg: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^podnet: [^\n]+\n$/, `one line: ${r.stderr}`);
  assert.match(r.stderr, msg);
}

describe('podnet CLI on a node with an agent', () => {
  const node = new TestNode(testCidr(236));
  const pods: Array<{ id: string; ns: { name: string; path: string } }> = [];
  const cniConfDir = join(node.dir, 'net.d');
  const cniBinDir = join(node.dir, 'bin');
  before(async () => {
    try {
      await node.start();
      for (const label of ['a', 'b']) {
        const ns = node.netns(label);
        const id = `ctr-cli-${label}-${rand()}-${'0'.repeat(40)}`;
        const r = await node.cni('ADD', { containerId: id, netns: ns.path, args: `K8S_POD_NAMESPACE=team-${label};K8S_POD_NAME=pod-${label}` });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        pods.push({ id, ns });
      }
    } catch (err) {
      await node.cleanup();
      throw err;
    }
  });
  after(async () => {
    for (const p of pods) for (const v of [hostVethName(p.id, 'eth0')]) if (podnetHostVeths().includes(v)) await node.cni('DEL', { containerId: p.id, netns: p.ns.path }).catch(() => {});
    await node.cleanup();
  });

  test('endpoints in JSON carry the full container ID and every field, filtered by namespace', async () => {
    const r = await podnet(['endpoints', '--api-socket', node.socket, '-o', 'json', '--namespace', 'team-b']);
    assert.equal(r.code, 0, r.stderr);
    const eps = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.equal(eps.length, 1);
    assert.equal(eps[0]!['containerId'], pods[1]!.id);
    assert.equal(eps[0]!['podName'], 'pod-b');
    for (const k of ['state', 'problems', 'podNamespace', 'hostIfName', 'netns']) assert.ok(k in eps[0]!, k);
  });

  test('maps list shows the pinned maps as root', async () => {
    const r = await podnet(['maps', 'list', '--bpffs', node.bpffs, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const names = (JSON.parse(r.stdout) as Array<{ name: string }>).map((m) => m.name);
    for (const m of ['pn_endpoints', 'pn_ipam', 'pn_counters']) assert.ok(names.includes(m), `${m} in ${names.join(', ')}`);
  });

  test('maps list without root says it needs root, with the errno name and no stack', async () => {
    const r = await podnet(['maps', 'list', '--bpffs', node.bpffs], { asNobody: true });
    failsWith(r, new RegExp(`^podnet: list maps under ${node.bpffs}: (EACCES|EPERM): needs root`));
  });

  test('maps list on a missing directory fails instead of printing an empty table', async () => {
    const r = await podnet(['maps', 'list', '--bpffs', join(node.bpffs, 'nope')]);
    failsWith(r, /^podnet: list maps under \S+\/nope: ENOENT: no such directory/);
    assert.equal(r.code, 1);
  });

  test('maps dump names a program pin, a path off bpffs, a missing pin and a ring buffer for what they are', async () => {
    const progs = join(node.bpffs, 'progs');
    const gen = readdirSync(progs)[0]!;
    const prog = join(progs, gen, readdirSync(join(progs, gen))[0]!);
    failsWith(await podnet(['maps', 'dump', prog]), new RegExp(`^podnet: dump ${prog}: it is a pinned program, not a map`));
    const file = join(node.dir, 'not-a-pin');
    writeFileSync(file, 'x');
    failsWith(await podnet(['maps', 'dump', file]), /: not on a bpf filesystem, so not a pinned map/);
    failsWith(await podnet(['maps', 'dump', 'pn_nothing', '--bpffs', node.bpffs]), /pn_nothing: ENOENT: no such pin/);
    const events = await podnet(['maps', 'dump', 'pn_events', '--bpffs', node.bpffs]);
    failsWith(events, /pn_events is a ring buffer; it holds events in flight, not entries to dump/);
    assert.doesNotMatch(events.stderr, /podnet monitor/);
    const ok = await podnet(['maps', 'dump', 'pn_endpoints', '--bpffs', node.bpffs, '-o', 'json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { entries: unknown[] }).entries.length, 2);
  });

  test('cleanup refuses while the agent answers on its socket', async () => {
    const r = await podnet(['cleanup', '--dry-run', '--bpffs', node.bpffs, '--state-dir', node.stateDir, '--api-socket', node.socket]);
    failsWith(r, new RegExp(`^podnet: clean up: an agent answers on ${node.socket}; stop it first`));
    assert.ok(existsSync(node.bpffs));
  });

  test('cleanup --dry-run lists a stopped agent\'s leftovers and removes nothing; cleanup then removes them all', async () => {
    await node.stop();
    mkdirSync(cniConfDir, { recursive: true });
    mkdirSync(cniBinDir, { recursive: true });
    writeFileSync(join(cniConfDir, '10-podnet.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'k8s', plugins: [{ type: 'podnet' }, { type: 'portmap' }] }));
    writeFileSync(join(cniConfDir, '20-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'bridge' }] }));
    writeFileSync(join(cniBinDir, 'podnet'), '#!/bin/sh\n');
    writeFileSync(join(cniBinDir, 'bridge'), '#!/bin/sh\n');
    const veths = pods.map((p) => hostVethName(p.id, 'eth0'));
    for (const v of veths) assert.ok(podnetHostVeths().includes(v), `${v} is there before`);
    const args = ['cleanup', '--bpffs', node.bpffs, '--state-dir', node.stateDir, '--api-socket', node.socket, '--cni', '--cni-conf-dir', cniConfDir, '--cni-bin-dir', cniBinDir];

    const dry = await podnet([...args, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    for (const v of veths) assert.match(dry.stdout, new RegExp(`^would remove veth ${v}$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^would remove pin ${node.bpffs}/pn_endpoints$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^would remove directory ${node.bpffs}$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^would remove state-dir ${node.stateDir}$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^would remove cni-conf ${cniConfDir}/10-podnet.conflist$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^would remove cni-bin ${cniBinDir}/podnet$`, 'm'));
    assert.doesNotMatch(dry.stdout, /20-other|bridge/);
    for (const v of veths) assert.ok(podnetHostVeths().includes(v), `${v} survives the dry run`);
    assert.ok(existsSync(join(node.bpffs, 'pn_endpoints')) && existsSync(node.stateDir), 'the dry run removed nothing');

    const real = await podnet([...args, '-o', 'json']);
    assert.equal(real.code, 0, real.stderr);
    const report = JSON.parse(real.stdout) as { dryRun: boolean; removed: Array<{ kind: string; path: string }>; failed: unknown[] };
    assert.equal(report.dryRun, false);
    assert.deepEqual(report.failed, []);
    for (const v of veths) assert.equal(podnetHostVeths().includes(v), false, `${v} is gone`);
    assert.equal(existsSync(node.bpffs), false, 'every pin and the bpffs dir are gone');
    assert.equal(existsSync(node.stateDir), false, 'the state dir is gone');
    assert.equal(existsSync(join(cniConfDir, '10-podnet.conflist')), false);
    assert.equal(existsSync(join(cniBinDir, 'podnet')), false);
    assert.ok(existsSync(join(cniConfDir, '20-other.conflist')) && existsSync(join(cniBinDir, 'bridge')), 'other plugins stay');

    const again = await podnet(args);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'nothing to clean up\n');
  });
});
