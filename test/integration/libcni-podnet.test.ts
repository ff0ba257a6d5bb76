/**
 * podnet driven through libcni exactly as a container runtime drives it:
 * build/cnidriver (libcni in module mode, the pinned version) runs a CNI
 * 1.1.0 conflist podnet -> portmap -> bandwidth -> tuning, with the
 * reference plugins built from their modules, against a private agent in
 * this process. Proves that the plugins chained after podnet find what
 * they need in its result (host veth, pod address), that traffic between
 * the pods and to the host really flows through podnet's BPF programs, that
 * CHECK, DEL and libcni's GC leave nothing behind, and that libcni's STATUS
 * reaches the agent.
 * Traffic flows only between namespaces made here, the host and loopback.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, podnetHostVeths, rand, testCidr } from '../lib/agent-fixture.js';
import { CountersMap, type EndpointCounter } from '../../agent/src/maps/index.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';
import {
  Netns,
  buildCniDriver,
  cniAdd,
  cniDriver,
  freeSubnet24,
  hostLinks,
  natChains,
  natRulesMatching,
  randomSuffix,
  referencePluginDir,
  removePortmapChains,
  resultIPv4,
  run,
  runOk,
  sleep,
  writeConflist,
  type Background,
  type CniDriverOptions,
  type CniGcSummary,
  type CniResult,
  type CniStatusSummary,
} from '../e2e/tools/index.js';

/**
 * The bandwidth capability: an ingress limit (tbf on the host veth), high
 * enough that pings and a short TCP run are never throttled. No egress
 * limit: bandwidth puts it on an `ingress` qdisc, which cannot coexist
 * with the clsact qdisc podnet's default attach mode uses (ADD fails with
 * "create ingress qdisc: file exists").
 */
const BANDWIDTH = { ingressRate: 200_000_000, ingressBurst: 4_000_000 };
/** The sysctl tuning writes inside the pod; the kernel default is 0. */
const TUNING_SYSCTL = 'net.ipv4.conf.eth0.arp_announce';

/** One pod added through libcni. */
interface Pod {
  readonly id: string;
  readonly ns: Netns;
  readonly conflist: string;
  readonly capabilityArgs: Readonly<Record<string, unknown>> | undefined;
  readonly result: CniResult;
  readonly ip: string;
  readonly hostVeth: string;
  deleted: boolean;
}

/** Packets and bytes of one endpoint in one direction, verdict "pass" only. */
function passed(rows: readonly EndpointCounter[], endpointId: number, direction: 'ingress' | 'egress'): { packets: bigint; bytes: bigint } {
  let packets = 0n;
  let bytes = 0n;
  for (const r of rows) {
    if (r.endpointId === endpointId && r.direction === direction && r.reason === 0) {
      packets += r.packets;
      bytes += r.bytes;
    }
  }
  return { packets, bytes };
}

/** nat rules that mention `ip` as a whole address (10.0.0.1 does not match 10.0.0.12). */
async function natRulesFor(ip: string): Promise<string[]> {
  const re = new RegExp(`(^|[^\\d.])${ip.replaceAll('.', '\\.')}(?![\\d])`);
  return (await natRulesMatching(ip)).filter((r) => re.test(r));
}

