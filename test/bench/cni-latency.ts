/**
 * CNI ADD and DEL latency through libcni, per variant, against the exec
 * floor of a node process. Each sample is the time spent inside the libcni
 * call as build/cnidriver reports it, so the driver's own start-up is not
 * counted. Variants are interleaved pod by pod (ABC, BCA, CAB, ...), every
 * pod gets a fresh network namespace, and everything is removed at the end,
 * also after a failure or Ctrl-C.
 *
 * podnet runs once per way of packaging its entry point (lib/entry-points.ts:
 * the node bundle, bun build --compile with and without bytecode, Node's
 * single executable applications, deno compile), each with its own agent,
 * all in the same run as the reference plugins, and each is reported with
 * its file size and the peak RSS of one exec (a DEL of an unknown pod).
 *
 * Usage: node --import tsx test/bench/cni-latency.ts [--pods 100]
 *   [--concurrent 100] [--concurrency 100] [--rounds 3] [--budget-min 30]
 *   [--entry-points node,bun,bun-bytecode,sea,sea-code-cache,sea-snapshot,deno]
 *   [--rss-runs 5] [--json FILE]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
  peakRssKiB,
  printJsonSummary,
  buildEntryPoints,
  ENTRY_POINT_NAMES,
  referencePluginDir,
  SYSTEM_PATH,
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
  type EntryPoint,
  type EntryPointName,
} from './lib/index.js';
import { intOption } from './lib/args.js';

interface Options {
  pods: number;
  concurrent: number;
  concurrency: number;
  rounds: number;
  budgetMs: number;
  entryPoints: EntryPointName[];
  rssRuns: number;
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
      'entry-points': { type: 'string' },
      'rss-runs': { type: 'string' },
      json: { type: 'string' },
    },
  });
  const entryPoints = (values['entry-points'] ?? ENTRY_POINT_NAMES.join(',')).split(',').filter(Boolean);
  for (const e of entryPoints) {
    if (!(ENTRY_POINT_NAMES as readonly string[]).includes(e)) throw new PodnetError('INVALID_ARGUMENT', `parse --entry-points: unknown ${e} (known: ${ENTRY_POINT_NAMES.join(', ')})`);
  }
  return {
    pods: intOption('pods', values.pods, 100),
    concurrent: intOption('concurrent', values.concurrent, 100),
    concurrency: intOption('concurrency', values.concurrency, 100),
    rounds: intOption('rounds', values.rounds, 3),
    budgetMs: intOption('budget-min', values['budget-min'], 30) * 60_000,
    entryPoints: entryPoints as EntryPointName[],
    rssRuns: intOption('rss-runs', values['rss-runs'], 5),
    json: values.json,
  };
}

/** Samples of one variant, in milliseconds (RSS in KiB). */
interface VariantSamples {
  add: number[];
  del: number[];
  concurrentWallMs: number[];
  rssKiB: number[];
}

/** What the entry-point comparison needs besides the samples. */
interface Packaging {
  /** The entry point each podnet variant runs. */
  readonly entryPoints: ReadonlyMap<string, EntryPoint>;
  readonly floorRssKiB: readonly number[];
}

