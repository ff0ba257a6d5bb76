/**
 * The agent image, run the way deploy/03-daemonset.yaml runs it: built by
 * scripts/image/build-agent-image.sh, imported into a private containerd,
 * and started with `ctr run` with host networking, the DaemonSet's
 * capabilities (nothing else), its seccomp profile, a read-only root and its
 * mounts with their propagation, in standalone mode. The mounts point at
 * private directories (a bpffs of its own, state dir, socket dir), so the
 * container cannot disturb the machine. Proves the init containers' commands,
 * that the agent compiles and loads its datapath inside the image, that
 * `podnet status` works inside the container and from the host, and that
 * the host-side CNI entry point gets a pod wired through the containerised
 * agent into a namespace made after the agent started. Needs root.
 * Traffic stays on this machine: the only network use is loopback HTTP.
 */
import { cgroup2Root } from '../../agent/src/datapath/index.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  BUILD_DIR,
  Netns,
  PrivateContainerd,
  REPO_ROOT,
  hostLinks,
  randomSuffix,
  run,
  runOk,
  waitFor,
  type Background,
  type RunResult,
} from './tools/index.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';

const IMAGE_TAR = join(BUILD_DIR, 'agent-image.tar');
const PACKAGE_VERSION = (JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const IMAGE = `podnet.local/podnet-agent:${PACKAGE_VERSION}`;

/** The capabilities the OCI runtime spec's default set gives a container; dropped to start from none, as `drop: [ALL]` does. */
const OCI_DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
];

interface K8sMount { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }
interface K8sContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  securityContext?: { privileged?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[]; add?: string[] }; seccompProfile?: { type: string } };
  volumeMounts?: K8sMount[];
  env?: Array<{ name: string; value?: string }>;
}
interface DaemonSetSpec { initContainers: K8sContainer[]; containers: K8sContainer[] }

const daemonSet = parseYaml(await readFile(join(REPO_ROOT, 'deploy', '03-daemonset.yaml'), 'utf8')) as { spec: { template: { spec: DaemonSetSpec } } };
const podSpec = daemonSet.spec.template.spec;
function container(name: string): K8sContainer {
  const c = [...podSpec.initContainers, ...podSpec.containers].find((x) => x.name === name);
  assert.ok(c, `deploy/03-daemonset.yaml has a container named ${name}`);
  return c;
}

