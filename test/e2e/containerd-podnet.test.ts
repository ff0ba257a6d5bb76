/**
 * podnet under containerd: a private containerd runs the hand-built busybox
 * image with `ctr run --rm --cni`, so go-cni (the library containerd's CRI
 * uses for kubelet) execs the installed podnet entry point from
 * /opt/cni/bin with the conflist from /etc/cni/net.d, chained with the
 * reference tuning plugin. A private agent in this process serves it.
 * Proves that containers get podnet addresses, reach each other and the
 * host through podnet's BPF programs, and that the DEL go-cni sends when a
 * foreground `--rm` run ends leaves nothing behind. Needs root.
 * Traffic flows only between the containers made here and the host.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TestNode, podnetHostVeths, rand, testCidr } from '../lib/agent-fixture.js';
import { CountersMap, type EndpointCounter } from '../../agent/src/maps/index.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';
import {
  BUSYBOX_IMAGE,
  PrivateContainerd,
  REPO_ROOT,
  buildBusyboxImage,
  describeCniDirs,
  freeSubnet24,
  hostLinks,
  installCniPaths,
  randomSuffix,
  referencePluginDir,
  run,
  runOk,
  sleep,
  waitFor,
  type Background,
  type InstalledCniPaths,
} from './tools/index.js';

const SYSTEM_CNI_CACHE = '/var/lib/cni';
/** The sysctl tuning sets inside each container; the kernel default is 0. */
const TUNING_SYSCTL = 'net.ipv4.conf.eth0.arp_announce';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** go-cni's cache entries (always under /var/lib/cni) for one CNI container ID: its network's and cni-loopback's. */
async function cacheEntries(cniContainerId: string): Promise<string[]> {
  const files = await readdir(join(SYSTEM_CNI_CACHE, 'results')).catch(() => [] as string[]);
  return files.filter((f) => f.includes(`-${cniContainerId}-`));
}

/** Packets of one endpoint in one direction with verdict "pass". */
function passedPackets(rows: readonly EndpointCounter[], endpointId: number, direction: 'ingress' | 'egress'): bigint {
  return rows.filter((r) => r.endpointId === endpointId && r.direction === direction && r.reason === 0).reduce((s, r) => s + r.packets, 0n);
}

/** One running `ctr run --rm --cni` container. */
interface Container {
  readonly id: string;
  /** CNI_CONTAINERID as ctr passes it: `<namespace>-<id>`. */
  readonly cniId: string;
  readonly proc: Background;
  readonly ip: string;
  readonly hostVeth: string;
}

