/**
 * podnet on the real one-node cluster: `make cluster` applies deploy/ (with
 * the harness's two knobs, scripts/cluster/lib.sh) and kubelet calls the
 * podnet entry point through containerd's CRI. This file owns the cluster's
 * lifecycle: it tears down whatever runs, brings the cluster up once, runs
 * its tests in order against it, and always tears it down.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, hostLinks } from '../e2e/tools/index.js';
import { run, runOk, sleep, startBackground, waitFor, type Background } from '../e2e/tools/proc.js';
import { CLUSTER_DIR, KUBECONFIG, clusterDown, clusterEnv, clusterStart, clusterUp, kubectl, kubectlOk, recordedPid } from './tools/cluster.js';
import { prometheusBin } from './tools/prometheus.js';

const NS = 'kube-system';
const BUSYBOX = 'docker.io/library/busybox:1.36';
const METRICS = 'http://127.0.0.1:19962/metrics';
const PODNET_PATHS = ['/sys/fs/bpf/podnet', '/var/lib/podnet', '/run/podnet'];
const CNI_BIN = join(CLUSTER_DIR, 'cni', 'bin');
const CNI_CONF = join(CLUSTER_DIR, 'cni', 'net.d');
const REPLICAS = 4;

interface EndpointInfo { containerId: string; podNamespace?: string; podName?: string; ip: string; hostIfName: string; state: string }
interface IpamInfo { pool: string; used: number; allocations: Array<{ ip: string; containerId: string }> }
interface PodItem {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  status: { phase?: string; podIP?: string; containerStatuses?: Array<{ restartCount: number; ready: boolean }> };
}

/** The running agent pod (not one being deleted). */
async function agentPod(): Promise<PodItem> {
  const list = JSON.parse(await kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=podnet', '-o', 'json'])) as { items: PodItem[] };
  const live = list.items.filter((p) => !p.metadata.deletionTimestamp && p.status.phase === 'Running');
  assert.equal(live.length, 1, `one running agent pod (have ${list.items.map((p) => `${p.metadata.name}:${p.status.phase}`).join(', ')})`);
  return live[0]!;
}

/** `podnet ARGS -o json` inside the agent pod, parsed. */
async function podnetJson<T>(...args: string[]): Promise<T> {
  const pod = await agentPod();
  return JSON.parse(await kubectlOk(['-n', NS, 'exec', pod.metadata.name, '-c', 'agent', '--', 'podnet', ...args, '-o', 'json'])) as T;
}

async function boxPods(): Promise<PodItem[]> {
  const list = JSON.parse(await kubectlOk(['get', 'pods', '-l', 'app=pn-box', '-o', 'json'])) as { items: PodItem[] };
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

/** One sample's value from Prometheus text, by name and labels (any label order). */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

/** A k8s metric the agent must export; fails naming it when it is missing. */
function k8sMetric(text: string, name: string): number {
  const v = metric(text, name, { resource: 'nodes' });
  assert.ok(v !== undefined, `the agent exports ${name}{resource="nodes"} (not found on ${METRICS})`);
  return v;
}

async function agentMetrics(): Promise<string> {
  const res = await fetch(METRICS, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200);
  return res.text();
}

/** The program ids of the tc filters on a host veth (ingress and egress). */
async function tcProgramIds(dev: string): Promise<string[]> {
  const ids: string[] = [];
  for (const dir of ['ingress', 'egress']) {
    const out = (await runOk('tc', ['filter', 'show', 'dev', dev, dir])).stdout;
    for (const m of out.matchAll(/\bid (\d+)/g)) ids.push(`${dir}:${m[1]}`);
  }
  return ids.sort();
}

/** Every path under a directory, relative, sorted. */
async function treeOf(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

/** The host links named like podnet's host veths. */
async function podnetVeths(): Promise<string[]> {
  return [...(await hostLinks()).keys()].filter((n) => /^pn[0-9a-f]{12}$/.test(n)).sort();
}

async function bpffsShared(): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const line = info.split('\n').find((l) => l.split(' ')[4] === '/sys/fs/bpf');
  return line !== undefined && / shared:\d+/.test(line.split(' - ')[0] ?? '');
}

/**
 * Waits until a process has exited. The cluster's processes are orphans and
 * this machine's PID 1 does not reap them, so a zombie counts as exited.
 */
async function waitExited(name: string, pid: number, timeoutMs: number): Promise<void> {
  await waitFor(`${name} (pid ${pid}) to exit`, async () => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return stat === '' || state === 'Z' || state === 'X' ? true : undefined;
  }, timeoutMs, 200);
}

function podManifest(name: string, command: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { 'podnet.test/stream': 'yes' } },
    spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 0, enableServiceLinks: false, containers: [{ name: 'box', image: BUSYBOX, command: ['sh', '-c', command] }], ...extra },
  });
}