/** Connects from this process to 127.0.0.1:port and resolves with everything the server sent before closing. */
function readFromLoopback(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`read from 127.0.0.1:${port}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('data', (b: Buffer) => chunks.push(b));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

describe('podnet through libcni with portmap, bandwidth and tuning chained after it', () => {
  const node = new TestNode(testCidr(236));
  const cidrPrefix = node.podCidr.slice(0, node.podCidr.lastIndexOf('.') + 1);
  const suffix = randomSuffix();
  const chainNet = `pnlp-chain-${suffix}`;
  const hostIf = `pnlph${rand(3)}`;
  let hostAddr = '';
  let work = '';
  let cacheDir = '';
  let chainConflist = '';
  let pluginDir = '';
  let natBefore = new Set<string>();
  let hostIfMade = false;
  const namespaces: Netns[] = [];
  const pods: Pod[] = [];
  const background: Background[] = [];
  const usedPorts = new Set<number>();
  let a: Pod | undefined;
  let b: Pod | undefined;

  /** A host port nobody else in this file uses. */
  function hostPort(): number {
    for (;;) {
      const p = 20_000 + Math.floor(Math.random() * 20_000);
      if (!usedPorts.has(p)) {
        usedPorts.add(p);
        return p;
      }
    }
  }

  function capsFor(port: number): Record<string, unknown> {
    return { portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }], bandwidth: BANDWIDTH };
  }

  function opts(conflist: string, id: string, ns: Netns | undefined, capabilityArgs?: Readonly<Record<string, unknown>>, extra: Partial<CniDriverOptions> = {}): CniDriverOptions {
    return {
      conflist,
      cniPath: [node.cniBin, pluginDir],
      cacheDir,
      containerId: id,
      ...(ns ? { netns: ns.path } : {}),
      ifname: 'eth0',
      // Runtimes add IgnoreUnknown so that plugins with strict CNI_ARGS parsing (tuning) accept the K8S_* keys.
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'libcni', K8S_POD_NAME: id },
      ...(capabilityArgs ? { capabilityArgs } : {}),
      ...extra,
    };
  }

  async function netns(): Promise<Netns> {
    const ns = await Netns.create('pnlp');
    namespaces.push(ns);
    return ns;
  }

  /** ADD through libcni that must succeed; the pod is remembered for DEL in `after`. */
  async function addPod(conflist: string, capabilityArgs?: Readonly<Record<string, unknown>>): Promise<Pod> {
    const ns = await netns();
    const id = `lp-${randomSuffix(4)}`;
    const { result } = await cniAdd(opts(conflist, id, ns, capabilityArgs));
    const pod: Pod = { id, ns, conflist, capabilityArgs, result, ip: resultIPv4(result), hostVeth: hostVethName(id, 'eth0'), deleted: false };
    pods.push(pod);
    return pod;
  }

  /** DEL through libcni with the same capability arguments as the ADD, as runtimes do. */
  async function delPod(pod: Pod): Promise<void> {
    const call = await cniDriver('del', opts(pod.conflist, pod.id, pod.ns, pod.capabilityArgs));
    assert.equal(call.ok, true, call.ok ? '' : `DEL ${pod.id}: ${call.error.code} ${call.error.msg}`);
    pod.deleted = true;
  }

  function endpointId(pod: Pod): number {
    const info = node.agent!.endpointInfos().find((e) => e.containerId === pod.id);
    assert.ok(info, `podnet has an endpoint for ${pod.id}`);
    return info.endpointId;
  }

  function counters(): EndpointCounter[] {
    return new CountersMap(node.agent!.datapath.maps.counters).readAll();
  }

  /** What podnet and the chained plugins still hold for a pod; empty once it is fully gone. */
  async function leftovers(pod: Pod, net: string): Promise<string[]> {
    const left: string[] = [];
    if ((await hostLinks()).has(pod.hostVeth)) left.push(`host veth ${pod.hostVeth}`);
    if ((await pod.ns.exec('ip', ['link', 'show', 'eth0'])).code === 0) left.push('eth0 in the pod');
    const ip = node.agent!.ipam.lookup(pod.id, 'eth0');
    if (ip !== undefined) left.push(`allocation ${ip}`);
    if (node.agent!.ipam.allocations().some((x) => x.ip === pod.ip)) left.push(`allocation of ${pod.ip} to someone`);
    if (node.agent!.endpointInfos().some((e) => e.containerId === pod.id)) left.push('endpoint');
    for (const rule of await natRulesFor(pod.ip)) left.push(`nat rule ${rule}`);
    const routes = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    for (const r of routes.stdout.split('\n')) if (r.includes(`${pod.ip} `) || r.includes(`dev ${pod.hostVeth} `)) left.push(`route ${r.trim()}`);
    for (const i of pod.result.interfaces ?? []) {
      if (i.sandbox === undefined && i.name !== pod.hostVeth && (await hostLinks()).has(i.name)) left.push(`host interface ${i.name}`);
    }
    const cached = (await readdir(join(cacheDir, 'results')).catch(() => [] as string[])).filter((f) => f === `${net}-${pod.id}-eth0`);
    for (const f of cached) left.push(`libcni cache ${f}`);
    return left;
  }

  /**
   * Waits until nothing of `pod` is left. podnet answers DEL once no traffic
   * can reach the pod and releases the veth and address right after, so the
   * last traces may outlive the CNI call by a few milliseconds.
   */
  async function gone(pod: Pod, net: string): Promise<void> {
    let left: string[] = [];
    const deadline = Date.now() + 5_000;
    do {
      left = await leftovers(pod, net);
      if (left.length === 0) return;
      await sleep(50);
    } while (Date.now() < deadline);
    assert.deepEqual(left, [], `${pod.id} is gone within 5 s of its DEL`);
  }

  before(async () => {
    try {
      await buildCniDriver();
      pluginDir = await referencePluginDir();
      natBefore = await natChains();
      work = await mkdtemp(join(tmpdir(), 'podnet-libcni-'));
      cacheDir = join(work, 'cache');
      const podnet = { type: 'podnet', agentSocket: node.socket, stateDir: node.stateDir };
      chainConflist = await writeConflist(work, {
        cniVersion: '1.1.0',
        name: chainNet,
        plugins: [
          podnet,
          { type: 'portmap', capabilities: { portMappings: true }, snat: true },
          { type: 'bandwidth', capabilities: { bandwidth: true } },
          { type: 'tuning', sysctl: { [TUNING_SYSCTL]: '2' } },
        ],
      });

      await node.start();

      // A host address of this test's own on a host-only veth pair: this
      // kernel has no dummy driver.
      hostAddr = `${(await freeSubnet24('10.254')).prefix}.1`;
      await runOk('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', `${hostIf}p`]);
      hostIfMade = true;
      await runOk('ip', ['addr', 'add', `${hostAddr}/32`, 'dev', hostIf]);
      await runOk('ip', ['link', 'set', hostIf, 'up']);

      a = await addPod(chainConflist, capsFor(hostPort()));
      b = await addPod(chainConflist, capsFor(hostPort()));
    } catch (e) {
      await cleanup();
      throw e;
    }
  });

  async function cleanup(): Promise<void> {
    for (const p of background) await p.stop('SIGKILL').catch(() => undefined);
    if (node.agent) {
      for (const p of pods) if (!p.deleted) await cniDriver('del', opts(p.conflist, p.id, p.ns, p.capabilityArgs)).catch(() => undefined);
    }
    for (const ns of namespaces) await ns.close().catch(() => undefined);
    if (hostIfMade) await run('ip', ['link', 'del', hostIf]);
    await removePortmapChains(natBefore).catch(() => undefined);
    await node.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  }

  after(cleanup);

  test('ADD through libcni returns podnet\'s host veth, pod interface and /32 in a 1.1.0 result', () => {
    for (const pod of [a!, b!]) {
      const r = pod.result;
      assert.equal(r.cniVersion, '1.1.0');
      const ifs = r.interfaces ?? [];
      assert.equal(ifs[0]?.name, pod.hostVeth, 'podnet\'s host veth comes first');
      assert.match(pod.hostVeth, /^pn[0-9a-f]{12}$/);
      assert.equal(ifs[0]?.sandbox, undefined);
      assert.equal(ifs[1]?.name, 'eth0');
      assert.equal(ifs[1]?.sandbox, pod.ns.path);
      assert.ok(pod.ip.startsWith(cidrPrefix), `${pod.ip} is inside ${node.podCidr}`);
      assert.deepEqual(r.ips, [{ address: `${pod.ip}/32`, gateway: '169.254.1.1', interface: 1 }]);
      assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
      assert.equal(ifs.length, 2, `only podnet's interfaces: ${JSON.stringify(ifs)}`);

      const ep = node.agent!.endpointInfos().find((e) => e.containerId === pod.id);
      assert.equal(ep?.ip, pod.ip);
      assert.equal(ep?.hostIfName, pod.hostVeth);
      assert.equal(ep?.podName, pod.id, 'CNI_ARGS passed through libcni reach the agent');
      assert.equal(node.agent!.ipam.lookup(pod.id, 'eth0'), pod.ip);
    }
    assert.notEqual(a!.ip, b!.ip);
  });

  test('tuning sets its sysctl inside the pod on the interface podnet made', async () => {
    for (const pod of [a!, b!]) {
      const path = `/proc/sys/${TUNING_SYSCTL.replaceAll('.', '/')}`;
      assert.equal((await pod.ns.execOk('cat', [path])).stdout.trim(), '2');
      // The namespace default is untouched: the value is tuning's, not inherited.
      assert.equal((await pod.ns.execOk('cat', ['/proc/sys/net/ipv4/conf/default/arp_announce'])).stdout.trim(), '0');
    }
  });

  test('bandwidth puts its rate limit on the host veth named in the result', async () => {
    for (const pod of [a!, b!]) {
      const qdiscs = (await runOk('tc', ['qdisc', 'show', 'dev', pod.hostVeth])).stdout;
      assert.match(qdiscs, /qdisc tbf \S+ root .*rate 200Mbit/, qdiscs);
      // podnet's programs stay attached beside it.
      const ep = node.agent!.endpointInfos().find((e) => e.containerId === pod.id);
      assert.ok(ep, `an endpoint for ${pod.hostVeth}`);
      assert.deepEqual(node.agent!.datapath.health(pod.hostVeth, ep.hostIfIndex), [], `podnet's programs are attached to ${pod.hostVeth}`);
    }
  });

  test('portmap installs a DNAT chain for each pod address', async () => {
    const chains = await natChains();
    for (const pod of [a!, b!]) {
      const port = (pod.capabilityArgs?.['portMappings'] as Array<{ hostPort: number }>)[0]!.hostPort;
      const rules = await natRulesMatching(`--dport ${port} -j DNAT --to-destination ${pod.ip}:80`);
      assert.equal(rules.length, 1, rules.join('\n'));
      const chain = rules[0]!.match(/^-A (\S+) /)?.[1] ?? '';
      assert.match(chain, /^CNI-DN-/);
      assert.ok(chains.has(chain), `${chain} exists in the nat table`);
    }
  });

  test('a connection to the mapped host port on loopback reaches the pod through portmap\'s DNAT and SNAT', async () => {
    const pod = b!;
    const port = (pod.capabilityArgs?.['portMappings'] as Array<{ hostPort: number }>)[0]!.hostPort;
    const token = `podnet-${randomSuffix(6)}`;
    // One connection, then exit: node is the only server at hand (busybox-free).
    const script = `const srv=require('net').createServer((s)=>{s.end(${JSON.stringify(token)});srv.close()}).listen(80,'${pod.ip}',()=>console.log('listening'))`;
    const server = pod.ns.spawn('node', ['-e', script], { timeoutMs: 30_000 });
    background.push(server);
    await server.waitForOutput(/listening/, 10_000);
    assert.equal(await readFromLoopback(port, 10_000), token);
    const res = await server.exited;
    assert.equal(res.code, 0, res.stderr);
  });

  test('pod to pod ping and TCP flow through podnet\'s BPF programs, counted on both endpoints', async () => {
    const [pa, pb] = [a!, b!];
    const [ida, idb] = [endpointId(pa), endpointId(pb)];
    const before = counters();
    const count = 5;
    const ping = await pa.ns.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '2', pb.ip], { timeoutMs: 20_000 });
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, new RegExp(`${count} packets transmitted, ${count} (packets )?received`));
    const afterPing = counters();
    // Requests leave a and enter b through from_pod's redirect; replies the other way.
    assert.ok(passed(afterPing, ida, 'egress').packets - passed(before, ida, 'egress').packets >= BigInt(count));
    assert.ok(passed(afterPing, idb, 'ingress').packets - passed(before, idb, 'ingress').packets >= BigInt(count));
    assert.ok(passed(afterPing, idb, 'egress').packets - passed(before, idb, 'egress').packets >= BigInt(count));
    assert.ok(passed(afterPing, ida, 'ingress').packets - passed(before, ida, 'ingress').packets >= BigInt(count));

    const port = String(5201 + Math.floor(Math.random() * 1000));
    const server = pb.ns.spawn('iperf3', ['-s', '-1', '--forceflush', '-B', pb.ip, '-p', port], { timeoutMs: 30_000 });
    background.push(server);
    await server.waitForOutput(/Server listening/, 10_000);
    const client = await pa.ns.execOk('iperf3', ['-c', pb.ip, '-p', port, '-t', '1', '-J'], { timeoutMs: 20_000 });
    await server.exited;
    const report = JSON.parse(client.stdout) as { end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
    const sent = BigInt(report.end.sum_sent.bytes);
    const received = BigInt(report.end.sum_received.bytes);
    assert.ok(sent > 0n && received > 0n, `iperf3 moved data: ${sent} sent, ${received} received`);
    const afterTcp = counters();
    // Counted bytes include headers, so they cover at least the payload iperf3 reports.
    const aOut = passed(afterTcp, ida, 'egress').bytes - passed(afterPing, ida, 'egress').bytes;
    const bIn = passed(afterTcp, idb, 'ingress').bytes - passed(afterPing, idb, 'ingress').bytes;
    // Compared with what b received, not what a's iperf3 wrote: when the test
    // ends, the data still in a's socket buffer may never be sent (iperf3
    // closes the stream), so "sent" can exceed what crossed the wire.
    assert.ok(aOut >= received, `a's egress counter grew by ${aOut} bytes, b's iperf3 received ${received} (a's wrote ${sent})`);
    assert.ok(bIn >= received, `b's ingress counter grew by ${bIn} bytes, iperf3 received ${received}`);
    assert.ok(passed(afterTcp, idb, 'egress').packets > passed(afterPing, idb, 'egress').packets, 'b\'s ACKs were counted');
  });

  test('pod to host traffic flows to a host address and is counted both ways', async () => {
    const pod = a!;
    const id = endpointId(pod);
    const before = counters();
    const count = 4;
    const ping = await pod.ns.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '2', hostAddr], { timeoutMs: 20_000 });
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const after = counters();
    // Requests pass from_pod to the host stack; replies pass to_pod on the host veth's egress.
    assert.ok(passed(after, id, 'egress').packets - passed(before, id, 'egress').packets >= BigInt(count));
    assert.ok(passed(after, id, 'ingress').packets - passed(before, id, 'ingress').packets >= BigInt(count));
  });

  // portmap 1.1.1 (Debian 12) failed CHECK on every IPv4-only pod
  // (containernetworking/plugins#819); the pinned release checks the whole chain.
  test('CHECK through libcni passes on the whole chain, portmap included, and fails once the pod\'s default route is gone', async () => {
    const caps = capsFor(hostPort());
    const pod = await addPod(chainConflist, caps);
    try {
      const ok = await cniDriver('check', opts(chainConflist, pod.id, pod.ns, caps));
      assert.equal(ok.ok, true, ok.ok ? '' : `${ok.error.code} ${ok.error.msg}`);

      await pod.ns.execOk('ip', ['route', 'del', 'default']);
      const broken = await cniDriver('check', opts(chainConflist, pod.id, pod.ns, caps));
      assert.equal(broken.ok, false, 'CHECK must fail without the default route');
      if (!broken.ok) {
        assert.ok(broken.error.code > 0);
        assert.match(broken.error.msg, /route 0\.0\.0\.0\/0 via 169\.254\.1\.1 is missing/);
      }
    } finally {
      await delPod(pod);
    }
    await gone(pod, chainNet);
  });

  test('DEL through libcni removes the veth, allocation, endpoint, port mapping and cache entry', async () => {
    const pod = await addPod(chainConflist, capsFor(hostPort()));
    const hostSide = (pod.result.interfaces ?? []).filter((i) => i.sandbox === undefined).map((i) => i.name);
    assert.deepEqual(hostSide, [pod.hostVeth]);
    assert.ok((await natRulesMatching(`${pod.ip}:80`)).length > 0, 'the port mapping exists before DEL');
    const dnChain = (await natRulesMatching(`--to-destination ${pod.ip}:80`))[0]?.match(/^-A (CNI-DN-\S+) /)?.[1];
    assert.ok(dnChain, 'portmap made a DNAT chain for the pod');
    const cacheFile = `${chainNet}-${pod.id}-eth0`;
    assert.ok((await readdir(join(cacheDir, 'results'))).includes(cacheFile), 'libcni cached the result');

    const del = await cniDriver('del', opts(chainConflist, pod.id, pod.ns, pod.capabilityArgs));
    assert.equal(del.ok, true, del.ok ? '' : `${del.error.code} ${del.error.msg}`);
    pod.deleted = true;
    assert.equal(del.ok && del.output, undefined, 'DEL prints nothing');

    await gone(pod, chainNet);
    const links = await hostLinks();
    assert.deepEqual(hostSide.filter((n) => links.has(n)), []);
    assert.ok(!podnetHostVeths().includes(pod.hostVeth));
    assert.deepEqual(await natRulesFor(pod.ip), [], 'no nat rule mentions the pod');
    assert.equal((await natChains()).has(dnChain), false, `${dnChain} is gone`);

    const again = await cniDriver('del', opts(chainConflist, pod.id, pod.ns, pod.capabilityArgs));
    assert.equal(again.ok, true, again.ok ? '' : `a second DEL: ${again.error.msg}`);
  });

  test('GC through libcni deletes exactly the attachment missing from the valid list and sends GC to podnet', async () => {
    const keep = await addPod(chainConflist, capsFor(hostPort()));
    const stale = await addPod(chainConflist, capsFor(hostPort()));
    const keepsBefore = [a!, b!, keep].map((p) => ({ id: p.id, ip: node.agent!.ipam.lookup(p.id, 'eth0') }));

    // Every live attachment of the network is valid except the stale one,
    // whose namespace the runtime forgot but did not delete.
    const valid = [a!, b!, keep].map((p) => ({ containerID: p.id, ifname: 'eth0' }));
    const gc = await cniDriver('gc', { conflist: chainConflist, cniPath: [node.cniBin, pluginDir], cacheDir, valid });
    assert.equal(gc.ok, true, gc.ok ? '' : `${gc.error.code} ${gc.error.msg}`);
    const summary = (gc.ok ? gc.output : undefined) as CniGcSummary;
    assert.deepEqual(summary.staleDeleted, [{ containerID: stale.id, ifname: 'eth0' }]);
    assert.equal(summary.pluginsGC, true, 'a 1.1.0 list gets plugin GC');
    stale.deleted = true;

    await gone(stale, chainNet);
    for (const k of keepsBefore) assert.equal(node.agent!.ipam.lookup(k.id, 'eth0'), k.ip, `${k.id} keeps ${k.ip}`);
    assert.ok((await hostLinks()).has(keep.hostVeth));
    assert.ok(node.agent!.endpointInfos().some((e) => e.containerId === keep.id));
    assert.equal((await natRulesMatching(`--to-destination ${keep.ip}:80`)).length, 1, 'the kept pod keeps its port mapping');
    assert.ok((await readdir(join(cacheDir, 'results'))).includes(`${chainNet}-${keep.id}-eth0`));
    const ping = await keep.ns.exec('ping', ['-c', '1', '-W', '2', a!.ip], { timeoutMs: 10_000 });
    assert.equal(ping.code, 0, `the kept pod still reaches ${a!.ip}: ${ping.stdout}`);

    await delPod(keep);
  });

  test('GC through libcni releases an attachment libcni no longer has cached: podnet\'s own GC sees it is not valid', async () => {
    const lost = await addPod(chainConflist, capsFor(hostPort()));
    // A runtime that lost its cache (and the sandbox) cannot DEL the pod;
    // only the plugin GC of a 1.1.0 list can still release it.
    await rm(join(cacheDir, 'results', `${chainNet}-${lost.id}-eth0`));
    const valid = [a!, b!].map((p) => ({ containerID: p.id, ifname: 'eth0' }));
    const gc = await cniDriver('gc', { conflist: chainConflist, cniPath: [node.cniBin, pluginDir], cacheDir, valid });
    assert.equal(gc.ok, true, gc.ok ? '' : `${gc.error.code} ${gc.error.msg}`);
    assert.deepEqual(gc.ok ? gc.output : undefined, { staleDeleted: [], pluginsGC: true }, 'libcni had nothing cached to DEL');
    let held: string | undefined = lost.ip;
    const deadline = Date.now() + 5_000;
    while (held !== undefined && Date.now() < deadline) {
      held = node.agent!.ipam.lookup(lost.id, 'eth0');
      if (held !== undefined) await sleep(50);
    }
    assert.equal(held, undefined, `podnet released ${lost.ip} on GC`);
    for (const p of [a!, b!]) assert.equal(node.agent!.ipam.lookup(p.id, 'eth0'), p.ip, `${p.id} keeps ${p.ip}`);
    // portmap has no GC: its rules for the lost pod go with a DEL, as a runtime would still send one.
    await delPod(lost);
    await gone(lost, chainNet);
  });

  test('STATUS through libcni asks podnet, which answers for its agent, and reports an agent that is not there as code 50', async () => {
    const ok = await cniDriver('status', { conflist: chainConflist, cniPath: [node.cniBin, pluginDir], cacheDir });
    assert.deepEqual(ok.ok ? (ok.output as CniStatusSummary) : ok.error, { pluginsAsked: true });

    const noAgent = await writeConflist(work, {
      cniVersion: '1.1.0',
      name: `pnlp-noagent-${suffix}`,
      plugins: [{ type: 'podnet', agentSocket: join(work, 'no-agent.sock'), stateDir: node.stateDir }, { type: 'tuning' }],
    });
    const down = await cniDriver('status', { conflist: noAgent, cniPath: [node.cniBin, pluginDir], cacheDir });
    assert.equal(down.ok, false, 'STATUS fails without an agent');
    if (!down.ok) {
      assert.equal(down.error.code, 50, `code 50 (not ready): ${down.error.msg}`);
      assert.match(down.error.msg, /no-agent\.sock/);
    }
  });

  test('DEL of the remaining pods through libcni leaves podnet, the host and the cache clean', async () => {
    for (const pod of [a!, b!]) await delPod(pod);
    for (const pod of pods) await gone(pod, chainNet);
    assert.deepEqual(node.agent!.endpointInfos(), []);
    assert.deepEqual(node.agent!.ipam.allocations(), []);
    const ours = new Set(pods.map((p) => p.hostVeth));
    assert.deepEqual(podnetHostVeths().filter((v) => ours.has(v)), []);
    assert.deepEqual(await readdir(join(cacheDir, 'results')).catch(() => [] as string[]), [], 'libcni\'s cache holds no attachment');
    const routes = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    assert.deepEqual(routes.stdout.split('\n').filter((l) => l.includes(cidrPrefix)), []);
  });
});
