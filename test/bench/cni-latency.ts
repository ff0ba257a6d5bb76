/**
 * CNI ADD and DEL latency through libcni, per variant, against the exec
 * floor of a node process. Each sample is the time spent inside the libcni
 * call as build/cnidriver reports it, so the driver's own start-up is not
 * counted. Variants are interleaved pod by pod (ABC, BCA, CAB, ...), every
 * pod gets a fresh network namespace, and everything is removed at the end,
 * also after a failure or Ctrl-C.
 *
 * Usage: node --import tsx test/bench/cni-latency.ts [--pods 100]
 *   [--concurrent 100] [--concurrency 100] [--rounds 3] [--budget-min 20]
 *   [--podnet-bin build/cni/podnet.cjs] [--json FILE]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
  cniDriver,
  delPod,
  formatTable,
  libcniMs,
  machineInfo,
  mapLimit,
  nodeFloor,
  podnet,
  printJsonSummary,
  ptpHostLocal,
  ratio,
  rotation,
  summarize,
  median,
  type BenchPod,
  type Cell,
  type DriverContext,
  type PreparedVariant,
  type Summary,
} from './lib/index.js';
import { intOption } from './lib/args.js';

interface Options {
  pods: number;
  concurrent: number;
  concurrency: number;
  rounds: number;
  budgetMs: number;
  podnetBin: string | undefined;
  json: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      pods: { type: 'string' },
      concurrent: { type: 'string' },
      concurrency: { type: 'string' },
      rounds: { type: 'string' },
      'budget-min': { type: 'string' },
      'podnet-bin': { type: 'string' },
      json: { type: 'string' },
    },
  });
  return {
    pods: intOption('pods', values.pods, 100),
    concurrent: intOption('concurrent', values.concurrent, 100),
    concurrency: intOption('concurrency', values.concurrency, 100),
    rounds: intOption('rounds', values.rounds, 3),
    budgetMs: intOption('budget-min', values['budget-min'], 20) * 60_000,
    podnetBin: values['podnet-bin'],
    json: values.json,
  };
}

/** Samples of one variant, in milliseconds. */
interface VariantSamples {
  add: number[];
  del: number[];
  concurrentWallMs: number[];
}

