/**
 * Pod-to-pod traffic between two network namespaces: single-stream TCP
 * throughput (iperf3) and TCP request/response round trip (sockperf
 * ping-pong, p50), per variant, against a raw veth pair between the two
 * namespaces as the limit. Variants are interleaved run by run; servers
 * bind only to the server pod's own address and are stopped by PID;
 * everything is removed at the end, also after a failure or Ctrl-C.
 *
 * "podnet via ClusterIP" is the same two podnet pods, the client reaching
 * the server through a Service (a ClusterIP in a /24 of its own,
 * blackholed on the host before anything is sent, from a services file
 * the agent watches): the pod -> ClusterIP -> pod path against pod -> pod
 * direct, the target being at least 0.97x the throughput and at most 1.05x
 * the round trip.
 *
 * Usage: node --import tsx test/bench/pod-traffic.ts [--reps 10]
 *   [--iperf-seconds 3] [--sockperf-seconds 2] [--budget-min 20]
 *   [--podnet-bin build/cni/podnet] [--json FILE]
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PodnetError } from '../../agent/src/errors/index.js';
import {
  stopCondition,
  NOISE_NOTE,
  Netns,
  addPod,
  bridgeHostLocal,
  buildCniDriver,
  delPod,
  formatTable,
  freeSubnet24,
  machineInfo,
  median,
  podnet,
  printJsonSummary,
  randomSuffix,
  ratio,
  rotation,
  vethBetween,
  waitFor,
  type Background,
  type BenchPod,
  type Cell,
  type CniVariant,
  type DriverContext,
} from './lib/index.js';
import { intOption } from './lib/args.js';
import { podnetAgentHooksWithServices } from './lib/podnet-agent.js';

const IPERF_PORT = 5201;
const SOCKPERF_PORT = 11111;

interface Options {
  reps: number;
  iperfSeconds: number;
  sockperfSeconds: number;
  budgetMs: number;
  podnetBin: string | undefined;
  json: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      reps: { type: 'string' },
      'iperf-seconds': { type: 'string' },
      'sockperf-seconds': { type: 'string' },
      'budget-min': { type: 'string' },
      'podnet-bin': { type: 'string' },
      json: { type: 'string' },
    },
  });
  return {
    reps: intOption('reps', values.reps, 10),
    iperfSeconds: intOption('iperf-seconds', values['iperf-seconds'], 3),
    sockperfSeconds: intOption('sockperf-seconds', values['sockperf-seconds'], 2),
    budgetMs: intOption('budget-min', values['budget-min'], 20) * 60_000,
    podnetBin: values['podnet-bin'],
    json: values.json,
  };
}

/** Two pods (client and server side) connected by one variant. */
interface PodPair {
  readonly name: string;
  readonly client: { readonly ns: Netns; readonly ip: string };
  readonly server: { readonly ns: Netns; readonly ip: string };
  close(): Promise<void>;
}

/** The limit: one veth pair straight between the two namespaces, no host in between. */
async function rawVethPair(): Promise<PodPair> {
  const { prefix } = await freeSubnet24();
  const client = await Netns.create('pnbt');
  let server: Netns | undefined;
  try {
    server = await Netns.create('pnbt');
    const suffix = randomSuffix();
    await vethBetween(client, server, { aName: `pnva${suffix}`, bName: `pnvb${suffix}`, aAddr: `${prefix}.1/24`, bAddr: `${prefix}.2/24` });
    const s = server;
    return {
      name: 'raw veth (limit)',
      client: { ns: client, ip: `${prefix}.1` },
      server: { ns: server, ip: `${prefix}.2` },
      close: async () => {
        await client.close();
        await s.close();
      },
    };
  } catch (e) {
    await client.close();
    await server?.close();
    throw e;
  }
}