describe('podnet on a real one-node cluster', () => {
  let env: ReadonlyMap<string, string> = new Map();
  let nodeName = '';
  let podCidr = '';
  let bpffsSharedBefore = false;
  /** Every host veth an endpoint ever had in this run: none may outlive the tests. */
  const seenVeths = new Set<string>();
  let prometheus: Background | undefined;
  let promDir = '';

  before(async () => {
    env = await clusterEnv();
    await clusterDown();
    bpffsSharedBefore = await bpffsShared();
    for (const p of PODNET_PATHS) assert.ok(!existsSync(p), `${p} does not exist before the cluster starts (another podnet runs on this machine?)`);
    await clusterUp();
    nodeName = (await kubectlOk(['get', 'nodes', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    podCidr = (await kubectlOk(['get', 'node', nodeName, '-o', 'jsonpath={.spec.podCIDR}'])).trim();
  });

  after(async () => {
    if (prometheus) await prometheus.stop();
    if (promDir) await rm(promDir, { recursive: true, force: true });
    // No kubectl here: once the namespace is gone the API server's address
    // is routed off the machine.
    await clusterDown();
  });

  test('make cluster leaves a Ready Node and a ready podnet DaemonSet applied from deploy/ with only the documented knobs changed', async () => {
    const ds = JSON.parse(await kubectlOk(['-n', NS, 'get', 'daemonset', 'podnet', '-o', 'json'])) as {
      status: { desiredNumberScheduled: number; numberReady: number };
      spec: { template: { spec: { containers: Array<{ name: string; env?: Array<{ name: string; value?: string }> }>; volumes: Array<{ name: string; hostPath?: { path: string } }> } } };
    };
    assert.equal(ds.status.desiredNumberScheduled, 1);
    assert.equal(ds.status.numberReady, 1);
    const ready = (await kubectlOk(['get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).trim();
    assert.equal(ready, 'True');
    const agent = ds.spec.template.spec.containers.find((c) => c.name === 'agent');
    const envOf = (n: string): string | undefined => agent?.env?.find((e) => e.name === n)?.value;
    assert.equal(envOf('KUBERNETES_SERVICE_HOST'), env.get('CLUSTER_APISERVER_IP'));
    assert.equal(envOf('KUBERNETES_SERVICE_PORT'), env.get('CLUSTER_APISERVER_PORT'));
    const hostPath = (n: string): string | undefined => ds.spec.template.spec.volumes.find((v) => v.name === n)?.hostPath?.path;
    assert.equal(hostPath('cni-bin'), CNI_BIN);
    assert.equal(hostPath('cni-conf'), CNI_CONF);
    assert.equal(hostPath('bpffs'), '/sys/fs/bpf');
    assert.equal(hostPath('state'), '/var/lib/podnet');
    // The init container installed the shipped conflist and the entry point into containerd's CNI dirs.
    assert.equal(await readFile(join(CNI_CONF, '10-podnet.conflist'), 'utf8'), await readFile(join(REPO_ROOT, 'deploy', '10-podnet.conflist'), 'utf8'));
    assert.ok(existsSync(join(CNI_BIN, 'podnet')), 'the entry point is in the CNI bin dir');
    assert.ok(!existsSync('/etc/cni/net.d/10-podnet.conflist') || (await run('grep', ['-q', CLUSTER_DIR, '/etc/cni/net.d/10-podnet.conflist'])).code !== 0, 'nothing was installed into /etc/cni/net.d');
  });

  test("the agent's pool is the Node's spec.podCIDR from the controller-manager", async () => {
    assert.match(podCidr, /^\d+\.\d+\.\d+\.0\/\d+$/);
    const status = await podnetJson<{ ready: boolean; podCidr: string; nodeName: string }>('status');
    assert.equal(status.ready, true);
    assert.equal(status.podCidr, podCidr);
    assert.equal(status.nodeName, nodeName);
  });

  test('a Deployment of busybox pods gets addresses from the pool, pods reach each other and the node, and exec, logs and podnet endpoints work', async () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'pn-box', namespace: 'default' },
      spec: {
        replicas: REPLICAS,
        selector: { matchLabels: { app: 'pn-box' } },
        template: {
          metadata: { labels: { app: 'pn-box' } },
          spec: { terminationGracePeriodSeconds: 0, enableServiceLinks: false, containers: [{ name: 'box', image: BUSYBOX, command: ['sh', '-c', 'echo started-$(hostname); exec sleep 3600'] }] },
        },
      },
    };
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(deployment) });
    await kubectlOk(['rollout', 'status', 'deployment/pn-box', '--timeout=180s'], { timeoutMs: 190_000 });
    const pods = await boxPods();
    assert.equal(pods.length, REPLICAS);
    const prefix = podCidr.split('.').slice(0, 3).join('.') + '.';
    const ips = pods.map((p) => p.status.podIP ?? '');
    for (const ip of ips) assert.ok(ip.startsWith(prefix), `pod address ${ip} is in the pool ${podCidr}`);
    assert.equal(new Set(ips).size, REPLICAS, 'every pod has its own address');
    const nodeIp = env.get('CLUSTER_NODE_IP') ?? '';
    for (const p of pods) {
      for (const target of [...ips.filter((ip) => ip !== p.status.podIP), nodeIp]) {
        const ping = await kubectl(['exec', p.metadata.name, '--', 'ping', '-c', '1', '-W', '2', target], { timeoutMs: 30_000 });
        assert.equal(ping.code, 0, `${p.metadata.name} pings ${target}: ${ping.stdout}${ping.stderr}`);
      }
      assert.equal((await kubectlOk(['exec', p.metadata.name, '--', 'hostname'])).trim(), p.metadata.name);
      assert.match(await kubectlOk(['logs', p.metadata.name]), new RegExp(`started-${p.metadata.name}`));
    }
    const eps = await podnetJson<EndpointInfo[]>('endpoints');
    for (const p of pods) {
      const ep = eps.find((e) => e.podName === p.metadata.name);
      assert.ok(ep, `podnet endpoints lists ${p.metadata.name}`);
      assert.equal(ep.podNamespace, 'default');
      assert.equal(ep.ip, p.status.podIP);
      assert.equal(ep.state, 'ready');
      seenVeths.add(ep.hostIfName);
    }
    const ipam = await podnetJson<IpamInfo>('ipam');
    assert.equal(ipam.pool, podCidr);
    assert.deepEqual(ipam.allocations.map((a) => a.ip).sort(), [...ips].sort());
  });

  test('restarting kubelet keeps the pods, their sandboxes and their addresses', async () => {
    const before = new Map((await boxPods()).map((p) => [p.metadata.name, p.status.podIP]));
    const epsBefore = (await podnetJson<EndpointInfo[]>('endpoints')).map((e) => `${e.podName} ${e.containerId} ${e.ip}`).sort();
    const pid = await recordedPid('kubelet');
    process.kill(pid, 'SIGTERM');
    await waitExited('kubelet', pid, 30_000);
    await clusterStart('kubelet');
    await kubectlOk(['wait', '--for=condition=Ready', `node/${nodeName}`, '--timeout=120s'], { timeoutMs: 130_000 });
    // Give kubelet time to resync its pods: a lost sandbox would be recreated now.
    await sleep(10_000);
    const after = await boxPods();
    assert.deepEqual(new Map(after.map((p) => [p.metadata.name, p.status.podIP])), before);
    for (const p of after) assert.equal(p.status.containerStatuses?.[0]?.restartCount, 0, `${p.metadata.name} was not restarted`);
    const epsAfter = (await podnetJson<EndpointInfo[]>('endpoints')).map((e) => `${e.podName} ${e.containerId} ${e.ip}`).sort();
    assert.deepEqual(epsAfter, epsBefore);
  });

  test("deleting a pod frees its address and its host veth through kubelet's CNI DEL", async () => {
    const [victim] = await boxPods();
    assert.ok(victim);
    const ep = (await podnetJson<EndpointInfo[]>('endpoints')).find((e) => e.podName === victim.metadata.name);
    assert.ok(ep, 'the pod has an endpoint');
    await kubectlOk(['delete', 'pod', victim.metadata.name, '--wait=true', '--timeout=60s'], { timeoutMs: 70_000 });
    await waitFor('the deleted pod\'s allocation to be freed', async () => {
      const ipam = await podnetJson<IpamInfo>('ipam');
      return ipam.allocations.some((a) => a.containerId === ep.containerId) ? undefined : true;
    }, 60_000, 500);
    assert.ok(!(await hostLinks()).has(ep.hostIfName), `host veth ${ep.hostIfName} is gone`);
    const eps = await podnetJson<EndpointInfo[]>('endpoints');
    assert.ok(!eps.some((e) => e.containerId === ep.containerId), 'the endpoint is gone');
    // The Deployment replaces it with a new pod and address.
    await kubectlOk(['rollout', 'status', 'deployment/pn-box', '--timeout=120s'], { timeoutMs: 130_000 });
    for (const e of await podnetJson<EndpointInfo[]>('endpoints')) seenVeths.add(e.hostIfName);
  });

  test('deleting the agent pod during a pod-to-pod TCP stream: the DaemonSet recreates it, the stream survives and the new agent adopts the pinned datapath', async () => {
    try {
      await agentRestartDuringStream();
    } finally {
      await kubectl(['delete', 'pod', '-l', 'podnet.test/stream=yes', '--wait=true', '--timeout=60s'], { timeoutMs: 70_000 });
    }
  });

  async function agentRestartDuringStream(): Promise<void> {
    // Server: one connection, every line to its log; its stdin is a fifo
    // the shell holds open, so busybox nc does not end at stdin's EOF.
    // Client: a line every 100 ms until /tmp/stop exists (at most 3000
    // lines, 5 minutes), then EOF ends both ends cleanly.
    const server = 'mkfifo /tmp/in; nc -l -p 5000 </tmp/in & exec 3>/tmp/in; wait $!; echo server-exit-$?';
    await kubectlOk(['apply', '-f', '-'], { input: podManifest('pn-stream-server', server) });
    await kubectlOk(['wait', '--for=condition=Ready', 'pod/pn-stream-server', '--timeout=120s'], { timeoutMs: 130_000 });
    const serverIp = (await kubectlOk(['get', 'pod', 'pn-stream-server', '-o', 'jsonpath={.status.podIP}'])).trim();
    const loop = `sleep 2; i=0; while [ $i -lt 3000 ] && [ ! -e /tmp/stop ]; do echo line-$i; i=$((i+1)); sleep 0.1; done | nc ${serverIp} 5000; echo client-exit-$?`;
    await kubectlOk(['apply', '-f', '-'], { input: podManifest('pn-stream-client', loop) });
    await kubectlOk(['wait', '--for=condition=Ready', 'pod/pn-stream-client', '--timeout=120s'], { timeoutMs: 130_000 });
    const linesAt = async (): Promise<number> => (await kubectlOk(['logs', 'pn-stream-server'])).split('\n').filter((l) => l.startsWith('line-')).length;
    await waitFor('the stream to start', async () => ((await linesAt()) >= 10 ? true : undefined), 30_000, 500);

    const clientEp = (await podnetJson<EndpointInfo[]>('endpoints')).find((e) => e.podName === 'pn-stream-client');
    assert.ok(clientEp, 'the client has an endpoint');
    seenVeths.add(clientEp.hostIfName);
    for (const e of await podnetJson<EndpointInfo[]>('endpoints')) seenVeths.add(e.hostIfName);
    const progsBefore = await tcProgramIds(clientEp.hostIfName);
    assert.ok(progsBefore.length >= 2, `tc programs on ${clientEp.hostIfName}: ${progsBefore.join(', ')}`);
    const pinsBefore = await treeOf('/sys/fs/bpf/podnet');
    const old = await agentPod();

    await kubectlOk(['-n', NS, 'delete', 'pod', old.metadata.name, '--wait=true', '--timeout=60s'], { timeoutMs: 70_000 });
    const linesWhileGone = await linesAt();
    await kubectlOk(['-n', NS, 'rollout', 'status', 'daemonset/podnet', '--timeout=180s'], { timeoutMs: 190_000 });
    await waitFor('a new ready agent pod', async () => {
      const p = await agentPod().catch(() => undefined);
      return p && p.metadata.uid !== old.metadata.uid && p.status.containerStatuses?.[0]?.ready ? p : undefined;
    }, 120_000, 500);
    await waitFor('more lines after the new agent started', async () => ((await linesAt()) >= linesWhileGone + 20 ? true : undefined), 30_000, 500);

    assert.deepEqual(await tcProgramIds(clientEp.hostIfName), progsBefore, 'the same programs are attached: no datapath reload');
    assert.deepEqual(await treeOf('/sys/fs/bpf/podnet'), pinsBefore, 'the new agent adopted the pins as they were');
    const eps = await podnetJson<EndpointInfo[]>('endpoints');
    assert.ok(eps.some((e) => e.containerId === clientEp.containerId && e.state === 'ready'), 'the new agent knows the client endpoint');

    await kubectlOk(['exec', 'pn-stream-client', '--', 'sh', '-c', ': >/tmp/stop']);
    await kubectlOk(['wait', '--for=jsonpath={.status.phase}=Succeeded', 'pod/pn-stream-client', '--timeout=60s'], { timeoutMs: 70_000 });
    await kubectlOk(['wait', '--for=jsonpath={.status.phase}=Succeeded', 'pod/pn-stream-server', '--timeout=60s'], { timeoutMs: 70_000 });
    assert.match(await kubectlOk(['logs', 'pn-stream-client']), /client-exit-0/);
    const serverLog = await kubectlOk(['logs', 'pn-stream-server']);
    assert.match(serverLog, /server-exit-0/);
    const lines = serverLog.split('\n').filter((l) => l.startsWith('line-'));
    assert.ok(lines.length > linesWhileGone + 20, `lines kept flowing (${lines.length})`);
    assert.deepEqual(lines, lines.map((_, i) => `line-${i}`), 'every line arrived, in order, on one connection');
  }

  /** Metrics scraped before the API server restart, for the test after it. */
  let metricsBeforeRestart = '';
  let changedAt = 0;

  test('the agent rides out an API server restart: it retries while the server is down, reconnects, and stays ready with the same pool', async () => {
    metricsBeforeRestart = await agentMetrics();
    const agent = (await agentPod()).metadata.name;
    const pid = await recordedPid('kube-apiserver');
    const stoppedAt = new Date().toISOString();
    process.kill(pid, 'SIGTERM');
    // It drains for about 60 s before it exits (docs/cluster.md).
    await waitExited('kube-apiserver', pid, 120_000);
    await sleep(3_000);
    await clusterStart('kube-apiserver');
    const restartedAt = Date.now();
    // The informer logs each failed list or watch; once reconnected it is quiet.
    const retries = (await kubectlOk(['-n', NS, 'logs', agent, '-c', 'agent', `--since-time=${stoppedAt}`])).split('\n').filter((l) => /nodes failed; retrying/.test(l));
    assert.ok(retries.length >= 1, 'the agent noticed the API server was gone and retried');
    await sleep(Math.max(0, restartedAt + 35_000 - Date.now()));
    const quietSince = new Date(Date.now() - 5_000).toISOString();
    const late = (await kubectlOk(['-n', NS, 'logs', agent, '-c', 'agent', `--since-time=${quietSince}`])).split('\n').filter((l) => /failed; retrying/.test(l));
    assert.deepEqual(late, [], 'no more failures 30 s after the API server is back (its backoff is at most 30 s)');
    changedAt = Math.floor(Date.now() / 1000);
    await kubectlOk(['label', 'node', nodeName, `podnet.test/after-restart=${changedAt}`, '--overwrite']);
    const status = await podnetJson<{ ready: boolean; podCidr: string }>('status');
    assert.equal(status.ready, true);
    assert.equal(status.podCidr, podCidr);
    assert.equal((await agentPod()).metadata.name, agent, 'the agent pod was not restarted');
  });

  test("the agent's metrics count the watch restart and show the Node change made after the API server came back", async () => {
    assert.ok(changedAt > 0, 'the API server restart test ran');
    const restartsBefore = k8sMetric(metricsBeforeRestart, 'podnet_k8s_watch_restarts_total');
    const seen = await waitFor('the agent to see the Node change', async () => {
      const m = await agentMetrics();
      const last = metric(m, 'podnet_k8s_last_event_timestamp_seconds', { resource: 'nodes' });
      return last !== undefined && last >= changedAt ? m : undefined;
    }, 60_000, 1_000).catch(async (err: Error) => {
      const m = await agentMetrics();
      throw new Error(`${err.message}; podnet_k8s_last_event_timestamp_seconds{resource="nodes"} is ${metric(m, 'podnet_k8s_last_event_timestamp_seconds', { resource: 'nodes' })}, the change was at ${changedAt}`);
    });
    assert.ok(k8sMetric(seen, 'podnet_k8s_watch_restarts_total') > restartsBefore, 'the watch restart is counted');
    assert.ok(k8sMetric(seen, 'podnet_k8s_relists_total') >= k8sMetric(metricsBeforeRestart, 'podnet_k8s_relists_total'));
    assert.equal(k8sMetric(seen, 'podnet_k8s_synced'), 1);
    await kubectlOk(['label', 'node', nodeName, 'podnet.test/after-restart-']);
  });

  test('the ServiceAccount may read Nodes, Services, EndpointSlices and ServiceCIDRs and nothing more', async () => {
    const as = `--as=system:serviceaccount:${NS}:podnet`;
    const can = async (...args: string[]): Promise<string> => ((await kubectl(['auth', 'can-i', ...args, as])).stdout.trim().split(/\s/)[0] ?? '');
    for (const resource of ['nodes', 'services', 'endpointslices.discovery.k8s.io', 'servicecidrs.networking.k8s.io']) {
      for (const verb of ['get', 'list', 'watch']) assert.equal(await can(verb, resource, ...(resource === 'nodes' || resource.startsWith('servicecidrs') ? [] : ['-A'])), 'yes', `${verb} ${resource}`);
    }
    assert.equal(await can('create', 'pods', '-n', 'default'), 'no');
    assert.equal(await can('get', 'secrets', '-n', NS), 'no');
    assert.equal(await can('patch', 'nodes'), 'no');
    assert.equal(await can('update', 'services', '-n', 'default'), 'no');
    assert.equal(await can('create', 'endpointslices.discovery.k8s.io', '-n', 'default'), 'no');
    assert.equal(await can('list', 'pods', '-A'), 'no');
    assert.equal(await can('delete', 'nodes'), 'no');
  });

  test("a real Prometheus finds the agent through the API server with deploy/prometheus/scrape-config.yaml and scrapes its endpoints", async () => {
    const bin = await prometheusBin();
    promDir = await mkdtemp(join(tmpdir(), 'pn-prom-'));
    const shipped = await readFile(join(REPO_ROOT, 'deploy', 'prometheus', 'scrape-config.yaml'), 'utf8');
    // The shipped job as it is, run outside the cluster: a kubeconfig for
    // the API server, and a short interval so the test need not wait 30 s.
    const config = shipped
      .replace(/^(\s*)- role: pod\n/m, (m, indent: string) => `${m}${indent}  kubeconfig_file: ${KUBECONFIG}\n`)
      .replace(/scrape_interval: 30s/, 'scrape_interval: 2s');
    assert.notEqual(config, shipped);
    await writeFile(join(promDir, 'prometheus.yml'), config);
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer().listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => resolve(typeof a === 'object' && a ? a.port : 0)); });
      s.on('error', reject);
    });
    prometheus = startBackground(bin, ['--config.file', join(promDir, 'prometheus.yml'), '--storage.tsdb.path', join(promDir, 'data'), '--web.listen-address', `127.0.0.1:${port}`], { timeoutMs: 600_000 });
    const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(5_000) });
      const body = (await res.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      return body.data.result;
    };
    const up = await waitFor('Prometheus to scrape the agent', async () => {
      const r = await query('up{job="podnet"}').catch(() => []);
      return r.length > 0 && r[0]?.value[1] === '1' ? r : undefined;
    }, 90_000, 1_000).catch(async (err: Error) => {
      const res = await prometheus?.stop();
      prometheus = undefined;
      throw new Error(`${err.message}; prometheus log:\n${res?.stderr.slice(-3000)}`);
    });
    assert.equal(up.length, 1);
    const agent = await agentPod();
    assert.equal(up[0]?.metric['pod'], agent.metadata.name);
    assert.equal(up[0]?.metric['node'], nodeName);
    assert.equal(up[0]?.metric['namespace'], NS);
    assert.equal(up[0]?.metric['instance'], `${env.get('CLUSTER_NODE_IP')}:19962`);
    const ready = await query('podnet_endpoints{job="podnet",state="ready"}');
    const pods = await boxPods();
    assert.equal(Number(ready[0]?.value[1]), pods.length, 'podnet_endpoints equals the pods on the node');
    await prometheus.stop();
    prometheus = undefined;
  });

  test('scaling the Deployment to zero leaves no endpoint, allocation or host veth', async () => {
    await kubectlOk(['scale', 'deployment/pn-box', '--replicas=0']);
    await waitFor('the pods to be gone', async () => ((await kubectlOk(['get', 'pods', '-l', 'app=pn-box', '-o', 'name'])).trim() === '' ? true : undefined), 120_000, 500);
    await waitFor('every allocation to be freed', async () => ((await podnetJson<IpamInfo>('ipam')).allocations.length === 0 ? true : undefined), 60_000, 500);
    assert.deepEqual(await podnetJson<EndpointInfo[]>('endpoints'), []);
    const left = (await podnetVeths()).filter((v) => seenVeths.has(v));
    assert.deepEqual(left, [], 'no host veth of any pod is left');
    assert.ok(seenVeths.size >= REPLICAS + 3, `the run saw its pods' veths (${seenVeths.size})`);
    await kubectlOk(['delete', 'deployment', 'pn-box', '--wait=true']);
  });

  test('kubectl delete -f deploy/ and podnet cleanup leave the node as it was', async () => {
    await kubectlOk(['delete', '-f', join(REPO_ROOT, 'deploy'), '--wait=true', '--timeout=120s'], { timeoutMs: 130_000 });
    await waitFor('the agent pod to be gone', async () => ((await kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=podnet', '-o', 'name'])).trim() === '' ? true : undefined), 120_000, 500);
    // deploy/README.md, "Uninstall": podnet cleanup on the node, with the cluster's CNI dirs.
    const dry = await runOk('node', [join(REPO_ROOT, 'bin', 'podnet'), 'cleanup', '--dry-run', '--cni', '--cni-conf-dir', CNI_CONF, '--cni-bin-dir', CNI_BIN]);
    assert.match(dry.stdout + dry.stderr, /\/sys\/fs\/bpf\/podnet/);
    assert.ok(existsSync('/sys/fs/bpf/podnet'), '--dry-run removed nothing');
    await runOk('node', [join(REPO_ROOT, 'bin', 'podnet'), 'cleanup', '--cni', '--cni-conf-dir', CNI_CONF, '--cni-bin-dir', CNI_BIN]);
    await rm('/run/podnet', { recursive: true, force: true });
    for (const p of PODNET_PATHS) assert.ok(!existsSync(p), `${p} is gone`);
    assert.ok(!existsSync(join(CNI_CONF, '10-podnet.conflist')), 'the conflist is gone');
    assert.ok(!existsSync(join(CNI_BIN, 'podnet')), 'the entry point is gone');
    assert.ok(existsSync(join(CNI_BIN, 'loopback')), 'the node\'s own plugins stay');
    assert.deepEqual((await podnetVeths()).filter((v) => seenVeths.has(v)), []);
  });

  test('make cluster-down removes what podnet and the harness changed on the node', async () => {
    // Put podnet back, so there is something to remove.
    await clusterUp();
    assert.ok(existsSync('/sys/fs/bpf/podnet'), 'the agent pinned its datapath again');
    await clusterDown();
    await clusterDown();
    for (const p of PODNET_PATHS) assert.ok(!existsSync(p), `${p} is gone`);
    assert.equal(await bpffsShared(), bpffsSharedBefore, "/sys/fs/bpf's propagation is as it was");
    assert.deepEqual((await podnetVeths()).filter((v) => seenVeths.has(v)), []);
    assert.ok(!existsSync(CNI_CONF), 'the CNI dirs are gone with build/cluster');
  });
});
