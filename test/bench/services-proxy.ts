/**
 * podnet's Service handling against real kube-proxy (iptables and nftables
 * mode) on the one-node cluster (scripts/cluster/up.sh, podnet from
 * deploy/), one proxy at a time, all in one run:
 *
 * 1. new-connection latency (connect + one 64-byte request/response, p50
 *    and p99) from a pod to one Service with 1, 1,000 and 10,000 Services
 *    present (the extra ones selector-less with hand-made EndpointSlices of
 *    --endpoints addresses each);
 * 2. programming time, observed in the kernel (podnet's pinned maps, the
 *    Service's KUBE-SVC chain, its nftables service chain): a full sync from
 *    a cold proxy (process start to the last Service programmed) at every
 *    size, and single endpoint changes (add, then remove, one address of one
 *    Service's EndpointSlice) from the API write;
 * 3. throughput and request/response latency pod -> ClusterIP -> pod
 *    against pod -> pod direct, runs interleaved; each run measures
 *    every backend directly and once through the ClusterIP (a stream, then
 *    an rr each), and the ClusterIP figure is set against the direct one
 *    of the backend that connection reached (same pods);
 * 4. the proxy process's RSS (VmRSS) once it has programmed every Service,
 *    and again 45 s later (settled: what it holds, not what the sync left,
 *    past the agent's first reconcile tick).
 * At the smallest size new connections are measured in --connect-rounds
 * rounds, the proxies taking turns in a rotated order each round; the
 * target compares podnet with kube-proxy iptables by the median of the
 * rounds' ratios.
 *
 * The objects are made once through the API server (batched, parallel
 * requests; the time is reported) and grow from one size to the next; each
 * size measures every proxy, the order rotated per size. For the kube-proxy
 * variants podnet's Service handling is switched off through its setting in
 * the DaemonSet, so one proxy runs at a time. Everything made is deleted at
 * the end (the namespace); the cluster is brought up when it is not running
 * and then taken down again.
 *
 *   node --import tsx test/bench/services-proxy.ts [--sizes 1,1000,10000]
 *     [--endpoints 10] [--connections 1000] [--connect-rounds 3] [--changes 5] [--traffic-runs 9]
 *     [--traffic-ms 2000] [--variants podnet,iptables,nftables]
 *     [--podnet-off-env PODNET_SERVICES=off] [--masquerade-all true|false]
 *     [--sync-timeout-s 900] [--json FILE]
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PodnetError } from '../../agent/src/errors/index.js';
import { NOISE_NOTE, fmt, formatTable, machineInfo, percentile, printJsonSummary, ratio, rotation, sleep, type Cell } from './lib/index.js';
import { intOption } from './lib/args.js';
import { KubeApi, objectPath, type KubeManifest } from './lib/kube-api.js';
import {
  BACKEND_PORT,
  BENCH_NAMESPACE,
  PORT_NAME,
  SERVICE_PORT,
  TARGET_SERVICE,
  backendPod,
  changeAddress,
  clientPod,
  extraEndpoints,
  extraService,
  extraServiceName,
  extraSlice,
  namespace,
  probeConfigMap,
  targetService,
} from './lib/services-gen.js';
import { kubeProxy, podnetFrontendCount, podnetProxy, type ServicePortRef, type ServiceProxy } from './lib/service-proxies.js';
import { KUBECONFIG, clusterDown, clusterEnv, clusterUp, kubectl, kubectlOk } from '../cluster/tools/cluster.js';
import { buildHarness, harnessBin } from '../cluster/tools/harness.js';

const VARIANTS = ['podnet', 'iptables', 'nftables'] as const;
/** How long after programming the settled RSS is read: past the agent's first 30 s reconcile tick. */
const RSS_SETTLE_MS = 45_000;
type VariantName = (typeof VARIANTS)[number];

interface Options {
  sizes: number[];
  endpoints: number;
  backends: number;
  connections: number;
  /** Rounds of new connections at the smallest size, the proxies taking turns. */
  connectRounds: number;
  changes: number;
  trafficRuns: number;
  trafficMs: number;
  variants: VariantName[];
  /** The variants that run at the largest size (default: all). */
  largestVariants: VariantName[];
  podnetOffEnv: string;
  masqueradeAll: boolean;
  syncTimeoutMs: number;
  json: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      sizes: { type: 'string', default: '1,1000,10000' },
      endpoints: { type: 'string' },
      backends: { type: 'string' },
      connections: { type: 'string' },
      'connect-rounds': { type: 'string' },
      changes: { type: 'string' },
      'traffic-runs': { type: 'string' },
      'traffic-ms': { type: 'string' },
      variants: { type: 'string', default: VARIANTS.join(',') },
      'largest-variants': { type: 'string' },
      'podnet-off-env': { type: 'string', default: 'PODNET_SERVICES=off' },
      'masquerade-all': { type: 'string', default: 'false' },
      'sync-timeout-s': { type: 'string' },
      json: { type: 'string' },
    },
    strict: true,
  });
  const sizes = (values.sizes ?? '').split(',').map((s) => intOption('sizes', s.trim(), 1));
  if (new Set(sizes).size !== sizes.length) throw new PodnetError('INVALID_ARGUMENT', `parse --sizes ${values.sizes}: a size appears twice`);
  const variants = (values.variants ?? '').split(',').map((v) => v.trim());
  const largestVariants = values['largest-variants'] ? values['largest-variants'].split(',').map((v) => v.trim()) : variants;
  for (const v of [...variants, ...largestVariants]) if (!(VARIANTS as readonly string[]).includes(v)) throw new PodnetError('INVALID_ARGUMENT', `parse --variants: ${v} is not one of ${VARIANTS.join(', ')}`);
  if (!/^[A-Z0-9_]+=\S+$/.test(values['podnet-off-env'] ?? '')) throw new PodnetError('INVALID_ARGUMENT', `parse --podnet-off-env ${values['podnet-off-env']}: must be NAME=VALUE`);
  if (!['true', 'false'].includes(values['masquerade-all'] ?? '')) throw new PodnetError('INVALID_ARGUMENT', `parse --masquerade-all ${values['masquerade-all']}: true or false`);
  return {
    sizes,
    endpoints: intOption('endpoints', values.endpoints, 10),
    backends: intOption('backends', values.backends, 3),
    connections: intOption('connections', values.connections, 1000),
    connectRounds: intOption('connect-rounds', values['connect-rounds'], 3),
    changes: intOption('changes', values.changes, 5),
    trafficRuns: intOption('traffic-runs', values['traffic-runs'], 9),
    trafficMs: intOption('traffic-ms', values['traffic-ms'], 2000, 200),
    variants: variants as VariantName[],
    largestVariants: largestVariants as VariantName[],
    podnetOffEnv: values['podnet-off-env'] as string,
    masqueradeAll: values['masquerade-all'] === 'true',
    syncTimeoutMs: intOption('sync-timeout-s', values['sync-timeout-s'], 900) * 1000,
    json: values.json,
  };
}

