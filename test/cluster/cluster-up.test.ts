/**
 * scripts/cluster/up.sh and down.sh on this machine (root): the control
 * plane in its own namespace, containerd 2.x and kubelet in the root one,
 * TLS and Node+RBAC, a Node with a pod CIDR from the controller-manager, a
 * host-network pod without any CNI plugin (PODNET_CLUSTER_DEPLOY=0: podnet
 * on the cluster is test/cluster/podnet.test.ts), and nothing left after
 * down.sh.
 * The first run builds the harness from Go modules (tens of minutes).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, hostLinks, listNetns } from '../e2e/tools/index.js';
import { run, runOk, waitFor } from '../e2e/tools/proc.js';
import { CLUSTER_DIR, clusterDown, clusterEnv, clusterUp, kubectl, kubectlOk } from './tools/cluster.js';

const KUBELET_SYSCTLS = ['vm.overcommit_memory', 'vm.panic_on_oom', 'kernel.panic', 'kernel.panic_on_oops', 'kernel.keys.root_maxkeys', 'kernel.keys.root_maxbytes'];

async function sysctls(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const s of KUBELET_SYSCTLS) out[s] = (await runOk('sysctl', ['-n', s])).stdout.trim();
  return out;
}

async function clusterMounts(): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${CLUSTER_DIR}/`));
}

/** The KUBE-* chains of every iptables table, as "table chain" lines. */
async function kubeChains(): Promise<string[]> {
  const out: string[] = [];
  for (const ipt of ['iptables-save', 'ip6tables-save']) {
    let table = '';
    for (const line of (await runOk(ipt, [])).stdout.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      const m = line.match(/^:(KUBE-\S+)/);
      if (m?.[1]) out.push(`${ipt} ${table} ${m[1]}`);
    }
  }
  return out.sort();
}