const PODNET_PREFIX = 'podnet/';

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

  const entryPoints = new Map<string, EntryPoint>();
  const tags = new Map<PreparedVariant, string>();
  const tagOf = (p: PreparedVariant): string => tags.get(p) ?? 'v0';
  const floorRss: number[] = [];
  try {
    console.error(`building entry points: ${opts.entryPoints.join(', ')}`);
    const eps = await buildEntryPoints(join(work, 'entry-points'), opts.entryPoints);
    for (const s of eps.skipped) {
      console.log(`skip ${PODNET_PREFIX}${s.name}: ${s.reason}`);
      skipped.push({ variant: `${PODNET_PREFIX}${s.name}`, reason: s.reason });
    }
    const podnetVariants = eps.built.map((ep) => {
      entryPoints.set(`${PODNET_PREFIX}${ep.name}`, ep);
      return podnet({ binary: ep.binary, name: `${PODNET_PREFIX}${ep.name}` });
    });
    for (const v of [ptpHostLocal(), bridgeHostLocal(), ...podnetVariants]) {
      const reason = await v.unavailable();
      if (reason) {
        console.log(`skip ${v.name}: ${reason}`);
        skipped.push({ variant: v.name, reason });
        continue;
      }
      const p = await v.setup({ workDir: work });
      prepared.push(p);
      // podnet names host veths after the container ID, so IDs must differ between podnet variants.
      tags.set(p, `v${prepared.length}`);
      live.set(p, []);
      samples.set(p, { add: [], del: [], concurrentWallMs: [], rssKiB: [] });
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
      const { pod } = await addPod(p, d, `${tagOf(p)}-warmup`);
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
        const { pod, call } = await addPod(p, d, `${tagOf(p)}-lat-${i}`);
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
            const containerId = `${tagOf(p)}-conc-${r}-${i}`;
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

    console.error(`peak RSS: ${opts.rssRuns} direct execs per variant (DEL of an unknown pod)`);
    for (let r = 0; r < opts.rssRuns && !stop(); r++) {
      for (const p of rotation(order, r)) {
        if (p === FLOOR) {
          floorRss.push(await peakRssKiB(process.execPath, { PATH: SYSTEM_PATH }, ''));
          continue;
        }
        samples.get(p)?.rssKiB.push(await rssOfDel(p, `${tagOf(p)}-rss-${r}`));
      }
    }

    const packaging: Packaging = { entryPoints, floorRssKiB: floorRss };
    report(opts, prepared, samples, floorSamples, floorConcurrent, skipped, stop(), packaging);
    if (opts.json) {
      await writeFile(opts.json, JSON.stringify(summaryJson(opts, prepared, samples, floorSamples, floorConcurrent, skipped, packaging), null, 2) + '\n');
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

/**
 * Peak RSS (KiB) of the variant's first plugin exec'd directly, the way
 * libcni would, for a DEL of a pod that does not exist: start-up, reading
 * the config and (for podnet) one agent round trip.
 */
async function rssOfDel(p: PreparedVariant, containerId: string): Promise<number> {
  const list = JSON.parse(await readFile(p.conflist, 'utf8')) as { cniVersion: string; name: string; plugins: Array<{ type: string }> };
  const plugin = list.plugins[0];
  if (!plugin) throw new PodnetError('BENCH_FAILED', `measure peak RSS of ${p.name}: ${p.conflist} has no plugin`);
  const conf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...plugin });
  const env = { PATH: SYSTEM_PATH, CNI_COMMAND: 'DEL', CNI_CONTAINERID: containerId, CNI_NETNS: '', CNI_IFNAME: 'eth0', CNI_PATH: [...p.cniPath, await referencePluginDir()].join(':') };
  return peakRssKiB(join(p.cniPath[0] ?? '', plugin.type), env, conf);
}

function row(name: string, op: string, s: Summary, floorP50: number, peerP50: number | undefined): Cell[] {
  return [name, op, String(s.n), s.p50, s.p90, s.p99, s.max, ratio(s.p50, floorP50), peerP50 === undefined ? Number.NaN : ratio(s.p50, peerP50)];
}

/** The median of `xs`, or undefined for no samples. */
const med = (xs: readonly number[] | undefined): number | undefined => (xs && xs.length > 0 ? median(xs) : undefined);

/** The targets for the entry point, against ptp+host-local in the same run. */
const TARGETS = { addP50VsPtp: 1.3, delP50VsPtp: 1.0, concurrentVsPtp: 1.5 } as const;

/** One row of the entry-point comparison: figures and their ratios to ptp+host-local. */
interface EntryPointFigures {
  readonly variant: string;
  readonly sizeBytes: number | undefined;
  readonly peakRssKiB: number | undefined;
  readonly add: Summary | undefined;
  readonly del: Summary | undefined;
  readonly concurrentWallMedianMs: number | undefined;
  readonly ratios: { readonly addP50VsPtp: number | null; readonly delP50VsPtp: number | null; readonly concurrentVsPtp: number | null; readonly rssVsPtp: number | null };
  readonly targetsMet: { readonly add: boolean | null; readonly del: boolean | null; readonly concurrent: boolean | null };
}

function entryPointFigures(
  prepared: readonly PreparedVariant[],
  samples: ReadonlyMap<PreparedVariant, VariantSamples>,
  packaging: Packaging,
): EntryPointFigures[] {
  const peer = prepared.find((p) => p.name === 'ptp+host-local');
  const ps = peer ? samples.get(peer) : undefined;
  const peerAdd = med(ps?.add);
  const peerDel = med(ps?.del);
  const peerConc = med(ps?.concurrentWallMs);
  const peerRss = med(ps?.rssKiB);
  const r = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : ratio(a, b));
  const within = (x: number | null, limit: number): boolean | null => (x === null ? null : x <= limit);
  return prepared
    .filter((p) => p === peer || p.name.startsWith(PODNET_PREFIX))
    .map((p) => {
      const s = samples.get(p);
      const add = s && s.add.length > 0 ? summarize(s.add) : undefined;
      const del = s && s.del.length > 0 ? summarize(s.del) : undefined;
      const conc = med(s?.concurrentWallMs);
      const rss = med(s?.rssKiB);
      const ratios = { addP50VsPtp: r(add?.p50, peerAdd), delP50VsPtp: r(del?.p50, peerDel), concurrentVsPtp: r(conc, peerConc), rssVsPtp: r(rss, peerRss) };
      return {
        variant: p.name,
        sizeBytes: packaging.entryPoints.get(p.name)?.sizeBytes,
        peakRssKiB: rss,
        add,
        del,
        concurrentWallMedianMs: conc,
        ratios,
        targetsMet: {
          add: within(ratios.addP50VsPtp, TARGETS.addP50VsPtp),
          del: within(ratios.delP50VsPtp, TARGETS.delP50VsPtp),
          concurrent: within(ratios.concurrentVsPtp, TARGETS.concurrentVsPtp),
        },
      };
    });
}

