/**
 * Proves the containerd harness: a private containerd, the hand-built
 * busybox image, and two `ctr run --rm --cni` containers on the reference
 * ptp + host-local plugins that ping each other. Afterwards no namespace,
 * veth, CNI cache file, IPAM reservation, cgroup or runtime directory of
 * this test is left. Needs root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, readlink, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUSYBOX_IMAGE,
  PrivateContainerd,
  buildBusyboxImage,
  describeCniDirs,
  freeSubnet24,
  hostLinks,
  installCniPaths,
  randomSuffix,
  referencePluginDir,
  runOk,
  waitFor,
  type Background,
  type InstalledCniPaths,
} from './tools/index.js';

const SYSTEM_CNI_CACHE = '/var/lib/cni';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Addresses host-local still holds for `network` under `dataDir`. */
async function reservations(dataDir: string, network: string): Promise<string[]> {
  const files = await readdir(join(dataDir, network)).catch(() => [] as string[]);
  return files.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort();
}

/** go-cni's libcni cache entries for `network` (it always uses /var/lib/cni). */
async function cacheEntries(network: string): Promise<string[]> {
  const files = await readdir(join(SYSTEM_CNI_CACHE, 'results')).catch(() => [] as string[]);
  return files.filter((f) => f.startsWith(`${network}-`));
}

/** PIDs whose network namespace is `netns` (a `net:[inode]` link target). */
async function processesInNetns(netns: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (/^\d+$/.test(name) && (await readlink(`/proc/${name}/ns/net`).catch(() => '')) === netns) pids.push(Number(name));
  }
  return pids;
}

/** Settles with the process's exit, or rejects after `ms`. */
async function exitWithin(proc: Background, ms: number): Promise<Awaited<Background['exited']>> {
  return waitFor(`${proc.command} to exit`, async () => (proc.done ? proc.exited : undefined), ms, 50);
}