const FLOOR = Symbol('floor');

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  console.log('CNI ADD/DEL latency through libcni (time inside the libcni call, driver start-up excluded)');
  console.log(NOISE_NOTE);

  const { stop, release } = stopCondition(opts.budgetMs);
  const driver = await buildCniDriver();
  const work = await mkdtemp(join(tmpdir(), 'podnet-bench-cni-'));
  const d: DriverContext = { driver, cacheDir: join(work, 'cache') };
  const prepared: PreparedVariant[] = [];
  const skipped: { variant: string; reason: string }[] = [];
  const live = new Map<PreparedVariant, BenchPod[]>();
  const samples = new Map<PreparedVariant, VariantSamples>();
  const floorSamples: number[] = [];
  const floorConcurrent: number[] = [];
  let floor: PreparedVariant | undefined;

  try {
    for (const v of [ptpHostLocal(), bridgeHostLocal(), podnet({ binary: opts.podnetBin })]) {
      const reason = await v.unavailable();
      if (reason) {
        console.log(`skip ${v.name}: ${reason}`);
        skipped.push({ variant: v.name, reason });
        continue;
      }
      const p = await v.setup({ workDir: work });
      prepared.push(p);
      live.set(p, []);
      samples.set(p, { add: [], del: [], concurrentWallMs: [] });
    }
    const floorVariant = nodeFloor();
    const floorReason = await floorVariant.unavailable();
    if (floorReason) throw new PodnetError('BENCH_FAILED', `set up the floor: ${floorReason}`);
    floor = await floorVariant.setup({ workDir: work });
    const floorPrepared = floor;

    const floorCall = async (id: string): Promise<number> => {
      const call = await cniDriver('del', { driver, cacheDir: d.cacheDir, conflist: floorPrepared.conflist, cniPath: floorPrepared.cniPath, containerId: id, ifname: 'eth0' });
      if (!call.ok) throw new PodnetError('BENCH_FAILED', `exec the floor: ${call.error.msg}`);
      return libcniMs(call);
    };
    const order: (PreparedVariant | typeof FLOOR)[] = [...prepared, FLOOR];

    // Warm-up, not recorded: the first exec of each binary pays for page cache misses.
    for (const p of prepared) {
      const { pod } = await addPod(p, d, 'warmup');
      await delPod(p, d, pod);
    }
    for (let i = 0; i < 3; i++) await floorCall(`warmup-${i}`);

    console.error(`sequential: ${opts.pods} pods per variant, variants: ${prepared.map((p) => p.name).join(', ') || '(none)'} + floor`);
    let addedRounds = 0;
    for (let i = 0; i < opts.pods && !stop(); i++, addedRounds++) {
      for (const p of rotation(order, i)) {
        if (p === FLOOR) {
          floorSamples.push(await floorCall(`add-${i}`));
          continue;
        }
        const { pod, call } = await addPod(p, d, `lat-${i}`);
        live.get(p)?.push(pod);
        samples.get(p)?.add.push(libcniMs(call));
      }
      if ((i + 1) % 25 === 0) console.error(`  ADD ${i + 1}/${opts.pods}`);
    }
    // DEL every pod, oldest first, interleaved the same way; runs even after a stop so nothing stays.
    for (let i = 0; i < addedRounds; i++) {
      for (const p of rotation(order, i)) {
        if (p === FLOOR) {
          if (!stop()) floorSamples.push(await floorCall(`del-${i}`));
          continue;
        }
        const pod = live.get(p)?.shift();
        if (!pod) continue;
        const call = await delPod(p, d, pod);
        samples.get(p)?.del.push(libcniMs(call));
      }
      if ((i + 1) % 25 === 0) console.error(`  DEL ${i + 1}/${addedRounds}`);
    }

    console.error(`concurrent: ${opts.concurrent} ADDs at once (at most ${opts.concurrency} in flight), ${opts.rounds} rounds`);
    for (let r = 0; r < opts.rounds && !stop(); r++) {
      for (const p of rotation(order, r)) {
        if (stop()) break;
        if (p === FLOOR) {
          const t0 = process.hrtime.bigint();
          await mapLimit([...Array(opts.concurrent).keys()], opts.concurrency, (i) => floorCall(`conc-${r}-${i}`));
          floorConcurrent.push(Number(process.hrtime.bigint() - t0) / 1e6);
          continue;
        }
        const nss = await mapLimit([...Array(opts.concurrent).keys()], 8, () => Netns.create('pnb'));
        const pods = live.get(p) ?? [];
        let wall: number;
        try {
          const t0 = process.hrtime.bigint();
          await mapLimit(nss, opts.concurrency, async (ns, i) => {
            const containerId = `conc-${r}-${i}`;
            const res = await cniDriver('add', { driver, cacheDir: d.cacheDir, conflist: p.conflist, cniPath: p.cniPath, containerId, netns: ns.path, ifname: 'eth0' });
            // Tracked before checking, so a half-made pod is deleted too.
            pods.push({ ns, containerId, ip: '' });
            if (!res.ok) throw new PodnetError('CNI', `cni add ${containerId} to ${p.name}: code ${res.error.code}: ${res.error.msg}`);
          });
          wall = Number(process.hrtime.bigint() - t0) / 1e6;
        } finally {
          const added = new Set(pods.map((x) => x.ns));
          for (const ns of nss) if (!added.has(ns)) await ns.close();
        }
        samples.get(p)?.concurrentWallMs.push(wall);
        await mapLimit(pods.splice(0), 8, (pod) => delPod(p, d, pod));
      }
    }

    report(opts, prepared, samples, floorSamples, floorConcurrent, skipped, stop());
    if (opts.json) {
      await writeFile(opts.json, JSON.stringify(summaryJson(opts, prepared, samples, floorSamples, floorConcurrent, skipped), null, 2) + '\n');
    }
  } finally {
    for (const [p, pods] of live) {
      for (const pod of pods.splice(0)) await delPod(p, d, pod).catch((e: unknown) => console.error(`cleanup: ${(e as Error).message}`));
    }
    for (const p of prepared) await p.teardown().catch((e: unknown) => console.error(`cleanup ${p.name}: ${(e as Error).message}`));
    await floor?.teardown();
    await rm(work, { recursive: true, force: true });
    release();
  }
}

function row(name: string, op: string, s: Summary, floorP50: number, peerP50: number | undefined): Cell[] {
  return [name, op, String(s.n), s.p50, s.p90, s.p99, s.max, ratio(s.p50, floorP50), peerP50 === undefined ? Number.NaN : ratio(s.p50, peerP50)];
}