/** `ctr run` flags for a container's security context: privileged, or no capabilities but the added ones. */
function securityFlags(c: K8sContainer): string[] {
  const sc = c.securityContext ?? {};
  if (sc.privileged) return ['--privileged'];
  assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${c.name} drops every capability it does not add`);
  const flags = OCI_DEFAULT_CAPS.flatMap((cap) => ['--cap-drop', `CAP_${cap}`]);
  for (const cap of sc.capabilities?.add ?? []) flags.push('--cap-add', `CAP_${cap}`);
  if (sc.seccompProfile?.type === 'RuntimeDefault') flags.push('--seccomp');
  if (sc.readOnlyRootFilesystem) flags.push('--read-only');
  return flags;
}

/** `ctr run --mount` for one of the container's volume mounts, with its propagation, from a host directory. */
function mountFlag(c: K8sContainer, volume: string, hostDir: string): string[] {
  const m = c.volumeMounts?.find((v) => v.name === volume);
  assert.ok(m, `${c.name} mounts volume ${volume}`);
  const propagation = { Bidirectional: 'rshared', HostToContainer: 'rslave' }[m.mountPropagation ?? ''] ?? 'rprivate';
  return ['--mount', `type=bind,src=${hostDir},dst=${m.mountPath},options=rbind:${propagation}:${m.readOnly ? 'ro' : 'rw'}`];
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function fsType(path: string): Promise<string> {
  return (await runOk('stat', ['-f', '-c', '%T', path])).stdout.trim();
}

async function mountPoints(under: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p === under || p.startsWith(`${under}/`)).sort((a, b) => b.length - a.length);
}

describe('the agent image under containerd, with the DaemonSet\'s privileges and mounts', () => {
  let ctd: PrivateContainerd | undefined;
  let work = '';
  let dirs: Record<'bpffs' | 'state' | 'run' | 'config' | 'cniBin' | 'cniConf' | 'hostBpf', string>;
  let agent: Background | undefined;
  const agentId = `pnagent-${randomSuffix()}`;
  const cidrThird = 1 + Math.floor(Math.random() * 250);
  const podCidr = `10.236.${cidrThird}.0/24`;
  let metricsPort = 0;
  const namespaces: Netns[] = [];
  const cniContainerId = `pnimg-${randomSuffix(6)}`;

  /**
   * Runs a bounded command inside the running agent container. ctr
   * sometimes exits before it copied a short-lived process's stdout, so a
   * silent success is retried (at most three runs).
   */
  async function execInAgent(args: readonly string[]): Promise<RunResult> {
    assert.ok(ctd);
    let res: RunResult | undefined;
    for (let i = 0; i < 3; i++) {
      res = await ctd.ctr(['tasks', 'exec', '--exec-id', `x-${randomSuffix()}`, '--fifo-dir', join(ctd.dir, 'fifo'), agentId, ...args], { timeoutMs: 60_000 });
      if (res.code !== 0 || res.stdout !== '') break;
    }
    return res!;
  }

  /** The CNI entry point from the build, exec'd like a runtime, against the containerised agent's socket. */
  function cni(verb: 'ADD' | 'DEL', netns: string): Promise<RunResult> {
    const entry = join(BUILD_DIR, 'cni', 'podnet');
    return stat(entry).then(
      () => entry,
      () => join(BUILD_DIR, 'cni', 'podnet.cjs'),
    ).then((file) => run(file, [], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: verb, CNI_CONTAINERID: cniContainerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' },
      input: JSON.stringify({ cniVersion: '1.0.0', name: 'podnet-image-test', type: 'podnet', agentSocket: join(dirs.run, 'agent.sock'), stateDir: dirs.state }),
      timeoutMs: 30_000,
    }));
  }

  before(async () => {
    await runOk('bash', [join(REPO_ROOT, 'scripts', 'image', 'build-agent-image.sh'), IMAGE_TAR, IMAGE], { timeoutMs: 1_200_000, env: { ...process.env } });
    work = await mkdtemp(join(tmpdir(), 'podnet-agent-image-'));
    dirs = {
      bpffs: join(work, 'bpffs'), state: join(work, 'state'), run: join(work, 'run'), config: join(work, 'config'),
      cniBin: join(work, 'cni-bin'), cniConf: join(work, 'cni-conf'), hostBpf: join(work, 'host-bpf'),
    };
    for (const d of Object.values(dirs)) await mkdir(d, { mode: 0o700 });
    await runOk('mount', ['-t', 'bpf', 'bpf', dirs.bpffs]);
    // The agent reads the ConfigMap's file; standalone flags override its source.
    const cm = parseYaml(await readFile(join(REPO_ROOT, 'deploy', '02-config.yaml'), 'utf8')) as { data: Record<string, string> };
    await writeFile(join(dirs.config, 'config.yaml'), cm.data['config.yaml'] ?? '');
    // /run/netns must exist as a mount before the container starts, as on a node with pods.
    namespaces.push(await Netns.create('pnimg'));
    ctd = await PrivateContainerd.start();
    const names = await ctd.importImage(IMAGE_TAR);
    assert.ok(names.includes(IMAGE), `ctr imports ${IMAGE} (has ${names.join(', ')})`);
  }, { timeout: 1_500_000 });

  after(async () => {
    const failures: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        failures.push(`${what}: ${(e as Error).message}`);
      }
    };
    if (ctd) await attempt('stop containerd', () => ctd!.stop());
    if (agent) await attempt('stop ctr run', () => agent!.stop('SIGKILL'));
    const veth = hostVethName(cniContainerId, 'eth0');
    if ((await hostLinks()).has(veth)) await attempt(`delete ${veth}`, () => runOk('ip', ['link', 'del', veth]));
    for (const ns of namespaces) await attempt(`delete netns ${ns.name}`, () => ns.close());
    if (work) {
      await attempt('unmount', async () => {
        for (const m of await mountPoints(work)) await runOk('umount', ['-l', m]);
      });
      await attempt('remove work dir', () => rm(work, { recursive: true, force: true }));
    }
    assert.deepEqual(failures, [], 'cleanup removed everything the test made');
  });

  test('the install-cni init container copies the entry point and conflist into the host\'s CNI dirs', async () => {
    assert.ok(ctd);
    const c = container('install-cni');
    const res = await ctd.ctr([
      'run', '--rm', '--runc-root', join(ctd.dir, 'runc'), '--fifo-dir', join(ctd.dir, 'fifo'), ...securityFlags(c),
      ...mountFlag(c, 'cni-bin', dirs.cniBin), ...mountFlag(c, 'cni-conf', dirs.cniConf),
      IMAGE, `pninstall-${randomSuffix()}`, ...(c.command ?? []),
    ], { timeoutMs: 120_000 });
    assert.equal(res.code, 0, `install-cni exits 0: ${res.stderr}`);
    const conflist = await readFile(join(dirs.cniConf, '10-podnet.conflist'), 'utf8');
    assert.equal(conflist, await readFile(join(REPO_ROOT, 'deploy', '10-podnet.conflist'), 'utf8'), 'the conflist is deploy/10-podnet.conflist');
    const entry = await stat(join(dirs.cniBin, 'podnet'));
    assert.equal(entry.mode & 0o777, 0o755, 'the entry point is executable');
    const built = await stat(join(BUILD_DIR, 'cni', 'podnet')).catch(() => stat(join(BUILD_DIR, 'cni', 'podnet.cjs')));
    assert.equal(entry.size, built.size, 'the entry point is the one the build made');
    assert.deepEqual((await readdir(dirs.cniBin)).sort(), ['podnet'], 'no temporary file is left beside it');
  });

  test('the mount-bpffs init container mounts bpffs where none is, and leaves an existing one alone', async () => {
    assert.ok(ctd);
    const c = container('mount-bpffs');
    // Kubernetes makes the container's mounts shared for a Bidirectional
    // volume, so the mount reaches the host; ctr cannot ask runc for that, so
    // this checks what the command does inside the container.
    // The output goes to a file: a foreground `ctr run` of a container this
    // short-lived sometimes exits before it copied the container's stdout.
    const out = join(work, 'mount-bpffs-out');
    await mkdir(out, { recursive: true });
    const runIt = async (): Promise<{ code: number | null; output: string; stderr: string }> => {
      await rm(join(out, 'log'), { force: true });
      const res = await ctd!.ctr([
        'run', '--rm', '--runc-root', join(ctd!.dir, 'runc'), '--fifo-dir', join(ctd!.dir, 'fifo'), ...securityFlags(c),
        ...mountFlag(c, 'bpffs', dirs.hostBpf), '--mount', `type=bind,src=${out},dst=/out,options=rbind:rw`,
        IMAGE, `pnmount-${randomSuffix()}`,
        'sh', '-c', `{ ${(c.command ?? []).join(' ')} && stat -f -c 'type=%T' /host/sys/fs/bpf && grep -c ' /host/sys/fs/bpf ' /proc/self/mounts; } >/out/log 2>&1`,
      ], { timeoutMs: 120_000 });
      return { code: res.code, output: await readFile(join(out, 'log'), 'utf8').catch(() => ''), stderr: res.stderr };
    };
    assert.notEqual(await fsType(dirs.hostBpf), 'bpf_fs');
    const first = await runIt();
    assert.equal(first.code, 0, `mount-bpffs exits 0: ${first.output} ${first.stderr}`);
    assert.match(first.output, /mounted a bpf filesystem[^]*type=bpf_fs\n2\n/, 'a bpffs is mounted over the plain directory');
    await runOk('mount', ['-t', 'bpf', 'bpf', dirs.hostBpf]);
    const second = await runIt();
    assert.equal(second.code, 0, `mount-bpffs exits 0 on a bpffs: ${second.output} ${second.stderr}`);
    assert.match(second.output, /is a bpf filesystem already[^]*type=bpf_fs\n1\n/, 'no second bpffs is stacked on the first');
  });

  test('the agent starts from the image with only the DaemonSet\'s capabilities and becomes ready', async () => {
    assert.ok(ctd);
    const c = container('agent');
    metricsPort = await freePort();
    const args = [
      'run', '--rm', '--runc-root', join(ctd.dir, 'runc'), '--fifo-dir', join(ctd.dir, 'fifo'), '--net-host', ...securityFlags(c),
      // As the downward API sets it; `podnet status` exec'd in the container inherits it and must ignore it.
      '--env', 'PODNET_NODE_NAME=image-test-node',
      // The DaemonSet's literal settings (e.g. the host cgroup directory of the socket load balancer).
      ...(c.env ?? []).filter((e) => e.value !== undefined).flatMap((e) => ['--env', `${e.name}=${e.value}`]),
      ...mountFlag(c, 'cgroup', '/sys/fs/cgroup'),
      ...mountFlag(c, 'config', dirs.config), ...mountFlag(c, 'bpffs', dirs.bpffs), ...mountFlag(c, 'state', dirs.state),
      ...mountFlag(c, 'run', dirs.run), ...mountFlag(c, 'netns', '/run/netns'),
      '--mount', 'type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:size=65536k',
      IMAGE, agentId, '/usr/local/bin/podnet', ...(c.args ?? []),
      '--source', 'file:/dev/null', '--pod-cidr', podCidr, '--metrics-addr', `127.0.0.1:${metricsPort}`,
      // The socket load balancer attaches at the host's cgroup root: a range of its own, so it refuses nothing else here.
      '--service-cidr', '10.96.254.0/24',
    ];
    agent = ctd.spawnCtr(args, { timeoutMs: 900_000 });
    const outcome = await waitFor('the agent\'s /readyz to answer 200', async () => {
      if (agent!.done) return 'exited';
      const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
      return res?.status === 200 ? 'ready' : undefined;
    }, 180_000, 250);
    if (outcome === 'exited') {
      const r = await agent.exited;
      assert.fail(`the agent container exited ${r.code ?? r.signal} before it was ready: ${r.stderr.slice(-1500)} ${agent.stdoutSoFar().slice(-1500)}`);
    }
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    assert.equal(health.status, 200, '/healthz answers 200');
  });

  test('podnet status works inside the agent container, as kubectl exec would run it', async () => {
    const res = await execInAgent(['podnet', 'status', '-o', 'json']);
    assert.equal(res.code, 0, `podnet status exits 0 inside the container: ${res.stderr}`);
    const s = JSON.parse(res.stdout) as { ready: boolean; nodeName: string; podCidr: string; bpffs: string };
    assert.equal(s.ready, true);
    assert.equal(s.nodeName, 'image-test-node', 'the node name comes from the downward API through PODNET_NODE_NAME');
    assert.equal(s.podCidr, podCidr);
    assert.equal(s.bpffs, '/sys/fs/bpf/podnet', 'the bpffs dir is the ConfigMap\'s');
    const table = await execInAgent(['podnet', 'status']);
    assert.match(table.stdout, /^Agent: +ready/m);
  });

  test('the agent process holds exactly the capabilities the DaemonSet adds', async () => {
    const bits: Record<string, number> = { NET_ADMIN: 12, SYS_ADMIN: 21, SYS_RESOURCE: 24, PERFMON: 38, BPF: 39 };
    const added = container('agent').securityContext?.capabilities?.add ?? [];
    const want = added.reduce((m, cap) => {
      assert.ok(cap in bits, `capability ${cap} has a known number`);
      return m | (1n << BigInt(bits[cap]!));
    }, 0n);
    const res = await execInAgent(['grep', 'CapEff', '/proc/1/status']);
    const m = /CapEff:\s*([0-9a-f]+)/.exec(res.stdout);
    assert.ok(m, `/proc/1/status has a CapEff line: ${res.stdout} ${res.stderr}`);
    const have = BigInt(`0x${m[1]}`);
    assert.equal(have.toString(16), want.toString(16), 'the agent (pid 1 of the container) runs with those capabilities and no others');
  });

  test('podnet status works from the host against the socket in the shared run dir', async () => {
    const res = await run(join(REPO_ROOT, 'bin', 'podnet'), ['status', '-o', 'json', '--api-socket', join(dirs.run, 'agent.sock')], { timeoutMs: 30_000 });
    assert.equal(res.code, 0, `podnet status exits 0 on the host: ${res.stderr}`);
    const s = JSON.parse(res.stdout) as { ready: boolean; podCidr: string };
    assert.equal(s.ready, true);
    assert.equal(s.podCidr, podCidr);
    const sock = await stat(join(dirs.run, 'agent.sock'));
    assert.ok(sock.isSocket(), 'the API socket is on the host');
  });

  test('the datapath\'s pins land in the host\'s bpffs and the compiled object in the host\'s state dir', async () => {
    const pins = await readdir(join(dirs.bpffs, 'podnet'));
    for (const want of ['pn_endpoints', 'pn_ipam', 'pn_services', 'progs', 'links', 'cgroup']) assert.ok(pins.includes(want), `pin ${want} on the host (has ${pins.join(', ')})`);
    // The socket load balancer attached at the host's cgroup root (through the DaemonSet's cgroup mount), not the container's.
    const cgroupLinks = await readdir(join(dirs.bpffs, 'podnet', 'cgroup'));
    assert.ok(cgroupLinks.some((l) => l.endsWith('cgroup_connect4')), `a connect4 link is pinned (has ${cgroupLinks.join(', ')})`);
    const attached = (await runOk('bpftool', ['-j', 'cgroup', 'show', cgroup2Root()])).stdout;
    assert.match(attached, /sock_connect4/, `the host's cgroup root ${cgroup2Root()} runs the agent's connect4 program: ${attached}`);
    const cache = await readdir(join(dirs.state, 'bpf-cache'));
    assert.ok(cache.some((f) => /^pod-[0-9a-f]{16}\.bpf\.o$/.test(f)), `clang in the image compiled bpf/pod.bpf.c (cache holds ${cache.join(', ')})`);
  });

  test('the host\'s CNI entry point wires a pod through the containerised agent into a namespace made after it started', async () => {
    const ns = await Netns.create('pnimg');
    namespaces.push(ns);
    const add = await cni('ADD', ns.path);
    assert.equal(add.code, 0, `ADD exits 0: ${add.stdout} ${add.stderr}`);
    assert.notEqual(add.stdout, '', `ADD prints a result (stderr: ${add.stderr})`);
    const result = JSON.parse(add.stdout) as { ips: Array<{ address: string }> };
    const ip = result.ips[0]?.address ?? '';
    assert.ok(ip.startsWith(`10.236.${cidrThird}.`), `the pod address ${ip} is from ${podCidr}`);
    const inside = await ns.execOk('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.match(inside.stdout, new RegExp(`inet ${ip.replaceAll('.', '\\.')}`), 'eth0 in the pod namespace carries the address');
    const veth = hostVethName(cniContainerId, 'eth0');
    assert.ok((await hostLinks()).has(veth), `the host side ${veth} is in the host namespace (hostNetwork)`);

    const del = await cni('DEL', ns.path);
    assert.equal(del.code, 0, `DEL exits 0: ${del.stdout} ${del.stderr}`);
    await waitFor(`${veth} to be deleted`, async () => ((await hostLinks()).has(veth) ? undefined : true), 10_000, 50);
    const status = await execInAgent(['podnet', 'status', '-o', 'json']);
    assert.equal((JSON.parse(status.stdout) as { endpoints: number }).endpoints, 0, 'no endpoint is left');
  });

  test('SIGTERM stops the agent container cleanly and leaves the datapath pinned', async () => {
    assert.ok(ctd && agent);
    await ctd.ctrOk(['tasks', 'kill', '-s', 'SIGTERM', agentId]);
    const res = await agent.exited;
    assert.equal(res.code, 0, `the agent exits 0 on SIGTERM: ${res.stderr.slice(-500)}`);
    assert.match(res.stderr, /"msg":"agent ready"/, 'the agent logged that it was ready');
    assert.match(res.stderr, /stopping agent; the datapath keeps running/);
    const pins = await readdir(join(dirs.bpffs, 'podnet'));
    assert.ok(pins.includes('pn_endpoints'), 'the maps stay pinned for the next agent');
  });
});