/** Two pods ADDed through libcni to a CNI variant; closing DELs them and tears the variant down. */
async function cniPair(v: CniVariant, workDir: string, d: DriverContext): Promise<PodPair> {
  const prepared = await v.setup({ workDir });
  const pods: BenchPod[] = [];
  const close = async (): Promise<void> => {
    for (const p of pods.splice(0)) await delPod(prepared, d, p).catch((e: unknown) => console.error(`cleanup ${v.name}: ${(e as Error).message}`));
    await prepared.teardown();
  };
  try {
    for (const role of ['client', 'server']) pods.push((await addPod(prepared, d, `traffic-${role}-${randomSuffix()}`)).pod);
    const [c, s] = pods as [BenchPod, BenchPod];
    return { name: v.name, client: { ns: c.ns, ip: c.ip }, server: { ns: s.ns, ip: s.ip }, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Resolves once something listens on `ip:port` inside `ns`. */
async function waitListening(ns: Netns, ip: string, port: number, server: Background): Promise<void> {
  await waitFor(
    `${server.command} to listen on ${ip}:${port}`,
    async () => {
      if (server.done) throw new PodnetError('COMMAND_FAILED', `${server.command} exited: ${(await server.exited).stderr.trim().slice(-300)}`);
      const res = await ns.exec('ss', ['-Hltn', `src ${ip}:${port}`]);
      return res.stdout.includes(`${ip}:${port}`) ? true : undefined;
    },
    10_000,
    50,
  );
}

/** A Service in front of the server pod for both tools' ports, as the agent's services file holds it. */
function servicesYaml(clusterIp: string, backend: string): string {
  const ports = [['iperf', IPERF_PORT], ['sockperf', SOCKPERF_PORT]] as const;
  return [
    'apiVersion: v1', 'kind: Service', 'metadata: {name: traffic, namespace: bench}',
    `spec: {clusterIP: ${clusterIp}, ports: [${ports.map(([n, p]) => `{name: ${n}, protocol: TCP, port: ${p}, targetPort: ${p}}`).join(', ')}]}`,
    '---',
    'apiVersion: discovery.k8s.io/v1', 'kind: EndpointSlice', 'metadata: {name: traffic-1, namespace: bench, labels: {kubernetes.io/service-name: traffic}}',
    'addressType: IPv4', `ports: [${ports.map(([n, p]) => `{name: ${n}, protocol: TCP, port: ${p}}`).join(', ')}]`,
    `endpoints: [{addresses: [${backend}], conditions: {ready: true}}]`, '',
  ].join('\n');
}

/** Strips terminal colour codes that sockperf prints even into a pipe. */
function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '');
}

async function iperfGbps(pair: PodPair, seconds: number): Promise<number> {
  const res = await pair.client.ns.exec('iperf3', ['-c', pair.server.ip, '-p', String(IPERF_PORT), '-B', pair.client.ip, '-t', String(seconds), '-J'], {
    timeoutMs: (seconds + 20) * 1000,
  });
  const out = JSON.parse(res.stdout || '{}') as { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
  const bps = out.end?.sum_received?.bits_per_second;
  if (res.code !== 0 || bps === undefined) throw new PodnetError('COMMAND_FAILED', `run iperf3 over ${pair.name}: ${out.error ?? res.stderr.trim()}`);
  return bps / 1e9;
}

async function sockperfP50Us(pair: PodPair, seconds: number): Promise<number> {
  const res = await pair.client.ns.exec(
    'sockperf',
    ['ping-pong', '--tcp', '-i', pair.server.ip, '-p', String(SOCKPERF_PORT), '-t', String(seconds), '-m', '64', '--full-rtt'],
    { timeoutMs: (seconds + 20) * 1000 },
  );
  const m = stripAnsi(res.stdout + res.stderr).match(/percentile 50\.000 =\s*([\d.]+)/);
  if (res.code !== 0 || !m?.[1]) throw new PodnetError('COMMAND_FAILED', `run sockperf over ${pair.name}: exit ${res.code}: ${stripAnsi(res.stderr).trim().slice(-300)}`);
  return Number(m[1]);
}

interface PairSamples {
  gbps: number[];
  rttP50Us: number[];
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  console.log('Pod-to-pod traffic: single-stream TCP throughput (iperf3) and TCP round trip p50 (sockperf ping-pong, 64 B)');
  console.log(NOISE_NOTE);

  const { stop, release } = stopCondition(opts.budgetMs);

  const driver = await buildCniDriver();
  const work = await mkdtemp(join(tmpdir(), 'podnet-bench-traffic-'));
  const d: DriverContext = { driver, cacheDir: join(work, 'cache') };
  const pairs: PodPair[] = [];
  const servers: Background[] = [];
  const skipped: { variant: string; reason: string }[] = [];
  const samples = new Map<PodPair, PairSamples>();
  // The Service range: blackholed first, so nothing sent to the ClusterIP can leave the machine untranslated.
  const svc = await freeSubnet24('10.96');
  const clusterIp = `${svc.prefix}.10`;
  const servicesFile = join(work, 'services.yaml');
  await writeFile(servicesFile, '');
  execFileSync('ip', ['route', 'replace', 'blackhole', svc.subnet]);
  let viaClusterIp: PodPair | undefined;

  try {
    pairs.push(await rawVethPair());
    for (const v of [bridgeHostLocal(), podnet({ binary: opts.podnetBin, hooks: podnetAgentHooksWithServices(servicesFile, svc.subnet) })]) {
      const reason = await v.unavailable();
      if (reason) {
        console.log(`skip ${v.name}: ${reason}`);
        skipped.push({ variant: v.name, reason });
        continue;
      }
      const pair = await cniPair(v, work, d);
      pairs.push(pair);
      if (v.name === 'podnet') {
        await writeFile(`${servicesFile}.new`, servicesYaml(clusterIp, pair.server.ip));
        await rename(`${servicesFile}.new`, servicesFile);
        viaClusterIp = { name: 'podnet via ClusterIP', client: pair.client, server: { ns: pair.server.ns, ip: clusterIp }, close: async () => undefined };
      }
    }
    for (const p of pairs) {
      const iperf = p.server.ns.spawn('iperf3', ['-s', '-B', p.server.ip, '-p', String(IPERF_PORT)]);
      servers.push(iperf);
      const sock = p.server.ns.spawn('sockperf', ['server', '--tcp', '-i', p.server.ip, '-p', String(SOCKPERF_PORT)]);
      servers.push(sock);
      await waitListening(p.server.ns, p.server.ip, IPERF_PORT, iperf);
      await waitListening(p.server.ns, p.server.ip, SOCKPERF_PORT, sock);
      samples.set(p, { gbps: [], rttP50Us: [] });
      // One short unrecorded run each, so the first recorded run does not pay for cold caches.
      await iperfGbps(p, 1);
      await sockperfP50Us(p, 1);
    }
    if (viaClusterIp) {
      // Its servers are the podnet pair's; the first run through it waits for the agent to have read the file.
      const via = viaClusterIp;
      await waitFor(`the Service ${clusterIp} to reach the server pod`, async () => (await iperfGbps(via, 1).then(() => true, () => undefined)), 20_000, 200);
      await sockperfP50Us(via, 1);
      samples.set(via, { gbps: [], rttP50Us: [] });
      pairs.push(via);
    }

    console.error(`${opts.reps} interleaved runs of ${opts.iperfSeconds} s iperf3 + ${opts.sockperfSeconds} s sockperf over: ${pairs.map((p) => p.name).join(', ')}`);
    for (let r = 0; r < opts.reps && !stop(); r++) {
      for (const p of rotation(pairs, r)) {
        const s = samples.get(p);
        s?.gbps.push(await iperfGbps(p, opts.iperfSeconds));
        s?.rttP50Us.push(await sockperfP50Us(p, opts.sockperfSeconds));
      }
      console.error(`  run ${r + 1}/${opts.reps}`);
    }

    const limit = pairs[0];
    const limitS = limit ? samples.get(limit) : undefined;
    const limitGbps = limitS?.gbps.length ? median(limitS.gbps) : Number.NaN;
    const limitRtt = limitS?.rttP50Us.length ? median(limitS.rttP50Us) : Number.NaN;
    const rows: Cell[][] = [];
    const variants: Record<string, unknown> = {};
    for (const p of pairs) {
      const s = samples.get(p);
      if (!s || s.gbps.length === 0) continue;
      const g = median(s.gbps);
      const t = median(s.rttP50Us);
      rows.push([p.name, String(s.gbps.length), g, Math.min(...s.gbps), Math.max(...s.gbps), ratio(g, limitGbps), t, Math.min(...s.rttP50Us), Math.max(...s.rttP50Us), ratio(t, limitRtt)]);
      variants[p.name] = {
        runs: s.gbps.length,
        throughputGbps: { median: g, samples: s.gbps },
        rttP50Us: { median: t, samples: s.rttP50Us },
        ratios: { throughputVsRawVeth: ratio(g, limitGbps), rttVsRawVeth: ratio(t, limitRtt) },
      };
    }
    if (stop()) console.log('\nNOTE: stopped early (time budget or signal); fewer runs than requested.');
    console.log(`\nMedians over interleaved runs (throughput: ${opts.iperfSeconds} s single stream; RTT: per-run p50 of ${opts.sockperfSeconds} s ping-pong)`);
    console.log(formatTable(['variant', 'runs', 'Gbit/s', 'min', 'max', 'vs veth', 'RTT p50 us', 'min', 'max', 'vs veth'], rows));
    for (const s of skipped) console.log(`skipped ${s.variant}: ${s.reason}`);
    const direct = pairs.find((p) => p.name === 'podnet');
    const ds = direct ? samples.get(direct) : undefined;
    const vs = viaClusterIp ? samples.get(viaClusterIp) : undefined;
    const service = ds?.gbps.length && vs?.gbps.length
      ? { throughput: ratio(median(vs.gbps), median(ds.gbps)), rtt: ratio(median(vs.rttP50Us), median(ds.rttP50Us)) }
      : undefined;
    if (service) {
      const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
      console.log(`\npodnet pod -> ClusterIP -> pod against pod -> pod direct (same pods, same run): throughput ${service.throughput.toFixed(3)}x (target >= 0.97: ${verdict(service.throughput >= 0.97)}), RTT p50 ${service.rtt.toFixed(3)}x (target <= 1.05: ${verdict(service.rtt <= 1.05)})`);
    }
    const summary = {
      benchmark: 'pod-traffic',
      note: NOISE_NOTE,
      machine: machineInfo(),
      params: { reps: opts.reps, iperfSeconds: opts.iperfSeconds, sockperfSeconds: opts.sockperfSeconds, messageBytes: 64 },
      limit: limit?.name,
      clusterIpVsDirect: service,
      skipped,
      variants,
    };
    printJsonSummary(summary);
    if (opts.json) await writeFile(opts.json, JSON.stringify(summary, null, 2) + '\n');
  } finally {
    for (const s of servers) await s.stop('SIGTERM', 3_000).catch(() => undefined);
    for (const p of pairs) await p.close().catch((e: unknown) => console.error(`cleanup ${p.name}: ${(e as Error).message}`));
    try {
      execFileSync('ip', ['route', 'del', 'blackhole', svc.subnet]);
    } catch (e) {
      console.error(`cleanup blackhole route ${svc.subnet}: ${(e as Error).message}`);
    }
    await rm(work, { recursive: true, force: true });
    release();
  }
}

await main();