function summaryJson(
  opts: Options,
  prepared: readonly PreparedVariant[],
  samples: ReadonlyMap<PreparedVariant, VariantSamples>,
  floorSamples: readonly number[],
  floorConcurrent: readonly number[],
  skipped: readonly { variant: string; reason: string }[],
  packaging: Packaging,
): unknown {
  const floor = floorSamples.length > 0 ? summarize(floorSamples) : undefined;
  const peer = prepared.find((p) => p.name === 'ptp+host-local');
  const peerAdd = med(peer ? samples.get(peer)?.add : undefined);
  const peerDel = med(peer ? samples.get(peer)?.del : undefined);
  const floorConc = med(floorConcurrent);
  return {
    benchmark: 'cni-latency',
    unit: 'ms',
    measure: 'time inside the libcni call (build/cnidriver --timing), sequential pods each in a fresh netns; peak RSS in KiB of one direct exec (DEL of an unknown pod)',
    note: NOISE_NOTE,
    machine: machineInfo(),
    params: { pods: opts.pods, concurrent: opts.concurrent, concurrency: opts.concurrency, rounds: opts.rounds, rssRuns: opts.rssRuns, entryPoints: opts.entryPoints },
    skipped,
    targets: TARGETS,
    floor: { sequential: floor, concurrentWallMs: floorConcurrent, concurrentWallMedianMs: floorConc, peakRssKiB: med(packaging.floorRssKiB) },
    entryPoints: entryPointFigures(prepared, samples, packaging),
    variants: Object.fromEntries(
      prepared.map((p) => {
        const s = samples.get(p);
        const add = s && s.add.length > 0 ? summarize(s.add) : undefined;
        const del = s && s.del.length > 0 ? summarize(s.del) : undefined;
        const conc = med(s?.concurrentWallMs);
        return [
          p.name,
          {
            add,
            del,
            concurrentWallMs: s?.concurrentWallMs ?? [],
            concurrentWallMedianMs: conc,
            peakRssKiB: s?.rssKiB ?? [],
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
  packaging: Packaging,
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

  const mark = (ok: boolean | null): string => (ok === null ? 'n/a' : ok ? 'yes' : 'NO');
  const erow: Cell[][] = entryPointFigures(prepared, samples, packaging).map((f) => [
    f.variant,
    f.sizeBytes === undefined ? '—' : (f.sizeBytes / 2 ** 20).toFixed(2),
    f.peakRssKiB === undefined ? Number.NaN : f.peakRssKiB / 1024,
    f.add?.p50 ?? Number.NaN,
    f.add?.p99 ?? Number.NaN,
    f.del?.p50 ?? Number.NaN,
    f.del?.p99 ?? Number.NaN,
    f.concurrentWallMedianMs ?? Number.NaN,
    f.ratios.addP50VsPtp ?? Number.NaN,
    f.ratios.delP50VsPtp ?? Number.NaN,
    f.ratios.concurrentVsPtp ?? Number.NaN,
    `${mark(f.targetsMet.add)}/${mark(f.targetsMet.del)}/${mark(f.targetsMet.concurrent)}`,
  ]);
  const floorRss = med(packaging.floorRssKiB);
  console.log(`\nEntry points (podnet/<packaging>) against ptp+host-local; targets: ADD p50 <= ${TARGETS.addP50VsPtp}x, DEL p50 <= ${TARGETS.delP50VsPtp}x, concurrent <= ${TARGETS.concurrentVsPtp}x ptp`);
  console.log(formatTable(['variant', 'size MiB', 'RSS MiB', 'ADD p50', 'ADD p99', 'DEL p50', 'DEL p99', 'conc ms', 'ADD/ptp', 'DEL/ptp', 'conc/ptp', 'targets A/D/C'], erow));
  if (floorRss !== undefined) console.log(`peak RSS of node -e 0: ${(floorRss / 1024).toFixed(1)} MiB`);
  for (const s of skipped) console.log(`skipped ${s.variant}: ${s.reason}`);

  printJsonSummary(summaryJson(opts, prepared, samples, floorSamples, floorConcurrent, skipped, packaging));
}

await main();