describe('private containerd running busybox with ctr run --cni', () => {
  let work = '';
  let dataDir = '';
  let subnetPrefix = '';
  let network = '';
  let ctd: PrivateContainerd | undefined;
  let paths: InstalledCniPaths | undefined;
  let cniCacheExisted = { root: true, results: true };
  let cniDirsBefore = '';
  const running: Background[] = [];

  before(async () => {
    const image = await buildBusyboxImage();
    cniDirsBefore = await describeCniDirs();
    cniCacheExisted = { root: await exists(SYSTEM_CNI_CACHE), results: await exists(join(SYSTEM_CNI_CACHE, 'results')) };
    work = await mkdtemp(join(tmpdir(), 'podnet-ctd-test-'));
    dataDir = join(work, 'ipam');
    subnetPrefix = (await freeSubnet24()).prefix;
    network = `pnctd-${randomSuffix()}`;

    ctd = await PrivateContainerd.start();
    const pluginDir = await referencePluginDir();
    paths = await installCniPaths({
      conflists: {
        '10-podnet-harness.conflist': {
          cniVersion: '1.0.0',
          name: network,
          plugins: [{ type: 'ptp', ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: `${subnetPrefix}.0/24` }]], dataDir } }],
        },
      },
      plugins: ['ptp', 'host-local', 'loopback'].map((p) => join(pluginDir, p)),
    });
    const names = await ctd.importImage(image);
    assert.ok(names.includes(BUSYBOX_IMAGE), `imported images: ${names.join(', ')}`);
  });

  after(async () => {
    for (const p of running) await p.stop('SIGKILL').catch(() => undefined);
    await ctd?.stop();
    await paths?.restore();
    // Only reached when a container died without its DEL; the network name is ours alone.
    for (const f of await cacheEntries(network)) await rm(join(SYSTEM_CNI_CACHE, 'results', f), { force: true });
    if (!cniCacheExisted.results) await rmdir(join(SYSTEM_CNI_CACHE, 'results')).catch(() => undefined);
    if (!cniCacheExisted.root) await rmdir(SYSTEM_CNI_CACHE).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('ctr sees only the test conflist and plugins in the system CNI directories', async () => {
    assert.ok(paths);
    assert.deepEqual(await readdir(paths.confDir), ['10-podnet-harness.conflist']);
    const conf = JSON.parse(await readFile(join(paths.confDir, '10-podnet-harness.conflist'), 'utf8')) as { name: string };
    assert.equal(conf.name, network);
    for (const p of ['ptp', 'host-local', 'loopback']) assert.ok(((await stat(join(paths.binDir, p))).mode & 0o111) !== 0, `${p} is executable`);
  });

  test('two containers on ptp + host-local ping each other, and --rm releases their addresses', async () => {
    assert.ok(ctd);
    const server = `srv-${randomSuffix()}`;
    const client = `cli-${randomSuffix()}`;

    const srv = ctd.spawnCtr(
      ctd.runArgs({ image: BUSYBOX_IMAGE, id: server, cni: true, command: ['sh', '-c', 'ip -4 -o addr show dev eth0; echo ready; exec sleep 120'] }),
    );
    running.push(srv);
    const m = await srv.waitForOutput(/inet (\d+\.\d+\.\d+\.\d+)\/\d+[^]*\nready/, 30_000);
    const serverIp = m[1] ?? '';
    assert.ok(serverIp.startsWith(`${subnetPrefix}.`), `${serverIp} is inside ${subnetPrefix}.0/24`);
    assert.deepEqual(await reservations(dataDir, network), [serverIp]);
    assert.equal((await cacheEntries(network)).length, 1, 'go-cni cached the server attachment');

    // What must vanish later: the task's network namespace (held by its
    // process only: ctr makes no bind mount) and ptp's host-side veth.
    const taskLine = (await ctd.ctrOk(['tasks', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${server} `));
    const taskPid = Number(taskLine?.trim().split(/\s+/)[1]);
    assert.ok(taskPid > 0, `task pid of ${server}: ${taskLine}`);
    const serverNetns = await readlink(`/proc/${taskPid}/ns/net`);
    const hostVeth = (await runOk('ip', ['-4', '-o', 'route', 'show', `${serverIp}/32`])).stdout.match(/\bdev (\S+)/)?.[1];
    if (!hostVeth?.startsWith('veth')) assert.fail(`ptp routes ${serverIp} through a host veth, not ${hostVeth}`);

    const ping = await ctd.ctr(ctd.runArgs({ image: BUSYBOX_IMAGE, id: client, cni: true, command: ['ping', '-c', '1', '-W', '2', serverIp] }), { timeoutMs: 60_000 });
    assert.equal(ping.code, 0, `ping failed: ${ping.stdout}${ping.stderr}`);
    assert.match(ping.stdout, /1 packets transmitted, 1 packets received/);

    // The client's foreground --rm run called CNI DEL on exit: only the server's address is held.
    assert.deepEqual(await reservations(dataDir, network), [serverIp]);

    await ctd.ctrOk(['tasks', 'kill', '-s', 'SIGKILL', server]);
    const res = await exitWithin(srv, 30_000);
    assert.equal(res.code, 137, 'ctr run reports the SIGKILL as exit 128+9');

    assert.deepEqual(await reservations(dataDir, network), []);
    assert.deepEqual(await cacheEntries(network), []);
    assert.equal((await ctd.ctrOk(['containers', 'ls', '-q'])).stdout.trim(), '', '--rm deleted both containers');
    assert.equal((await hostLinks()).has(hostVeth), false, `${hostVeth} is gone`);
    const routes = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    assert.deepEqual(routes.stdout.split('\n').filter((l) => l.includes(`${subnetPrefix}.`)), [], 'no route into the pod subnet is left');
    assert.deepEqual(await processesInNetns(serverNetns), [], `no process is left in ${serverNetns}`);
    assert.equal((await readFile('/proc/self/mountinfo', 'utf8')).includes(serverNetns), false, `${serverNetns} is not bind-mounted anywhere`);
  });

  test('stopping the private containerd leaves no process, mount, cgroup or directory behind', async () => {
    assert.ok(ctd);
    const { pid, dir, namespace } = ctd;
    await ctd.stop();

    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'containerd has exited');
    assert.equal(await exists(dir), false);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    assert.equal(mounts.includes(dir), false);
    const cgroupLeft: string[] = [];
    for (const h of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      if (await exists(join('/sys/fs/cgroup', h, namespace))) cgroupLeft.push(h);
    }
    if (await exists(join('/sys/fs/cgroup', namespace))) cgroupLeft.push('(root)');
    assert.deepEqual(cgroupLeft, []);
    for (const name of await readdir('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
      assert.equal(cmd.includes(namespace) || cmd.includes(dir), false, `process ${name} still refers to this instance: ${cmd.replaceAll('\0', ' ')}`);
    }
  });

  test('restoring the CNI directories leaves them exactly as they were before the test', async () => {
    assert.ok(paths);
    await paths.restore();
    assert.equal(await describeCniDirs(), cniDirsBefore);
  });
});
