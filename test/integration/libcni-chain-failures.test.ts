/**
 * The shipped conflist and chained plugins that fail, through libcni as a
 * runtime drives them: the default list works on a node that has only
 * podnet's entry point, and when a plugin chained after podnet fails an
 * ADD, the DEL the runtime sends for the list leaves nothing of the pod
 * behind (address, veth, routes, endpoint, libcni cache).
 * Traffic: none; namespaces are made here and removed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, TestNode, testCidr } from '../lib/agent-fixture.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';
import {
  Netns, buildCniDriver, cniAdd, cniDriver, hostLinks, natChains, randomSuffix, referencePluginDir, removePortmapChains, runOk, sleep, writeConflist,
  type CniDriverOptions,
} from '../e2e/tools/index.js';

describe('the shipped conflist and failing chained plugins through libcni', () => {
  const node = new TestNode(testCidr(251));
  let work = '';
  let cacheDir = '';
  let pluginDir = '';
  let natBefore = new Set<string>();
  const namespaces: Netns[] = [];

  before(async () => {
    await buildCniDriver();
    pluginDir = await referencePluginDir();
    natBefore = await natChains();
    work = await mkdtemp(join(tmpdir(), 'podnet-chainfail-'));
    cacheDir = join(work, 'cache');
    await node.start({ reconcileIntervalMs: 0 });
  });
  after(async () => {
    for (const ns of namespaces) await ns.close().catch(() => undefined);
    // portmap never removes its shared CNI-HOSTPORT-* chains.
    await removePortmapChains(natBefore).catch(() => undefined);
    await node.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const podnetConf = (): Record<string, unknown> => ({ type: 'podnet', agentSocket: node.socket, stateDir: node.stateDir });

  function opts(conflist: string, id: string, ns: Netns, cniPath: string[], capabilityArgs?: Record<string, unknown>): CniDriverOptions {
    return {
      conflist, cniPath, cacheDir, containerId: id, netns: ns.path, ifname: 'eth0',
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'chain', K8S_POD_NAME: id },
      ...(capabilityArgs ? { capabilityArgs } : {}),
    };
  }

  /** Everything of one attachment that podnet, the host or libcni still holds. */
  async function leftovers(id: string, ns: Netns, net: string): Promise<string[]> {
    const left: string[] = [];
    const host = hostVethName(id, 'eth0');
    if ((await hostLinks()).has(host)) left.push(`host veth ${host}`);
    if ((await ns.exec('ip', ['link', 'show', 'eth0'])).code === 0) left.push('eth0 in the pod');
    const ip = node.agent!.ipam.lookup(id, 'eth0');
    if (ip !== undefined) left.push(`allocation ${ip}`);
    if (node.agent!.endpointInfos().some((e) => e.containerId === id)) left.push('endpoint');
    const routes = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    for (const r of routes.stdout.split('\n')) if (r.includes(`dev ${host} `)) left.push(`route ${r.trim()}`);
    const cached = (await readdir(join(cacheDir, 'results')).catch(() => [] as string[])).filter((f) => f === `${net}-${id}-eth0`);
    for (const f of cached) left.push(`libcni cache ${f}`);
    return left;
  }

  async function gone(id: string, ns: Netns, net: string): Promise<void> {
    let left: string[] = [];
    const deadline = Date.now() + 5_000;
    do {
      left = await leftovers(id, ns, net);
      if (left.length === 0) return;
      await sleep(50);
    } while (Date.now() < deadline);
    assert.deepEqual(left, [], `nothing of ${id} is left within 5 s of its DEL`);
  }

  test('the shipped 10-podnet.conflist adds at CNI 1.1.0 (picked from its cniVersions), checks and deletes a pod with only podnet in CNI_PATH', async () => {
    const shipped = JSON.parse(await readFile(join(REPO, 'deploy/10-podnet.conflist'), 'utf8')) as { name: string; plugins: Array<Record<string, unknown>> };
    shipped.plugins[0] = { ...shipped.plugins[0], agentSocket: node.socket, stateDir: node.stateDir };
    const net = `pncf-${randomSuffix()}`;
    const conflist = await writeConflist(work, { ...shipped, name: net });
    const onlyPodnet = join(work, 'bin');
    await runOk('mkdir', ['-p', onlyPodnet]);
    await copyFile(join(node.cniBin, 'podnet'), join(onlyPodnet, 'podnet'));
    await runOk('chmod', ['0755', join(onlyPodnet, 'podnet')]);
    const ns = await Netns.create('pncf');
    namespaces.push(ns);
    const id = `cf-${randomSuffix(4)}`;
    const { result } = await cniAdd(opts(conflist, id, ns, [onlyPodnet]));
    // libcni >= 1.2 runs the list at the highest of cniVersions it speaks.
    assert.equal(result.cniVersion, '1.1.0');
    const status = await cniDriver('status', opts(conflist, id, ns, [onlyPodnet]));
    assert.deepEqual(status.ok ? status.output : status.error, { pluginsAsked: true }, 'STATUS reaches podnet: the list runs at 1.1.0');
    const check = await cniDriver('check', opts(conflist, id, ns, [onlyPodnet]));
    assert.equal(check.ok, true, check.ok ? '' : check.error.msg);
    const del = await cniDriver('del', opts(conflist, id, ns, [onlyPodnet]));
    assert.equal(del.ok, true, del.ok ? '' : del.error.msg);
    await gone(id, ns, net);
  });

  test('the chained example conflist runs at CNI 1.1.0 through podnet and the reference plugins: ADD, CHECK, STATUS, DEL', async () => {
    const example = JSON.parse(await readFile(join(REPO, 'deploy/examples/10-podnet-chained.conflist'), 'utf8')) as { name: string; plugins: Array<Record<string, unknown>> };
    example.plugins[0] = { ...example.plugins[0], agentSocket: node.socket, stateDir: node.stateDir };
    const net = `pnce-${randomSuffix()}`;
    const conflist = await writeConflist(work, { ...example, name: net });
    const ns = await Netns.create('pnce');
    namespaces.push(ns);
    const id = `ce-${randomSuffix(4)}`;
    const hostPort = 20_000 + Math.floor(Math.random() * 20_000);
    const caps = { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }], bandwidth: { ingressRate: 200_000_000, ingressBurst: 4_000_000 } };
    const path = [node.cniBin, pluginDir];
    const { result } = await cniAdd(opts(conflist, id, ns, path, caps));
    let deleted = false;
    try {
      assert.equal(result.cniVersion, '1.1.0');
      const check = await cniDriver('check', opts(conflist, id, ns, path, caps));
      assert.equal(check.ok, true, check.ok ? '' : check.error.msg);
      const status = await cniDriver('status', opts(conflist, id, ns, path));
      assert.deepEqual(status.ok ? status.output : status.error, { pluginsAsked: true });
      const del = await cniDriver('del', opts(conflist, id, ns, path, caps));
      assert.equal(del.ok, true, del.ok ? '' : del.error.msg);
      deleted = true;
    } finally {
      if (!deleted) await cniDriver('del', opts(conflist, id, ns, path, caps)).catch(() => undefined);
    }
    await gone(id, ns, net);
    const nat = await runOk('iptables', ['-t', 'nat', '-S']);
    assert.doesNotMatch(nat.stdout, new RegExp(`--dport ${hostPort} `), 'portmap removed its DNAT rule');
  });

  const failing: Array<{ what: string; plugin: Record<string, unknown>; caps?: Record<string, unknown>; error: RegExp }> = [
    {
      what: 'tuning with a sysctl the kernel does not have',
      plugin: { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.no_such_knob': '1' } },
      error: /no_such_knob|no such file/i,
    },
    {
      // bandwidth puts an egress limit on an `ingress` qdisc, which cannot
      // coexist with the clsact qdisc of podnet's default attach mode.
      what: 'bandwidth with an egress limit in clsact mode',
      plugin: { type: 'bandwidth', capabilities: { bandwidth: true } },
      caps: { bandwidth: { egressRate: 100_000_000, egressBurst: 1_000_000 } },
      error: /ingress qdisc|file exists/i,
    },
  ];
  for (const f of failing) {
    test(`a failed ADD with ${f.what} chained after podnet leaves nothing once the runtime DELs the list`, async () => {
      const net = `pncx-${randomSuffix()}`;
      const conflist = await writeConflist(work, { cniVersion: '1.1.0', name: net, plugins: [podnetConf(), f.plugin] });
      const ns = await Netns.create('pncx');
      namespaces.push(ns);
      const id = `cx-${randomSuffix(4)}`;
      const path = [node.cniBin, pluginDir];
      const add = await cniDriver('add', opts(conflist, id, ns, path, f.caps));
      assert.equal(add.ok, false, 'the chained plugin fails the ADD');
      if (!add.ok) assert.match(add.error.msg + (add.error.details ?? ''), f.error);
      // What runtimes do after a failed ADD: DEL the whole list.
      const del = await cniDriver('del', opts(conflist, id, ns, path, f.caps));
      assert.equal(del.ok, true, del.ok ? '' : `DEL: ${del.error.msg}`);
      await gone(id, ns, net);
    });
  }
});