const log = (msg: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** What one proxy measured at one size. */
interface SizeResult {
  variant: string;
  size: number;
  /** Process start to every Service programmed, ms. */
  coldSyncMs: number;
  /** For podnet: from the DaemonSet change (restart included), ms. */
  coldSyncFromRolloutMs?: number;
  /** Datapath checks during the cold sync: how many and their median cost, ms. */
  syncChecks: number;
  syncCheckMs: number;
  rssKiB: number;
  /** RSS RSS_SETTLE_MS after every Service was programmed. */
  rssSettledKiB: number;
  /** The podnet agent's RSS with its Service handling off, beside a kube-proxy. */
  agentOffRssKiB?: number;
  connectUs: number[];
  /** The connect p50 of each round (one per size; --connect-rounds at the smallest), us. */
  connectRoundsP50: number[];
  /** API write to datapath, ms: added and removed endpoints. */
  changeAddMs: number[];
  changeRemoveMs: number[];
  changeCheckMs: number;
}

interface TrafficResult {
  variant: string;
  runs: {
    /** Direct to the backend the run's ClusterIP stream reached (clusterBackend). */
    directGbps: number;
    clusterGbps: number;
    clusterBackend: string;
    /** Direct to the first backend, whichever the ClusterIP reached (the comparison before the pairing). */
    firstBackendGbps: number;
    /** Direct to the backend the run's ClusterIP rr reached (rrBackend). */
    directRrP50Us: number;
    clusterRrP50Us: number;
    directRrP99Us: number;
    clusterRrP99Us: number;
    rrBackend: string;
    firstBackendRrP50Us: number;
    /** Every backend's direct figures of the run. */
    directGbpsByBackend: Record<string, number>;
    directRrP50UsByBackend: Record<string, number>;
  }[];
}

async function clusterRunning(): Promise<boolean> {
  const r = await kubectl(['get', '--raw', '/readyz'], { timeoutMs: 15_000 }).catch(() => undefined);
  return r?.code === 0;
}

/** Runs the probe program in the client pod; resolves with its JSON answer. */
async function probe(args: readonly string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const r = await kubectl(['-n', BENCH_NAMESPACE, 'exec', 'pn-bench-client', '--', '/usr/bin/node', '/probe/svc-probe.cjs', ...args], { timeoutMs });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown>;
  try {
    out = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new PodnetError('BENCH_FAILED', `probe ${args.join(' ')}: exit ${r.code}, no JSON answer: ${(r.stdout + r.stderr).trim().slice(-300)}`);
  }
  if (typeof out['error'] === 'string') throw new PodnetError('BENCH_FAILED', `probe ${args.join(' ')}: ${out['error']}`);
  return out;
}

function sameSet(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Polls `check` back to back (at least `intervalMs` apart) until it is true; returns when, and the check costs. */
async function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs: number): Promise<{ at: number; costs: number[] }> {
  const deadline = performance.now() + timeoutMs;
  const costs: number[] = [];
  for (;;) {
    const t0 = performance.now();
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    const t1 = performance.now();
    costs.push(t1 - t0);
    if (ok) return { at: t1, costs };
    if (t1 > deadline) throw new PodnetError('TIMEOUT', `wait for ${what}: not seen within ${Math.round(timeoutMs / 1000)} s`);
    const wait = intervalMs - (t1 - t0);
    if (wait > 0) await sleep(wait);
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const env = await clusterEnv();
  const clusterCidr = env.get('CLUSTER_POD_CIDR') ?? '10.221.0.0/16';
  const weStarted = !(await clusterRunning());
  let clusterUpMs: number | undefined;
  if (weStarted) {
    log('bringing the cluster up (make cluster)');
    const t0 = performance.now();
    await clusterUp();
    clusterUpMs = performance.now() - t0;
  }
  const api = await KubeApi.fromKubeconfig(KUBECONFIG);
  const k = (args: readonly string[], timeoutMs = 60_000): Promise<string> => kubectlOk(args, { timeoutMs });
  const nodeName = (await k(['get', 'nodes', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
  const image = `podnet.local/podnet-agent:${(JSON.parse(await readFile(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version}`;
  const kubeProxyBin = harnessBin(await buildHarness(['kubernetes']), 'kube-proxy');

  const podnet = podnetProxy({ bpffs: '/sys/fs/bpf/podnet', offEnv: opts.podnetOffEnv, kubectl: k, daemonSet: { namespace: 'kube-system', name: 'podnet' } });
  const notes: string[] = [];
  let podnetServices = false;
  const podnetWhy = opts.variants.includes('podnet') ? await podnet.unavailable() : 'not selected';
  if (podnetWhy === undefined) podnetServices = true;
  else if (opts.variants.includes('podnet')) notes.push(`podnet variant skipped: ${podnetWhy}`);
  // Before a kube-proxy starts and after it stopped: podnet must not translate Services meanwhile.
  const podnetOff = async (): Promise<void> => {
    if (podnetServices) await podnet.off();
    const n = podnetFrontendCount('/sys/fs/bpf/podnet');
    if (n > 0) notes.push(`podnet's pn_services held ${n} frontends while its Service handling was off`);
  };
  const proxies = new Map<VariantName, ServiceProxy>();
  if (podnetServices) proxies.set('podnet', podnet);
  for (const mode of ['iptables', 'nftables'] as const) {
    if (!opts.variants.includes(mode)) continue;
    const p = kubeProxy({ mode, binary: kubeProxyBin, kubeconfig: KUBECONFIG, nodeName, clusterCidr, masqueradeAll: opts.masqueradeAll, before: podnetOff });
    const why = await p.unavailable();
    if (why) notes.push(`${p.name} skipped: ${why}`);
    else proxies.set(mode, p);
  }
  if (proxies.size === 0) throw new PodnetError('BENCH_FAILED', `no proxy can run: ${notes.join('; ')}`);

  const results: SizeResult[] = [];
  const traffic: TrafficResult[] = [];
  const creation: { size: number; objects: number; ms: number }[] = [];
  let running: ServiceProxy | undefined;
  try {
    // --- the pods, the Service under test --------------------------------
    log(`setting up namespace ${BENCH_NAMESPACE}: ${opts.backends} backend pods, a client pod, ${TARGET_SERVICE}`);
    await api.ok('POST', '/api/v1/namespaces', namespace(), { accept: [409] });
    const script = await readFile(fileURLToPath(new URL('./lib/svc-probe.cjs', import.meta.url)), 'utf8');
    await api.createAll([probeConfigMap(script)]);
    await api.createAll([...Array.from({ length: opts.backends }, (_, i) => backendPod(i, image)), clientPod(image), targetService()]);
    const pods = await waitPodsReady(api, opts.backends + 1, 180_000);
    const backendIps = pods.filter((p) => p.name.startsWith('pn-bench-be-')).map((p) => p.ip);
    let target = await serviceRef(api, TARGET_SERVICE);
    const targetBackends = backendIps.map((ip) => `${ip}:${BACKEND_PORT}`).sort();
    log(`${TARGET_SERVICE} is ${target.clusterIP}:${SERVICE_PORT}, backends ${targetBackends.join(' ')}`);
    if (podnetServices) await podnetOff();

    // Services already there (a run stopped before its clean-up): extras 1..n-1 beside the target.
    const listed = (await api.ok('GET', `/api/v1/namespaces/${BENCH_NAMESPACE}/services?limit=1`)) as { items: unknown[]; metadata: { remainingItemCount?: number } };
    let made = listed.items.length + (listed.metadata.remainingItemCount ?? 0);
    if (made > 1) log(`reusing ${made} Services already in ${BENCH_NAMESPACE}`);
    const largest = Math.max(...opts.sizes);
    for (const [si, size] of opts.sizes.entries()) {
      // --- shrink to the target alone, then grow to `size` Services --------
      if (size < made) {
        log(`deleting the ${made - 1} extra Services and their EndpointSlices`);
        const t0 = performance.now();
        // A collection delete of 10,000 objects outlasts the API server's 60 s request timeout (504): it goes on, so wait for it.
        await api.ok('DELETE', `/apis/discovery.k8s.io/v1/namespaces/${BENCH_NAMESPACE}/endpointslices?labelSelector=${encodeURIComponent('endpointslice.kubernetes.io/managed-by=podnet-bench')}`, undefined, { timeoutMs: 600_000, accept: [504] });
        await api.ok('DELETE', `/api/v1/namespaces/${BENCH_NAMESPACE}/services`, undefined, { timeoutMs: 600_000, accept: [504] });
        for (const deadline = performance.now() + 900_000; ; ) {
          const left = (await api.ok('GET', `/api/v1/namespaces/${BENCH_NAMESPACE}/services?limit=1`)) as { items: unknown[] };
          if (left.items.length === 0) break;
          if (performance.now() > deadline) throw new PodnetError('TIMEOUT', `delete the Services of ${BENCH_NAMESPACE}: some left after 900 s`);
          await sleep(1000);
        }
        await api.createAll([targetService()]);
        target = await serviceRef(api, TARGET_SERVICE);
        log(`deleted in ${fmt((performance.now() - t0) / 1000, 1)} s; ${TARGET_SERVICE} is now ${target.clusterIP}`);
        made = 1;
      }
      if (size > made) {
        log(`creating Services ${made}..${size - 1} (${size - made} Services + ${size - made} EndpointSlices of ${opts.endpoints} endpoints)`);
        const objs: KubeManifest[] = [];
        for (let i = made; i < size; i++) objs.push(extraService(i), extraSlice(i, opts.endpoints));
        const t0 = performance.now();
        await api.createAll(objs, 8);
        creation.push({ size, objects: objs.length, ms: performance.now() - t0 });
        log(`created ${objs.length} objects in ${fmt((performance.now() - t0) / 1000, 1)} s`);
        made = size;
      }
      // The last extra Service: programmed last or not, all of them are in when it and the target are.
      const sentinel = size > 1 ? await serviceRef(api, extraServiceName(size - 1)) : undefined;
      const sentinelBackends = size > 1 ? sortedEndpoints(size - 1, opts.endpoints) : [];
      const changeIndex = Math.floor(size / 2);
      const changeSvc = size > 1 ? await serviceRef(api, extraServiceName(Math.max(1, changeIndex))) : undefined;

      const here = [...proxies.keys()].filter((v) => size < largest || opts.largestVariants.includes(v));
      for (const v of [...proxies.keys()]) if (!here.includes(v)) notes.push(`${proxies.get(v)?.name} not run with ${size} Services (--largest-variants)`);
      for (const v of rotation(here, si)) {
        const proxy = proxies.get(v) as ServiceProxy;
        log(`${proxy.name} with ${size} Services: cold start`);
        const rolloutAt = performance.now();
        running = proxy;
        try {
          const { startedAt } = await proxy.start();
          // netfilter proxies: also the commit of the rules, from `nft monitor` (a listing costs too much to poll finely).
          if (sentinel) proxy.watchRules?.(sentinel);
          if (changeSvc) proxy.watchRules?.(changeSvc);
          const synced = await pollUntil(
            `${proxy.name} to program ${size} Services`,
            async () => sameSet(await proxy.backends(target), targetBackends) && (!sentinel || sameSet(await proxy.backends(sentinel), sentinelBackends)),
            opts.syncTimeoutMs,
            // Checks compete with the proxy for two CPUs: a few per second.
            200,
          );
          const r: SizeResult = {
            variant: proxy.name,
            size,
            coldSyncMs: Math.min(synced.at, (sentinel && proxy.ruleSeenAfter?.(sentinel, startedAt)) || Number.POSITIVE_INFINITY) - startedAt,
            ...(v === 'podnet' ? { coldSyncFromRolloutMs: synced.at - rolloutAt } : {}),
            syncChecks: synced.costs.length,
            syncCheckMs: percentile(synced.costs, 50),
            rssKiB: await proxy.rssKiB(),
            rssSettledKiB: Number.NaN,
            connectUs: [],
            connectRoundsP50: [],
            changeAddMs: [],
            changeRemoveMs: [],
            changeCheckMs: Number.NaN,
          };
          if (v !== 'podnet' && podnetServices) r.agentOffRssKiB = await podnet.rssKiB().catch(() => Number.NaN);
          log(`${proxy.name}: programmed in ${fmt(r.coldSyncMs / 1000, 2)} s (${r.syncChecks} checks of ${fmt(r.syncCheckMs, 1)} ms), RSS ${fmt(r.rssKiB / 1024, 1)} MiB`);

          // New connections to the Service under test (one warm-up batch).
          r.connectUs = await connectSamples(target.clusterIP, opts.connections);
          r.connectRoundsP50.push(percentile(r.connectUs, 50));
          log(`${proxy.name}: connect+request p50 ${fmt(percentile(r.connectUs, 50), 0)} us, p99 ${fmt(percentile(r.connectUs, 99), 0)} us (${r.connectUs.length})`);
          const settle = synced.at + RSS_SETTLE_MS - performance.now();
          if (settle > 0) await new Promise((res) => setTimeout(res, settle));
          r.rssSettledKiB = await proxy.rssKiB();
          log(`${proxy.name}: RSS ${fmt(r.rssSettledKiB / 1024, 1)} MiB ${RSS_SETTLE_MS / 1000} s after programming`);

          // Single endpoint changes on one extra Service.
          if (changeSvc) {
            const base = sortedEndpoints(Math.max(1, changeIndex), opts.endpoints);
            const port = extraEndpoints(Math.max(1, changeIndex), opts.endpoints).port;
            for (let n = 0; n < opts.changes; n++) {
              const addr = changeAddress(n);
              const added = [...base, `${addr}:${port}`].sort();
              for (const [kind, slice, want] of [['add', extraSlice(Math.max(1, changeIndex), opts.endpoints, [addr]), added], ['remove', extraSlice(Math.max(1, changeIndex), opts.endpoints), base]] as const) {
                const t0 = performance.now();
                await api.ok('PUT', objectPath(slice), slice);
                let at: number;
                if (proxy.ruleChangeAfter) {
                  // The commit of the chain's new rules, then a listing to check they are the right ones.
                  at = await proxy.ruleChangeAfter(changeSvc, t0, 120_000);
                  await pollUntil(`${proxy.name} to ${kind} ${addr}:${port}`, async () => sameSet(await proxy.backends(changeSvc), want), 60_000, 50);
                } else {
                  at = (await pollUntil(`${proxy.name} to ${kind} ${addr}:${port}`, async () => sameSet(await proxy.backends(changeSvc), want), 120_000, 10)).at;
                }
                (kind === 'add' ? r.changeAddMs : r.changeRemoveMs).push(at - t0);
                // kube-proxy syncs at most once per second (minSyncPeriod): each change finds every proxy idle.
                await sleep(1500);
              }
            }
            const probeCost = await timeCheck(() => proxy.backends(changeSvc));
            r.changeCheckMs = probeCost;
            log(`${proxy.name}: endpoint add p50 ${fmt(percentile(r.changeAddMs, 50), 0)} ms, remove p50 ${fmt(percentile(r.changeRemoveMs, 50), 0)} ms (checks ${fmt(r.changeCheckMs, 1)} ms)`);
          }

          // Throughput and request/response, ClusterIP against direct, at the first size.
          // A ClusterIP connection reaches a random backend: each run
          // measures every backend directly too, and sets the ClusterIP
          // figure against the direct one of the backend it reached (same pods).
          if (si === 0) {
            const t: TrafficResult = { variant: proxy.name, runs: [] };
            const first = backendIps[0] as string;
            const hosts = [...backendIps, target.clusterIP];
            const portOf = (host: string): number => (host === target.clusterIP ? SERVICE_PORT : BACKEND_PORT);
            /** Runs `role` against every host (rotated by run): the direct figures by backend, and the ClusterIP's with the backend it reached. */
            const each = async <T>(role: 'stream' | 'rr', run: number, value: (answer: Record<string, unknown>) => T): Promise<{ direct: Map<string, T>; cluster: T; backend: string }> => {
              const direct = new Map<string, T>();
              let cluster: { v: T; backend: string } | undefined;
              for (const host of rotation(hosts, run)) {
                const a = await probe([role, host, String(portOf(host)), String(opts.trafficMs)], opts.trafficMs + 60_000);
                if (host === target.clusterIP) cluster = { v: value(a), backend: String(a['server']) };
                else direct.set(host, value(a));
              }
              if (!cluster || !direct.has(cluster.backend)) throw new PodnetError('BENCH_FAILED', `${role} through ${target.clusterIP}:${SERVICE_PORT}: reached ${cluster?.backend}, not one of the backends ${backendIps.join(', ')}`);
              return { direct, cluster: cluster.v, backend: cluster.backend };
            };
            for (let run = 0; run < opts.trafficRuns; run++) {
              const st = await each('stream', run, (a) => ((a['bytes'] as number) * 8) / ((a['ms'] as number) * 1e6));
              const rr = await each('rr', run, (a) => ({ p50: a['p50Us'] as number, p99: a['p99Us'] as number }));
              const rrDirect = rr.direct.get(rr.backend) as { p50: number; p99: number };
              t.runs.push({
                directGbps: st.direct.get(st.backend) as number,
                clusterGbps: st.cluster,
                clusterBackend: st.backend,
                firstBackendGbps: st.direct.get(first) as number,
                directRrP50Us: rrDirect.p50,
                clusterRrP50Us: rr.cluster.p50,
                directRrP99Us: rrDirect.p99,
                clusterRrP99Us: rr.cluster.p99,
                rrBackend: rr.backend,
                firstBackendRrP50Us: (rr.direct.get(first) as { p50: number }).p50,
                directGbpsByBackend: Object.fromEntries(st.direct),
                directRrP50UsByBackend: Object.fromEntries([...rr.direct].map(([b, v]) => [b, v.p50])),
              });
            }
            traffic.push(t);
            const med = (f: (x: TrafficResult['runs'][number]) => number): number => percentile(t.runs.map(f), 50);
            log(`${proxy.name}: stream ClusterIP/direct ${fmt(med((x) => x.clusterGbps / x.directGbps))} (median of the runs; ratio of medians ${fmt(ratio(med((x) => x.clusterGbps), med((x) => x.directGbps)))}, / first backend ${fmt(ratio(med((x) => x.clusterGbps), med((x) => x.firstBackendGbps)))}), rr p50 ClusterIP/direct ${fmt(med((x) => x.clusterRrP50Us / x.directRrP50Us))} (ratio of medians ${fmt(ratio(med((x) => x.clusterRrP50Us), med((x) => x.directRrP50Us)))}, / first backend ${fmt(ratio(med((x) => x.clusterRrP50Us), med((x) => x.firstBackendRrP50Us)))})`);
          }
          results.push(r);
        } catch (e) {
          // One proxy failing (e.g. not programmed within --sync-timeout-s) is a result too: the others still run.
          const msg = `${proxy.name} with ${size} Services: ${(e as Error).message}`;
          notes.push(msg);
          log(`FAILED ${msg}`);
        }
        await proxy.stop();
        running = undefined;
        if (v === 'podnet') await podnetOff();
      }

      // More rounds of new connections at the smallest size, the proxies
      // taking turns (order rotated each round): one round of each is within
      // this machine's drift of the others.
      if (size === Math.min(...opts.sizes)) {
        for (let round = 1; round < opts.connectRounds; round++) {
          for (const v of rotation(here, si + round)) {
            const proxy = proxies.get(v) as ServiceProxy;
            const r = results.find((x) => x.variant === proxy.name && x.size === size);
            if (!r) continue;
            running = proxy;
            try {
              await proxy.start();
              await pollUntil(`${proxy.name} to program ${size} Services`, async () => sameSet(await proxy.backends(target), targetBackends), opts.syncTimeoutMs, 200);
              r.connectRoundsP50.push(percentile(await connectSamples(target.clusterIP, opts.connections), 50));
              log(`${proxy.name}: connect round ${round + 1} p50 ${fmt(r.connectRoundsP50.at(-1) as number, 0)} us`);
            } catch (e) {
              notes.push(`${proxy.name} connect round ${round + 1} with ${size} Services: ${(e as Error).message}`);
            }
            await proxy.stop();
            running = undefined;
            if (v === 'podnet') await podnetOff();
          }
        }
      }
    }
  } catch (e) {
    notes.push(`run stopped early: ${(e as Error).message}`);
    process.exitCode = 1;
  } finally {
    if (running) await running.stop().catch((e: unknown) => notes.push(`stop ${running?.name}: ${(e as Error).message}`));
    log(`deleting namespace ${BENCH_NAMESPACE}`);
    const t0 = performance.now();
    await api.ok('DELETE', `/api/v1/namespaces/${BENCH_NAMESPACE}`, undefined, { accept: [404] }).catch((e: unknown) => notes.push((e as Error).message));
    for (;;) {
      const r = await api.request('GET', `/api/v1/namespaces/${BENCH_NAMESPACE}`).catch(() => undefined);
      if (r?.status === 404) break;
      if (performance.now() - t0 > 900_000) {
        notes.push(`namespace ${BENCH_NAMESPACE} still terminating after 900 s`);
        break;
      }
      await sleep(1000);
    }
    log(`namespace deleted in ${fmt((performance.now() - t0) / 1000, 1)} s`);
    // podnet as it was: its default Service handling, without our setting.
    if (podnetServices) await k(['set', 'env', '-n', 'kube-system', 'daemonset/podnet', `${opts.podnetOffEnv.split('=')[0]}-`]).catch((e: unknown) => notes.push(`restore podnet's DaemonSet: ${(e as Error).message}`));
    api.close();
    if (weStarted) {
      log('taking the cluster down');
      await clusterDown();
    }
  }
  report(opts, results, traffic, creation, notes, clusterUpMs);
}

/** New-connection latencies (us) to a Service port from the client pod: one unrecorded batch of 50, then `n`. */
async function connectSamples(clusterIP: string, n: number): Promise<number[]> {
  await probe(['connect', clusterIP, String(SERVICE_PORT), '50', '20000'], 60_000);
  const c = await probe(['connect', clusterIP, String(SERVICE_PORT), String(n), '120000'], 180_000);
  return c['samplesUs'] as number[];
}

/** The median of a[i] / b[i] over the rounds both have. */
function pairedRatio(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  return n === 0 ? Number.NaN : percentile(Array.from({ length: n }, (_, i) => ratio(a[i] as number, b[i] as number)), 50);
}

/** The median cost of one datapath listing, ms (5 calls). */
async function timeCheck(check: () => Promise<unknown>): Promise<number> {
  const v: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await check();
    v.push(performance.now() - t0);
  }
  return percentile(v, 50);
}

function sortedEndpoints(i: number, perService: number): string[] {
  const { addresses, port } = extraEndpoints(i, perService);
  return addresses.map((a) => `${a}:${port}`).sort();
}

async function serviceRef(api: KubeApi, name: string): Promise<ServicePortRef> {
  const svc = (await api.ok('GET', `/api/v1/namespaces/${BENCH_NAMESPACE}/services/${name}`)) as { spec: { clusterIP: string } };
  return { namespace: BENCH_NAMESPACE, name, portName: PORT_NAME, clusterIP: svc.spec.clusterIP, port: SERVICE_PORT };
}

async function waitPodsReady(api: KubeApi, n: number, timeoutMs: number): Promise<{ name: string; ip: string }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = (await api.ok('GET', `/api/v1/namespaces/${BENCH_NAMESPACE}/pods`)) as {
      items: { metadata: { name: string }; status: { phase?: string; podIP?: string; conditions?: { type: string; status: string; message?: string }[]; containerStatuses?: { state?: Record<string, { reason?: string; message?: string }> }[] } }[];
    };
    const ready = list.items.filter((p) => p.status.podIP && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    if (ready.length >= n) return ready.map((p) => ({ name: p.metadata.name, ip: p.status.podIP as string }));
    if (Date.now() > deadline) {
      const why = list.items
        .filter((p) => !ready.includes(p))
        .map((p) => `${p.metadata.name}: ${p.status.phase ?? 'no phase'} ${JSON.stringify(p.status.containerStatuses?.[0]?.state ?? p.status.conditions ?? {})}`);
      throw new PodnetError('TIMEOUT', `wait for ${n} pods Ready in ${BENCH_NAMESPACE}: ${ready.length} after ${timeoutMs / 1000} s; ${why.join('; ')}`);
    }
    await sleep(500);
  }
}

function report(opts: Options, results: SizeResult[], traffic: TrafficResult[], creation: { size: number; objects: number; ms: number }[], notes: string[], clusterUpMs: number | undefined): void {
  const find = (variant: string, size: number): SizeResult | undefined => results.find((r) => r.variant === variant && r.size === size);
  const p50 = (v: number[]): number => (v.length ? percentile(v, 50) : Number.NaN);
  const p99 = (v: number[]): number => (v.length ? percentile(v, 99) : Number.NaN);
  console.log('\nCreating the Services through the API server (parallel requests, 8 at a time)');
  console.log(formatTable(['up to', 'objects', 's', 'objects/s'], creation.map((c) => [String(c.size), String(c.objects), fmt(c.ms / 1000, 1), fmt(c.objects / (c.ms / 1000), 0)])));

  console.log('\n1. New connection (connect + 64-byte request/response) from a pod to one Service, us');
  const rows1: Cell[][] = [];
  for (const r of results) {
    const at1 = find(r.variant, Math.min(...opts.sizes));
    const ipt = find('kube-proxy iptables', r.size);
    const paired = ipt ? pairedRatio(r.connectRoundsP50, ipt.connectRoundsP50) : Number.NaN;
    rows1.push([r.variant, String(r.size), String(r.connectUs.length), p50(r.connectUs), p99(r.connectUs), r.connectRoundsP50.map((x) => fmt(x, 0)).join(' '), fmt(ratio(p50(r.connectUs), p50(at1?.connectUs ?? []))), ipt ? fmt(ratio(p50(r.connectUs), p50(ipt.connectUs))) : '-', ipt && r.connectRoundsP50.length > 1 ? fmt(paired) : '-']);
  }
  console.log(formatTable(['proxy', 'Services', 'n', 'p50', 'p99', 'p50 by round', `p50 / own at ${Math.min(...opts.sizes)}`, 'p50 / iptables', 'median of round ratios'], rows1));

  console.log('\n2. Programming, observed in the kernel (ms)');
  const rows2: Cell[][] = results.map((r) => {
    const pn = find('podnet', r.size);
    return [
      r.variant,
      String(r.size),
      fmt(r.coldSyncMs, 0),
      r.coldSyncFromRolloutMs !== undefined ? fmt(r.coldSyncFromRolloutMs, 0) : '-',
      fmt(r.syncCheckMs, 1),
      fmt(p50(r.changeAddMs), 0),
      fmt(p50(r.changeRemoveMs), 0),
      fmt(r.changeCheckMs, 1),
      pn && r.variant !== 'podnet' ? fmt(ratio(r.coldSyncMs, pn.coldSyncMs)) : '-',
      pn && r.variant !== 'podnet' ? fmt(ratio(p50([...r.changeAddMs, ...r.changeRemoveMs]), p50([...pn.changeAddMs, ...pn.changeRemoveMs]))) : '-',
    ];
  });
  console.log(formatTable(['proxy', 'Services', 'cold sync', 'from rollout', 'check', 'add p50', 'remove p50', 'check', 'sync / podnet', 'change / podnet'], rows2));

  console.log(`\n4. Proxy RSS once every Service is programmed, and ${RSS_SETTLE_MS / 1000} s later (MiB)`);
  console.log(formatTable(['proxy', 'Services', 'RSS', 'settled', 'podnet agent, Services off'], results.map((r) => [r.variant, String(r.size), fmt(r.rssKiB / 1024, 1), fmt(r.rssSettledKiB / 1024, 1), r.agentOffRssKiB !== undefined ? fmt(r.agentOffRssKiB / 1024, 1) : '-'])));

  if (traffic.length) {
    console.log(`\n3. Pod -> ClusterIP -> pod against pod -> pod direct, ${opts.sizes[0]} Services, medians of ${opts.trafficRuns} interleaved runs`);
    console.log('   (direct: to the backend the run\'s ClusterIP connection reached; "run ratios p50": the median of the runs\' ClusterIP / direct;');
    console.log('    "first": always to the first backend, the comparison before the pairing)');
    const med = (t: TrafficResult, f: (x: TrafficResult['runs'][number]) => number): number => percentile(t.runs.map(f), 50);
    console.log(formatTable(
      ['proxy', 'direct Gbit/s', 'ClusterIP Gbit/s', 'ratio', 'run ratios p50', 'first Gbit/s', 'ClusterIP / first', 'direct rr p50 us', 'ClusterIP rr p50 us', 'ratio', 'run ratios p50', 'first rr p50', 'ClusterIP / first', 'direct rr p99', 'ClusterIP rr p99'],
      traffic.map((t) => [
        t.variant,
        fmt(med(t, (x) => x.directGbps)),
        fmt(med(t, (x) => x.clusterGbps)),
        fmt(ratio(med(t, (x) => x.clusterGbps), med(t, (x) => x.directGbps))),
        fmt(med(t, (x) => x.clusterGbps / x.directGbps)),
        fmt(med(t, (x) => x.firstBackendGbps)),
        fmt(ratio(med(t, (x) => x.clusterGbps), med(t, (x) => x.firstBackendGbps))),
        fmt(med(t, (x) => x.directRrP50Us), 1),
        fmt(med(t, (x) => x.clusterRrP50Us), 1),
        fmt(ratio(med(t, (x) => x.clusterRrP50Us), med(t, (x) => x.directRrP50Us))),
        fmt(med(t, (x) => x.clusterRrP50Us / x.directRrP50Us)),
        fmt(med(t, (x) => x.firstBackendRrP50Us), 1),
        fmt(ratio(med(t, (x) => x.clusterRrP50Us), med(t, (x) => x.firstBackendRrP50Us))),
        fmt(med(t, (x) => x.directRrP99Us), 1),
        fmt(med(t, (x) => x.clusterRrP99Us), 1),
      ]),
    ));
    console.log('\n   Each backend: direct in every run, and the ClusterIP streams that reached it against the direct ones of the same runs (Gbit/s, medians)');
    const rows: Cell[][] = [];
    for (const t of traffic) {
      for (const b of Object.keys(t.runs[0]?.directGbpsByBackend ?? {}).sort()) {
        const all = percentile(t.runs.map((x) => x.directGbpsByBackend[b] as number), 50);
        const runs = t.runs.filter((x) => x.clusterBackend === b);
        const d = runs.length ? percentile(runs.map((x) => x.directGbps), 50) : Number.NaN;
        const c = runs.length ? percentile(runs.map((x) => x.clusterGbps), 50) : Number.NaN;
        rows.push([t.variant, b, fmt(all), String(runs.length), fmt(d), fmt(c), fmt(ratio(c, d))]);
      }
    }
    console.log(formatTable(['proxy', 'backend', 'direct, all runs', 'ClusterIP runs', 'direct', 'ClusterIP', 'ratio'], rows));
  }

  // Targets, as issue 8 states them.
  const lines: string[] = [];
  const target = (name: string, value: number, limit: string, pass: boolean): void => {
    lines.push(`${Number.isFinite(value) ? (pass ? 'PASS' : 'MISS') : 'n/a '} ${name} = ${fmt(value)} (target ${limit})`);
  };
  const largest = Math.max(...opts.sizes);
  const smallest = Math.min(...opts.sizes);
  const pnSmall = find('podnet', smallest);
  const pnLarge = find('podnet', largest);
  if (pnSmall && pnLarge) {
    const v = ratio(p50(pnLarge.connectUs), p50(pnSmall.connectUs));
    target(`podnet connect p50 at ${largest} / at ${smallest}`, v, '<= 1.05', v <= 1.05);
  }
  for (const size of opts.sizes) {
    const pn = find('podnet', size);
    const ipt = find('kube-proxy iptables', size);
    if (pn && ipt) {
      // With several rounds: the median of the rounds' podnet / iptables ratios (each round's proxies ran back to back).
      const rounds = Math.min(pn.connectRoundsP50.length, ipt.connectRoundsP50.length);
      const v = rounds > 1 ? pairedRatio(pn.connectRoundsP50, ipt.connectRoundsP50) : ratio(p50(pn.connectUs), p50(ipt.connectUs));
      target(`connect p50 podnet / kube-proxy iptables at ${size}${rounds > 1 ? ` (median of ${rounds} rounds)` : ''}`, v, '< 1', v < 1);
    }
  }
  const pnL = find('podnet', largest);
  const iptL = find('kube-proxy iptables', largest);
  const nftL = find('kube-proxy nftables', largest);
  if (pnL && iptL) {
    const ch = ratio(p50([...iptL.changeAddMs, ...iptL.changeRemoveMs]), p50([...pnL.changeAddMs, ...pnL.changeRemoveMs]));
    target(`endpoint change at ${largest}: kube-proxy iptables / podnet`, ch, '>= 10', ch >= 10);
    const s = ratio(iptL.coldSyncMs, pnL.coldSyncMs);
    target(`full sync at ${largest}: kube-proxy iptables / podnet`, s, '>= 10', s >= 10);
  }
  if (pnL && nftL) {
    const ch = ratio(p50([...nftL.changeAddMs, ...nftL.changeRemoveMs]), p50([...pnL.changeAddMs, ...pnL.changeRemoveMs]));
    target(`endpoint change at ${largest}: kube-proxy nftables / podnet`, ch, '> 1', ch > 1);
    const s = ratio(nftL.coldSyncMs, pnL.coldSyncMs);
    target(`full sync at ${largest}: kube-proxy nftables / podnet`, s, '> 1', s > 1);
  }
  const tp = traffic.find((t) => t.variant === 'podnet');
  if (tp) {
    // Each run's ClusterIP figure against its direct one, seconds apart: the
    // load other processes put on the machine drifts over a run (2-3x in
    // stream throughput), which a ratio of the two medians takes in.
    const med = (f: (x: TrafficResult['runs'][number]) => number): number => percentile(tp.runs.map(f), 50);
    const g = med((x) => x.clusterGbps / x.directGbps);
    target('podnet throughput ClusterIP / direct (median of the runs)', g, '>= 0.97', g >= 0.97);
    const l = med((x) => x.clusterRrP50Us / x.directRrP50Us);
    target('podnet rr p50 ClusterIP / direct (median of the runs)', l, '<= 1.05', l <= 1.05);
  }
  if (pnL) {
    const mb = (pnL.rssSettledKiB * 1024) / 1e6;
    target(`podnet agent RSS at ${largest} Services, settled (MB, ${fmt(pnL.rssSettledKiB / 1024, 1)} MiB)`, mb, '<= 150', mb <= 150);
    for (const kp of [iptL, nftL]) if (kp) target(`RSS at ${largest}, settled: podnet / ${kp.variant}`, ratio(pnL.rssSettledKiB, kp.rssSettledKiB), '< 1', pnL.rssSettledKiB < kp.rssSettledKiB);
  }
  if (lines.length) console.log(`\nTargets\n${lines.join('\n')}`);
  if (notes.length) console.log(`\nNotes\n${notes.map((n) => `- ${n}`).join('\n')}`);
  console.log(`\n${NOISE_NOTE}`);
  const summary = { machine: machineInfo(), options: opts, clusterUpMs, creation, results, traffic, targets: lines, notes };
  printJsonSummary(summary);
  if (opts.json) void writeFile(opts.json, JSON.stringify(summary, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