/** PIDs in kubelet's kubepods cgroups (pod sandboxes and containers; cgroup v1 pids tree). */
async function podProcesses(): Promise<string[]> {
  const res = await run('sh', ['-c', 'find /sys/fs/cgroup/pids/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null']);
  return res.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** The shim sockets the cluster's task bundles name (bootstrap.json). */
async function shimSockets(): Promise<string[]> {
  const res = await run('sh', ['-c', `cat ${CLUSTER_DIR}/containerd/state/io.containerd.runtime.v2.task/*/*/bootstrap.json 2>/dev/null`]);
  return [...new Set([...res.stdout.matchAll(/"address":"unix:\/\/([^"]+)"/g)].map((m) => m[1] ?? ''))].filter((p) => p !== '');
}

/** PIDs of the containerd shims serving the cluster's containerd socket. */
async function clusterShims(): Promise<string[]> {
  const res = await run('ps', ['-eo', 'pid=,args=']);
  return res.stdout
    .split('\n')
    .filter((l) => l.includes('containerd-shim-runc-v2') && l.includes(`${CLUSTER_DIR}/containerd/containerd.sock`))
    .map((l) => l.trim().split(/\s+/)[0] ?? '');
}

/** Processes whose arguments point into build/cluster (every one up.sh and containerd start does). */
async function clusterProcesses(): Promise<string[]> {
  const res = await run('ps', ['-eo', 'pid=,args=']);
  return res.stdout
    .split('\n')
    .filter((l) => l.includes(`${CLUSTER_DIR}/`))
    .filter((l) => !/\bps -eo\b/.test(l));
}

describe('one-node cluster from scripts/cluster', () => {
  let env: ReadonlyMap<string, string> = new Map();
  let nodeName = '';
  let sysctlsBefore: Record<string, string> = {};
  let iptablesBefore: string[] = [];
  const pod = `pn-hostnet-${process.pid}`;

  before(async () => {
    env = await clusterEnv();
    // A cluster left running would already have changed the host; start from none.
    await clusterDown();
    sysctlsBefore = await sysctls();
    iptablesBefore = await kubeChains();
    await clusterUp({ podnet: false });
    nodeName = (await kubectlOk(['get', 'nodes', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
  });

  after(async () => {
    // No kubectl here: once the namespace is gone, the API server's address
    // would be routed off the machine.
    await clusterDown();
  });

  test('the API server is ready over TLS and refuses a client without a certificate', async () => {
    assert.equal((await kubectlOk(['get', '--raw', '/readyz'])).trim(), 'ok');
    const url = `https://${env.get('CLUSTER_APISERVER_IP')}:${env.get('CLUSTER_APISERVER_PORT')}/readyz`;
    const anon = await runOk('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(CLUSTER_DIR, 'pki', 'ca.crt'), url]);
    assert.equal(anon.stdout, '401');
  });

  test('the API server and kubelet report the pinned Kubernetes version', async () => {
    const versions = (await readFile(join(CLUSTER_DIR, '..', '..', 'scripts', 'harness', 'versions.env'), 'utf8')).match(/^KUBERNETES_VERSION=(\S+)$/m)?.[1];
    assert.ok(versions, 'versions.env pins KUBERNETES_VERSION');
    const v = JSON.parse(await kubectlOk(['version', '-o', 'json'])) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    assert.equal(v.clientVersion.gitVersion, versions);
    assert.equal(v.serverVersion.gitVersion, versions);
    assert.equal((await kubectlOk(['get', 'node', nodeName, '-o', 'jsonpath={.status.nodeInfo.kubeletVersion}'])).trim(), versions);
  });

  test('the controller-manager gives the Node a pod CIDR from the cluster CIDR', async () => {
    const cidr = (await kubectlOk(['get', 'node', nodeName, '-o', 'jsonpath={.spec.podCIDR}'])).trim();
    const [clusterNet] = (env.get('CLUSTER_POD_CIDR') ?? '').split('/');
    const prefix = (clusterNet ?? '').split('.').slice(0, 2).join('.');
    assert.match(cidr, new RegExp(`^${prefix.replaceAll('.', '\\.')}\\.\\d+\\.0/${env.get('CLUSTER_NODE_CIDR_MASK')}$`));
    const ip = (await kubectlOk(['get', 'node', nodeName, '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}'])).trim();
    assert.equal(ip, env.get('CLUSTER_NODE_IP'));
  });

  test('the Node stays NotReady with the network named as the reason while no CNI plugin is installed', async () => {
    const ready = await waitFor(
      'the Ready condition',
      async () => {
        const c = JSON.parse(await kubectlOk(['get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")]}'])) as { status?: string; message?: string };
        return c.message ? c : undefined;
      },
      60_000,
      500,
    );
    assert.equal(ready.status, 'False');
    assert.match(ready.message ?? '', /network/i);
  });

  test('RBAC lets the admin do everything and keeps the scheduler and the node to their roles', async () => {
    assert.equal((await kubectlOk(['auth', 'can-i', '*', '*'])).trim(), 'yes');
    const scheduler = await kubectl(['auth', 'can-i', 'delete', 'nodes', '--as', 'system:kube-scheduler']);
    assert.match(scheduler.stdout, /^no\b/);
    const node = await kubectl(['auth', 'can-i', 'list', 'secrets', '-A', '--as', `system:node:${nodeName}`, '--as-group', 'system:nodes']);
    assert.match(node.stdout, /^no\b/);
  });

  test('a host-network busybox pod runs from the locally imported image, and exec and logs work', async () => {
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod, namespace: 'default' },
      spec: {
        hostNetwork: true,
        enableServiceLinks: false,
        terminationGracePeriodSeconds: 0,
        tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoSchedule' }],
        containers: [{ name: 'box', image: 'docker.io/library/busybox:1.36', command: ['sh', '-c', 'echo started-on-$(hostname); exec sleep 3600'] }],
      },
    };
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(manifest) });
    await kubectlOk(['wait', '--for=condition=Ready', `pod/${pod}`, '--timeout=120s'], { timeoutMs: 130_000 });
    const hostname = (await runOk('hostname', [])).stdout.trim();
    assert.equal((await kubectlOk(['exec', pod, '--', 'hostname'])).trim(), hostname);
    assert.match(await kubectlOk(['logs', pod]), new RegExp(`started-on-${hostname}`));
    const pulled = (await kubectlOk(['get', 'pod', pod, '-o', 'jsonpath={.status.containerStatuses[0].imageID}'])).trim();
    assert.match(pulled, /^(docker\.io\/library\/busybox@)?sha256:[0-9a-f]{64}$/);
    // The pod keeps running: down.sh must remove it with its mounts and cgroups.
  });

  test('running up.sh again while the cluster runs changes nothing', async () => {
    const before = await readFile(join(CLUSTER_DIR, 'run', 'kube-apiserver.pid'), 'utf8');
    await clusterUp({ podnet: false });
    assert.equal(await readFile(join(CLUSTER_DIR, 'run', 'kube-apiserver.pid'), 'utf8'), before);
  });

  test('up.sh after containerd and kubelet died tears the rest down, its shims included, and starts afresh', async () => {
    const shimsBefore = await clusterShims();
    assert.ok(shimsBefore.length > 0, 'the host-network pod has a shim');
    const podBefore = await podProcesses();
    assert.ok(podBefore.length >= 2, 'the pod has a sandbox and a container process');
    const socketsBefore = await shimSockets();
    assert.ok(socketsBefore.length > 0, 'the shim has a socket under /run/containerd/s');
    for (const name of ['kubelet', 'containerd']) {
      const [pid] = (await readFile(join(CLUSTER_DIR, 'run', `${name}.pid`), 'utf8')).trim().split(' ');
      process.kill(Number(pid), 'SIGKILL');
      await waitFor(`${name} (pid ${pid}) to exit`, async () => ((await run('kill', ['-0', pid ?? ''])).code !== 0 ? true : undefined), 10_000, 50);
    }
    await clusterUp({ podnet: false });
    assert.equal((await kubectlOk(['get', '--raw', '/readyz'])).trim(), 'ok');
    await kubectlOk(['wait', '--for=jsonpath={.spec.podCIDR}', `node/${nodeName}`, '--timeout=60s'], { timeoutMs: 70_000 });
    const alive = (await clusterShims()).filter((p) => shimsBefore.includes(p));
    assert.deepEqual(alive, [], 'the old shims are gone');
    const survivors = (await podProcesses()).filter((p) => podBefore.includes(p));
    assert.deepEqual(survivors, [], 'the old pod processes are gone');
    const staleSockets = (await Promise.all(socketsBefore.map(async (p) => ((await run('test', ['-e', p])).code === 0 ? p : '')))).filter((p) => p !== '');
    assert.deepEqual(staleSockets, [], "the killed shims' sockets are removed");
    assert.equal((await kubectlOk(['get', 'pods', '-A', '-o', 'name'])).trim(), '', 'the new cluster starts empty');
  });

  test("another checkout's up.sh refuses to start and its down.sh leaves the running cluster alone", async () => {
    const other = await mkdtemp(join(tmpdir(), 'pnco-'));
    try {
      await cp(join(REPO_ROOT, 'scripts'), join(other, 'scripts'), { recursive: true });
      const up = await run('bash', [join(other, 'scripts', 'cluster', 'up.sh')], { timeoutMs: 600_000 });
      assert.notEqual(up.code, 0);
      assert.match(up.stderr, /was not made from this checkout/);
      await runOk('bash', [join(other, 'scripts', 'cluster', 'down.sh')], { timeoutMs: 300_000 });
      assert.ok((await listNetns()).includes(env.get('CLUSTER_NETNS') ?? '-'), 'the netns is still there');
      assert.equal((await kubectlOk(['get', '--raw', '/readyz'])).trim(), 'ok');
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  test('down.sh leaves no process, namespace, link, mount or changed sysctl behind, also when run twice', async () => {
    await clusterDown();
    await clusterDown();
    assert.ok(!(await listNetns()).includes(env.get('CLUSTER_NETNS') ?? ''), 'the control-plane netns is gone');
    const links = await hostLinks();
    assert.ok(!links.has(env.get('CLUSTER_VETH_NODE') ?? ''), 'the veth is gone');
    assert.deepEqual(await clusterMounts(), []);
    assert.deepEqual(await clusterProcesses(), []);
    assert.deepEqual(await sysctls(), sysctlsBefore);
    assert.deepEqual(await kubeChains(), iptablesBefore);
    const cgroups = (await run('sh', ['-c', 'ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null'])).stdout.trim();
    assert.equal(cgroups, '', 'kubelet\'s kubepods cgroups are gone');
    const logLinks = (await run('sh', ['-c', `ls -l /var/log/containers/ 2>/dev/null | grep -F ${CLUSTER_DIR}/ || true`])).stdout.trim();
    assert.equal(logLinks, '', 'no /var/log/containers link points into build/cluster');
    const routes = (await runOk('ip', ['-4', 'route', 'show', 'type', 'blackhole'])).stdout;
    assert.ok(!routes.includes(env.get('CLUSTER_SERVICE_CIDR') ?? '-'), 'the Service-range blackhole route is gone');
  });
});