describe('podnet as the CNI plugin of containerd (ctr run --cni)', () => {
  const node = new TestNode(testCidr(237));
  const cidrPrefix = node.podCidr.slice(0, node.podCidr.lastIndexOf('.') + 1);
  const network = `pnctd-podnet-${randomSuffix()}`;
  const hostIf = `pncth${rand(3)}`;
  let hostAddr = '';
  let hostIfMade = false;
  let ctd: PrivateContainerd | undefined;
  let paths: InstalledCniPaths | undefined;
  let cniDirsBefore = '';
  let cniCacheExisted = { root: true, results: true };
  const containers: Container[] = [];
  const running: Background[] = [];

  /** Starts a long-running container and waits until it printed its address and the tuning sysctl. */
  async function startContainer(label: string): Promise<Container> {
    assert.ok(ctd);
    const id = `${label}-${randomSuffix()}`;
    const sysctlPath = `/proc/sys/${TUNING_SYSCTL.replaceAll('.', '/')}`;
    const proc = ctd.spawnCtr(
      ctd.runArgs({
        image: BUSYBOX_IMAGE,
        id,
        cni: true,
        command: ['sh', '-c', `ip -4 -o addr show dev eth0; echo "sysctl=$(cat ${sysctlPath})"; echo ready; exec sleep 300`],
      }),
    );
    running.push(proc);
    const m = await proc.waitForOutput(/inet (\d+\.\d+\.\d+\.\d+)\/32[^]*\nsysctl=(\d+)\nready/, 60_000);
    assert.equal(m[2], '2', `tuning, chained after podnet, set ${TUNING_SYSCTL} inside ${id}`);
    const cniId = `${ctd.namespace}-${id}`;
    const c = { id, cniId, proc, ip: m[1] ?? '', hostVeth: hostVethName(cniId, 'eth0') };
    containers.push(c);
    return c;
  }

  /** Runs a bounded command inside a running container (`ctr tasks exec`). */
  async function execIn(c: Container, args: readonly string[]): Promise<Awaited<ReturnType<typeof run>>> {
    assert.ok(ctd);
    return ctd.ctr(['tasks', 'exec', '--exec-id', `x-${randomSuffix()}`, '--fifo-dir', join(ctd.dir, 'fifo'), c.id, ...args], { timeoutMs: 30_000 });
  }

  /** What podnet, the host and go-cni still hold for a container; empty once it is fully gone. */
  async function leftovers(c: Container): Promise<string[]> {
    const left: string[] = [];
    const agent = node.agent!;
    if (agent.endpointInfos().some((e) => e.containerId === c.cniId)) left.push('endpoint');
    const ip = agent.ipam.lookup(c.cniId, 'eth0');
    if (ip !== undefined) left.push(`allocation ${ip}`);
    if (agent.ipam.allocations().some((a) => a.ip === c.ip)) left.push(`allocation of ${c.ip}`);
    if (podnetHostVeths().includes(c.hostVeth)) left.push(`host veth ${c.hostVeth}`);
    const routes = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    for (const r of routes.stdout.split('\n')) if (r.startsWith(`${c.ip} `) || r.includes(`dev ${c.hostVeth} `)) left.push(`route ${r.trim()}`);
    for (const f of await cacheEntries(c.cniId)) left.push(`go-cni cache ${f}`);
    return left;
  }

  /** Waits until nothing of `c` is left: podnet finishes releasing a veth a few milliseconds after answering DEL. */
  async function gone(c: Container): Promise<void> {
    let left: string[] = [];
    const deadline = Date.now() + 5_000;
    do {
      left = await leftovers(c);
      if (left.length === 0) return;
      await sleep(50);
    } while (Date.now() < deadline);
    assert.deepEqual(left, [], `${c.id} is gone within 5 s of the end of its ctr run`);
  }

  before(async () => {
    try {
      const image = await buildBusyboxImage();
      cniDirsBefore = await describeCniDirs();
      cniCacheExisted = { root: await exists(SYSTEM_CNI_CACHE), results: await exists(join(SYSTEM_CNI_CACHE, 'results')) };
      await node.start();

      // A host address of this test's own on a host-only veth pair: this kernel has no dummy driver.
      hostAddr = `${(await freeSubnet24('10.253')).prefix}.1`;
      await runOk('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', `${hostIf}p`]);
      hostIfMade = true;
      await runOk('ip', ['addr', 'add', `${hostAddr}/32`, 'dev', hostIf]);
      await runOk('ip', ['link', 'set', hostIf, 'up']);

      ctd = await PrivateContainerd.start();
      const pluginDir = await referencePluginDir();
      // The shipped conflist's version fields: Debian's containerd 1.6 links
      // libcni 1.1.2, which ignores cniVersions and cannot parse a 1.1.0
      // result, so it runs the list at its cniVersion (1.0.0); libcni >= 1.2
      // (containerd 2.x) picks 1.1.0 from cniVersions. This proves the
      // fallback the shipped file promises.
      const shipped = JSON.parse(await readFile(join(REPO_ROOT, 'deploy', '10-podnet.conflist'), 'utf8')) as { cniVersion: string; cniVersions?: string[] };
      paths = await installCniPaths({
        conflists: {
          '10-podnet.conflist': {
            cniVersion: shipped.cniVersion,
            ...(shipped.cniVersions ? { cniVersions: shipped.cniVersions } : {}),
            name: network,
            plugins: [
              { type: 'podnet', agentSocket: node.socket, stateDir: node.stateDir },
              { type: 'tuning', sysctl: { [TUNING_SYSCTL]: '2' } },
            ],
          },
        },
        // The installed name is the source's base name: node.cniBin holds the entry point as "podnet".
        plugins: [join(node.cniBin, 'podnet'), ...['tuning', 'loopback'].map((p) => join(pluginDir, p))],
      });
      const names = await ctd.importImage(image);
      assert.ok(names.includes(BUSYBOX_IMAGE), `imported images: ${names.join(', ')}`);
    } catch (e) {
      await cleanup();
      throw e;
    }
  });

  async function cleanup(): Promise<void> {
    const failures: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        failures.push(`${what}: ${(e as Error).message}`);
      }
    };
    for (const p of running) await attempt(`stop ${p.command}`, () => p.stop('SIGKILL'));
    // A killed ctr skipped its DEL: release what podnet still holds for it.
    if (node.agent) {
      for (const c of containers) {
        await attempt(`DEL ${c.cniId}`, () => node.cni('DEL', { containerId: c.cniId, conf: node.conf({ cniVersion: '1.0.0', name: network }) }));
      }
    }
    await attempt('stop containerd', async () => ctd?.stop());
    await attempt('restore CNI directories', async () => paths?.restore());
    await attempt('remove go-cni cache entries', async () => {
      for (const c of containers) for (const f of await cacheEntries(c.cniId)) await rm(join(SYSTEM_CNI_CACHE, 'results', f), { force: true });
      if (!cniCacheExisted.results) await rmdir(join(SYSTEM_CNI_CACHE, 'results')).catch(() => undefined);
      if (!cniCacheExisted.root) await rmdir(SYSTEM_CNI_CACHE).catch(() => undefined);
    });
    if (hostIfMade) await attempt('delete host veth', () => run('ip', ['link', 'del', hostIf]));
    await attempt('clean up the agent', () => node.cleanup());
    if (failures.length > 0) throw new Error(`clean up after the containerd test: ${failures.join('; ')}`);
  }

  after(cleanup);

  test('go-cni sees only podnet\'s conflist, and the podnet entry point beside the reference plugins it chains', async () => {
    assert.ok(paths);
    assert.deepEqual(await readdir(paths.confDir), ['10-podnet.conflist']);
    const conf = JSON.parse(await readFile(join(paths.confDir, '10-podnet.conflist'), 'utf8')) as { name: string; plugins: Array<{ type: string }> };
    assert.equal(conf.name, network);
    assert.deepEqual(conf.plugins.map((p) => p.type), ['podnet', 'tuning']);
    for (const p of ['podnet', 'tuning', 'loopback']) assert.ok(((await stat(join(paths.binDir, p))).mode & 0o111) !== 0, `${p} is executable`);
  });

  test('two containers get addresses from podnet\'s pool and podnet lists them as endpoints', async () => {
    const server = await startContainer('srv');
    const client = await startContainer('cli');
    for (const c of [server, client]) {
      assert.ok(c.ip.startsWith(cidrPrefix), `${c.id} has ${c.ip}, inside ${node.podCidr}`);
      const ep = node.agent!.endpointInfos().find((e) => e.containerId === c.cniId);
      assert.ok(ep, `podnet lists an endpoint for ${c.cniId}`);
      assert.equal(ep.ip, c.ip);
      assert.equal(ep.ifName, 'eth0');
      assert.equal(ep.hostIfName, c.hostVeth);
      assert.match(ep.netns, /^\/proc\/\d+\/ns\/net$/, 'ctr passes the task\'s netns by /proc path');
      assert.equal(node.agent!.ipam.lookup(c.cniId, 'eth0'), c.ip);
      assert.ok((await hostLinks()).has(c.hostVeth), `${c.hostVeth} exists on the host`);
    }
    assert.notEqual(server.ip, client.ip);
    assert.equal(node.agent!.endpointInfos().length, 2);
  });

  test('the containers ping each other and a host address through podnet\'s BPF programs', async () => {
    const [server, client] = containers;
    assert.ok(server && client, 'both containers run');
    const idOf = (c: Container): number => node.agent!.endpointInfos().find((e) => e.containerId === c.cniId)!.endpointId;
    const counters = new CountersMap(node.agent!.datapath.maps.counters);
    const before = counters.readAll();

    const toServer = await execIn(client, ['ping', '-c', '3', '-W', '2', server.ip]);
    assert.equal(toServer.code, 0, `ping ${server.ip}: ${toServer.stdout}${toServer.stderr}`);
    assert.match(toServer.stdout, /3 packets transmitted, 3 packets received/);
    const afterPods = counters.readAll();
    for (const [c, dir] of [[client, 'egress'], [server, 'ingress'], [server, 'egress'], [client, 'ingress']] as const) {
      const grew = passedPackets(afterPods, idOf(c), dir) - passedPackets(before, idOf(c), dir);
      assert.ok(grew >= 3n, `${c.id} ${dir} counter grew by ${grew}, at least the 3 pings`);
    }

    const toHost = await execIn(server, ['ping', '-c', '2', '-W', '2', hostAddr]);
    assert.equal(toHost.code, 0, `ping ${hostAddr}: ${toHost.stdout}${toHost.stderr}`);
    assert.match(toHost.stdout, /2 packets transmitted, 2 packets received/);
    const afterHost = counters.readAll();
    assert.ok(passedPackets(afterHost, idOf(server), 'egress') - passedPackets(afterPods, idOf(server), 'egress') >= 2n);
    assert.ok(passedPackets(afterHost, idOf(server), 'ingress') - passedPackets(afterPods, idOf(server), 'ingress') >= 2n);
  });

  test('when the foreground --rm runs end, go-cni\'s DEL leaves podnet no endpoint, allocation or veth', async () => {
    assert.ok(ctd);
    assert.equal(containers.length, 2, 'both containers were started');
    for (const c of containers) await ctd.ctrOk(['tasks', 'kill', '-s', 'SIGKILL', c.id]);
    for (const c of containers) {
      const res = await waitFor(`ctr run ${c.id} to exit`, async () => (c.proc.done ? c.proc.exited : undefined), 30_000, 50);
      assert.equal(res.code, 137, `ctr run ${c.id} reports the SIGKILL as exit 128+9: ${res.stderr}`);
    }
    for (const c of containers) await gone(c);
    assert.deepEqual(node.agent!.endpointInfos(), []);
    assert.deepEqual(node.agent!.ipam.allocations(), []);
    assert.equal((await ctd.ctrOk(['containers', 'ls', '-q'])).stdout.trim(), '', '--rm deleted both containers');
    const routes = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    assert.deepEqual(routes.stdout.split('\n').filter((l) => l.includes(cidrPrefix)), [], 'no route into the pod CIDR is left');
  });

  test('stopping containerd and restoring the CNI directories leaves /etc/cni and /opt/cni as they were', async () => {
    assert.ok(ctd && paths);
    await ctd.stop();
    await paths.restore();
    assert.equal(await describeCniDirs(), cniDirsBefore);
  });
});