function summaryJson(
  opts: Options,
  prepared: readonly PreparedVariant[],
  samples: ReadonlyMap<PreparedVariant, VariantSamples>,
  floorSamples: readonly number[],
  floorConcurrent: readonly number[],
  skipped: readonly { variant: string; reason: string }[],
): unknown {
  const floor = floorSamples.length > 0 ? summarize(floorSamples) : undefined;
  const peer = prepared.find((p) => p.name === 'ptp+host-local');
  const peerAdd = peer && samples.get(peer)?.add.length ? median(samples.get(peer)?.add ?? []) : undefined;
  const peerDel = peer && samples.get(peer)?.del.length ? median(samples.get(peer)?.del ?? []) : undefined;
  const floorConc = floorConcurrent.length > 0 ? median(floorConcurrent) : undefined;
  return {
    benchmark: 'cni-latency',
    unit: 'ms',
    measure: 'time inside the libcni call (build/cnidriver --timing), sequential pods each in a fresh netns',
    note: NOISE_NOTE,
    machine: machineInfo(),
    params: { pods: opts.pods, concurrent: opts.concurrent, concurrency: opts.concurrency, rounds: opts.rounds },
    skipped,
    floor: { sequential: floor, concurrentWallMs: floorConcurrent, concurrentWallMedianMs: floorConc },
    variants: Object.fromEntries(
      prepared.map((p) => {
        const s = samples.get(p);
        const add = s && s.add.length > 0 ? summarize(s.add) : undefined;
        const del = s && s.del.length > 0 ? summarize(s.del) : undefined;
        const conc = s && s.concurrentWallMs.length > 0 ? median(s.concurrentWallMs) : undefined;
        return [
          p.name,
          {
            add,
            del,
            concurrentWallMs: s?.concurrentWallMs ?? [],
            concurrentWallMedianMs: conc,
            ratios: {
              addP50VsFloor: add && floor ? ratio(add.p50, floor.p50) : null,
              delP50VsFloor: del && floor ? ratio(del.p50, floor.p50) : null,
              addP50VsPtp: add && peerAdd !== undefined ? ratio(add.p50, peerAdd) : null,
              delP50VsPtp: del && peerDel !== undefined ? ratio(del.p50, peerDel) : null,
              concurrentVsFloor: conc !== undefined && floorConc !== undefined ? ratio(conc, floorConc) : null,
            },
          },
        ];
      }),
    ),
  };
}

function report(
  opts: Options,
  prepared: readonly PreparedVariant[],
  samples: ReadonlyMap<PreparedVariant, VariantSamples>,
  floorSamples: readonly number[],
  floorConcurrent: readonly number[],
  skipped: readonly { variant: string; reason: string }[],
  cutShort: boolean,
): void {
  if (cutShort) console.log('\nNOTE: stopped early (time budget or signal); sample counts below are smaller than requested.');
  if (floorSamples.length === 0) {
    console.log('\nno samples');
    return;
  }
  const floor = summarize(floorSamples);
  const peer = prepared.find((p) => p.name === 'ptp+host-local');
  const rows: Cell[][] = [];
  for (const p of prepared) {
    const s = samples.get(p);
    if (!s || s.add.length === 0) continue;
    const peerS = peer ? samples.get(peer) : undefined;
    rows.push(row(p.name, 'ADD', summarize(s.add), floor.p50, peerS?.add.length ? median(peerS.add) : undefined));
    if (s.del.length > 0) rows.push(row(p.name, 'DEL', summarize(s.del), floor.p50, peerS?.del.length ? median(peerS.del) : undefined));
  }
  rows.push(row('floor: node -e 0', 'exec', floor, floor.p50, undefined));
  console.log(`\nSequential, one pod at a time in a fresh netns (ms inside libcni; ${opts.pods} pods requested per variant)`);
  console.log(formatTable(['variant', 'op', 'n', 'p50', 'p90', 'p99', 'max', 'p50/floor', 'p50/ptp'], rows));

  const floorConc = floorConcurrent.length > 0 ? median(floorConcurrent) : Number.NaN;
  const peerConc = peer && samples.get(peer)?.concurrentWallMs.length ? median(samples.get(peer)?.concurrentWallMs ?? []) : Number.NaN;
  const crow: Cell[][] = [];
  for (const p of prepared) {
    const w = samples.get(p)?.concurrentWallMs ?? [];
    if (w.length === 0) continue;
    const m = median(w);
    crow.push([p.name, String(w.length), m, Math.min(...w), Math.max(...w), m / opts.concurrent, ratio(m, floorConc), ratio(m, peerConc)]);
  }
  if (floorConcurrent.length > 0) {
    crow.push(['floor: node -e 0', String(floorConcurrent.length), floorConc, Math.min(...floorConcurrent), Math.max(...floorConcurrent), floorConc / opts.concurrent, 1, Number.NaN]);
  }
  console.log(`\n${opts.concurrent} concurrent ADDs (at most ${opts.concurrency} in flight): wall time in ms, driver processes included`);
  console.log(formatTable(['variant', 'rounds', 'median', 'min', 'max', 'per pod', 'vs floor', 'vs ptp'], crow));
  for (const s of skipped) console.log(`skipped ${s.variant}: ${s.reason}`);

  printJsonSummary(summaryJson(opts, prepared, samples, floorSamples, floorConcurrent, skipped));
}

await main();
