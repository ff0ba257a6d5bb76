/**
 * BPF map operations through podnet's libbpf bindings against libbpf called
 * from C, and koffi against ffi-napi. One BPF_MAP_TYPE_HASH (u32 key,
 * 16-byte value, 100k max entries by default) is created with
 * BpfMap.create, filled, and pinned under /sys/fs/bpf/podnet-bench-<rand>/
 * so the C baseline (test/bench/maps-baseline.c) and the ffi-napi variant
 * (test/bench/maps-ffi-napi.cjs) work on the very same map; every variant
 * overwrites keys that already exist, so the map stays full and identical
 * for all of them.
 *
 * Measured, per variant, with all variants interleaved round by round
 * (order rotated each round and reversed every other round), medians
 * reported:
 *   - single update, ns/op: BpfMap.update, a raw koffi declaration of
 *     bpf_map_update_elem, ffi-napi, C;
 *   - single lookup, ns/op: BpfMap.lookupInto, BpfMap.lookup, raw koffi, C;
 *   - batch update, entries/s: BpfMap.updateBatchRaw, BpfMap.updateBatch
 *     (Buffer arrays), C bpf_map_update_batch, per batch size.
 * Every sample first runs an untimed warm-up and is bounded in count and in
 * time. Each write variant fills values with its own marker byte and the
 * driver checks the marker afterwards, so a variant that wrote nowhere
 * fails the run. The C and ffi-napi samples run in a fresh process each;
 * only their inner loop is timed (the child's own clock).
 *
 * Targets (PASS/MISS): a single update through the bindings costs at most
 * 1.5x the C call; batch update through the bindings reaches at least 0.8x
 * the C rate; ffi-napi costs more per call than koffi.
 *
 * Usage: node --import tsx test/bench/maps.ts [--rounds 7] [--ops 200000]
 *   [--max-entries 100000] [--batch-sizes 10000,100000] [--batch-passes 10]
 *   [--warmup 5000] [--sample-max-ms 5000] [--budget-min 20] [--json FILE]
 *   [--strict]   (exit 1 when a target is missed)
 * Needs root (CAP_BPF), bpffs at /sys/fs/bpf, gcc and libbpf-dev.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import koffi from 'koffi';
import { PodnetError } from '../../agent/src/errors/index.js';
import { BpfMap } from '../../agent/src/libbpf/index.js';
import { Deadline, NOISE_NOTE, printJsonSummary, rotation } from './lib/runner.js';
import { median, ratio } from './lib/stats.js';
import { fmt, formatTable, type Cell } from './lib/table.js';
import { intOption } from './lib/args.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const C_SOURCE = join(ROOT, 'test/bench/maps-baseline.c');
const C_BINARY = join(ROOT, 'build/bench/maps-baseline');
const FFI_NAPI_SCRIPT = join(ROOT, 'test/bench/maps-ffi-napi.cjs');
const GCC_ARGS = ['-O2', '-Wall', '-Wextra', '-o', C_BINARY, C_SOURCE, '-lbpf'];
const COMMAND = 'node --import tsx test/bench/maps.ts';
const KEY_SIZE = 4;
const VALUE_SIZE = 16;
const UPDATE_TARGET = 1.5;
const BATCH_TARGET = 0.8;

interface Options {
  rounds: number;
  ops: number;
  maxEntries: number;
  batchSizes: number[];
  batchPasses: number;
  warmup: number;
  sampleMaxMs: number;
  budgetMs: number;
  json: string | undefined;
  strict: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      ops: { type: 'string' },
      'max-entries': { type: 'string' },
      'batch-sizes': { type: 'string' },
      'batch-passes': { type: 'string' },
      warmup: { type: 'string' },
      'sample-max-ms': { type: 'string' },
      'budget-min': { type: 'string' },
      json: { type: 'string' },
      strict: { type: 'boolean' },
    },
  });
  const maxEntries = intOption('max-entries', values['max-entries'], 100_000, 1);
  const batchSizes = (values['batch-sizes'] ?? '10000,100000').split(',').map((s) => intOption('batch-sizes', s.trim(), 0, 1));
  for (const b of batchSizes) {
    if (b > maxEntries) throw new PodnetError('INVALID_ARGUMENT', `parse --batch-sizes: ${b} exceeds --max-entries ${maxEntries}`);
  }
  return {
    rounds: intOption('rounds', values.rounds, 7, 1),
    ops: intOption('ops', values.ops, 200_000, 1),
    maxEntries,
    batchSizes: [...new Set(batchSizes)],
    batchPasses: intOption('batch-passes', values['batch-passes'], 10, 1),
    warmup: intOption('warmup', values.warmup, 5000, 0),
    sampleMaxMs: intOption('sample-max-ms', values['sample-max-ms'], 5000, 1),
    budgetMs: intOption('budget-min', values['budget-min'], 20, 1) * 60_000,
    json: values.json,
    strict: values.strict ?? false,
  };
}

// ---------------------------------------------------------------------------
// Samples and variants

/** Operations (elements for batches) timed in one sample and the time they took. */
interface Sample {
  ops: number;
  ns: number;
}

type Group = 'update' | 'lookup' | `batch-${number}`;

/** One thing measured once per round. */
interface Variant {
  /** Stable key in the JSON summary. */
  id: string;
  group: Group;
  label: string;
  /** Value byte this variant writes; checked after each sample. Absent for lookups. */
  marker?: number;
  /** A peer (C) the group's ratios are taken against. */
  baseline?: boolean;
  run(): Promise<Sample>;
}

/** Where every variant's samples end up. */
type Samples = Map<string, Sample[]>;

/** ns/op for single operations, entries/s for batches. */
function metric(group: Group, s: Sample): number {
  return group.startsWith('batch-') ? s.ops / (s.ns / 1e9) : s.ns / s.ops;
}

const hrNow = process.hrtime.bigint;

function deadlineNs(ms: number): bigint {
  return hrNow() + BigInt(ms) * 1_000_000n;
}

// The in-process loops below are written out one per variant on purpose: a
// shared loop taking a callback would make its call site polymorphic and
// charge every variant for it. Each reads the clock once per 1024 calls.

function updateViaBindings(map: BpfMap, key: Buffer, keyView: Uint32Array, value: Buffer, n: number, range: number, end: bigint): number {
  let k = 0;
  let i = 0;
  for (; i < n; i++) {
    keyView[0] = k;
    map.update(key, value);
    if (++k === range) k = 0;
    if ((i & 1023) === 1023 && hrNow() >= end) return i + 1;
  }
  return i;
}

/** bpf_map_update_elem declared straight with koffi: the FFI floor under the bindings. */
type RawUpdate = (fd: number, key: Uint8Array, value: Uint8Array, flags: bigint) => number;
/** bpf_map_lookup_elem declared straight with koffi. */
type RawLookup = (fd: number, key: Uint8Array, value: Uint8Array) => number;

function updateViaKoffi(fn: RawUpdate, fd: number, key: Buffer, keyView: Uint32Array, value: Buffer, n: number, range: number, end: bigint): number {
  let k = 0;
  let i = 0;
  for (; i < n; i++) {
    keyView[0] = k;
    const rc = fn(fd, key, value, 0n);
    if (rc !== 0) throw new PodnetError('BENCH_FAILED', `update element ${k} through koffi: rc ${rc}`);
    if (++k === range) k = 0;
    if ((i & 1023) === 1023 && hrNow() >= end) return i + 1;
  }
  return i;
}

function lookupIntoViaBindings(map: BpfMap, key: Buffer, keyView: Uint32Array, out: Buffer, n: number, range: number, end: bigint): number {
  let k = 0;
  let i = 0;
  for (; i < n; i++) {
    keyView[0] = k;
    if (!map.lookupInto(key, out)) throw new PodnetError('BENCH_FAILED', `look up element ${k}: missing`);
    if (++k === range) k = 0;
    if ((i & 1023) === 1023 && hrNow() >= end) return i + 1;
  }
  return i;
}

function lookupViaBindings(map: BpfMap, key: Buffer, keyView: Uint32Array, n: number, range: number, end: bigint): number {
  let k = 0;
  let i = 0;
  for (; i < n; i++) {
    keyView[0] = k;
    if (map.lookup(key) === undefined) throw new PodnetError('BENCH_FAILED', `look up element ${k}: missing`);
    if (++k === range) k = 0;
    if ((i & 1023) === 1023 && hrNow() >= end) return i + 1;
  }
  return i;
}

function lookupViaKoffi(fn: RawLookup, fd: number, key: Buffer, keyView: Uint32Array, out: Buffer, n: number, range: number, end: bigint): number {
  let k = 0;
  let i = 0;
  for (; i < n; i++) {
    keyView[0] = k;
    const rc = fn(fd, key, out);
    if (rc !== 0) throw new PodnetError('BENCH_FAILED', `look up element ${k} through koffi: rc ${rc}`);
    if (++k === range) k = 0;
    if ((i & 1023) === 1023 && hrNow() >= end) return i + 1;
  }
  return i;
}

/** One batch: packed keys and values, and their element count. */
interface PackedBatch {
  keys: Buffer;
  values: Buffer;
  count: number;
}

function batchViaRaw(map: BpfMap, batches: readonly PackedBatch[], n: number, end: bigint): number {
  let done = 0;
  let j = 0;
  while (done < n) {
    const b = batches[j]!;
    const w = map.updateBatchRaw(b.keys, b.values, b.count);
    if (w !== b.count) throw new PodnetError('BENCH_FAILED', `update batch: wrote ${w} of ${b.count}`);
    done += w;
    if (++j === batches.length) j = 0;
    if (hrNow() >= end) break;
  }
  return done;
}

function batchViaArrays(map: BpfMap, batches: readonly { keys: Buffer[]; values: Buffer[] }[], n: number, end: bigint): number {
  let done = 0;
  let j = 0;
  while (done < n) {
    const b = batches[j]!;
    const w = map.updateBatch(b.keys, b.values);
    if (w !== b.keys.length) throw new PodnetError('BENCH_FAILED', `update batch: wrote ${w} of ${b.keys.length}`);
    done += w;
    if (++j === batches.length) j = 0;
    if (hrNow() >= end) break;
  }
  return done;
}

/** Splits keys 0..range-1 into batches of `size` the way the C baseline walks them. */
function batchBounds(range: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let off = 0; off < range; off += size) out.push([off, Math.min(size, range - off)]);
  return out;
}

/** Times one in-process loop after an untimed warm-up of the same loop. */
function timeInProcess(warmupOps: number, maxMs: number, loop: (n: number, end: bigint) => number, ops: number): Sample {
  loop(warmupOps, deadlineNs(Math.max(1, maxMs / 4)));
  const t0 = hrNow();
  const done = loop(ops, t0 + BigInt(maxMs) * 1_000_000n);
  const ns = Number(hrNow() - t0);
  return { ops: done, ns };
}

// ---------------------------------------------------------------------------
// Subprocesses

/** Runs a baseline process and parses the JSON line it prints. */
function runChild(file: string, args: string[], timeoutMs: number): Promise<Sample & Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const what = `run ${[file, ...args].join(' ')}`;
      if (err) {
        reject(new PodnetError('BENCH_FAILED', `${what}: ${err.killed ? `killed after ${timeoutMs} ms` : err.message.trim()}${stderr ? `: ${stderr.trim()}` : ''}`, { cause: err }));
        return;
      }
      const line = stdout.trim().split('\n').pop() ?? '';
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (e) {
        reject(new PodnetError('BENCH_FAILED', `${what}: output is not JSON: ${line.slice(0, 200)}`, { cause: e }));
        return;
      }
      const o = parsed as Record<string, unknown>;
      if (typeof o.ops !== 'number' || typeof o.ns !== 'number' || !(o.ops > 0) || !(o.ns > 0)) {
        reject(new PodnetError('BENCH_FAILED', `${what}: no timed operations in ${line.slice(0, 200)}`));
        return;
      }
      resolve(o as Sample & Record<string, unknown>);
    });
  });
}

function runFile(file: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: 120_000 }, (err, _stdout, stderr) => {
      if (err) {
        const cause = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${file} not found (install gcc and libbpf-dev)` : `${err.message.trim()} ${stderr.trim()}`;
        reject(new PodnetError('BENCH_FAILED', `compile C baseline: ${cause}`, { cause: err }));
      } else {
        resolve();
      }
    });
  });
}

/** Builds build/bench/maps-baseline unless it is newer than its source. */
async function ensureBaseline(): Promise<'built' | 'up to date'> {
  if (existsSync(C_BINARY) && statSync(C_BINARY).mtimeMs >= statSync(C_SOURCE).mtimeMs) return 'up to date';
  mkdirSync(join(ROOT, 'build/bench'), { recursive: true });
  await runFile('gcc', GCC_ARGS);
  return 'built';
}

/** The installed ffi-napi fork's version, or why it cannot be used. */
function ffiNapiStatus(): { version: string } | { missing: string } {
  const req = createRequire(import.meta.url);
  try {
    req.resolve('@2060.io/ffi-napi');
    req.resolve('@2060.io/ref-napi');
    return { version: (req('@2060.io/ffi-napi/package.json') as { version: string }).version };
  } catch (err) {
    return { missing: `@2060.io/ffi-napi or @2060.io/ref-napi not installed (optional dependencies): ${(err as Error).message.split('\n')[0]}` };
  }
}

// ---------------------------------------------------------------------------
// Reporting

/** Model name as /proc/cpuinfo gives it. */
function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) return m[1].trim();
  } catch {
    // Falls through to what libuv reports.
  }
  return cpus()[0]?.model ?? 'unknown';
}

interface GroupStats {
  id: string;
  label: string;
  n: number;
  median: number;
  min: number;
  max: number;
  opsPerSample: number;
  /** This variant's median over the group's baseline median (ns/op: cost; entries/s: rate). */
  vsBaseline: number;
  /** Median of the per-round ratios to the baseline sample of the same round. */
  pairedVsBaseline: number;
}

function groupStats(variants: readonly Variant[], samples: Samples, group: Group): GroupStats[] {
  const members = variants.filter((v) => v.group === group);
  const base = members.find((v) => v.baseline);
  const baseSamples = base ? samples.get(base.id) ?? [] : [];
  const baseMedian = baseSamples.length > 0 ? median(baseSamples.map((s) => metric(group, s))) : Number.NaN;
  const out: GroupStats[] = [];
  for (const v of members) {
    const ss = samples.get(v.id) ?? [];
    if (ss.length === 0) continue;
    const values = ss.map((s) => metric(group, s));
    const paired: number[] = [];
    for (let r = 0; r < Math.min(ss.length, baseSamples.length); r++) paired.push(ratio(values[r]!, metric(group, baseSamples[r]!)));
    out.push({
      id: v.id,
      label: v.label,
      n: values.length,
      median: median(values),
      min: Math.min(...values),
      max: Math.max(...values),
      opsPerSample: median(ss.map((s) => s.ops)),
      vsBaseline: ratio(median(values), baseMedian),
      pairedVsBaseline: paired.length > 0 ? median(paired) : Number.NaN,
    });
  }
  return out;
}

interface Target {
  name: string;
  ratio: number;
  limit: string;
  pass: boolean;
}

function find(stats: readonly GroupStats[], id: string): GroupStats | undefined {
  return stats.find((s) => s.id === id);
}

function targets(opts: Options, all: Map<Group, GroupStats[]>): Target[] {
  const out: Target[] = [];
  const upd = all.get('update') ?? [];
  const bind = find(upd, 'update.bindings');
  const c = find(upd, 'update.c');
  if (bind && c) {
    const r = ratio(bind.median, c.median);
    out.push({ name: 'single update: bindings / C (ns per op)', ratio: r, limit: `<= ${UPDATE_TARGET}`, pass: r <= UPDATE_TARGET });
  }
  for (const size of opts.batchSizes) {
    const g = all.get(`batch-${size}`) ?? [];
    const raw = find(g, `batch-${size}.bindings-raw`);
    const cb = find(g, `batch-${size}.c`);
    if (raw && cb) {
      const r = ratio(raw.median, cb.median);
      out.push({ name: `batch update of ${size}: bindings updateBatchRaw / C (entries per s)`, ratio: r, limit: `>= ${BATCH_TARGET}`, pass: r >= BATCH_TARGET });
    }
  }
  const napi = find(upd, 'update.ffi-napi');
  const kof = find(upd, 'update.koffi-raw');
  if (napi && kof) {
    const r = ratio(napi.median, kof.median);
    out.push({ name: 'single update: ffi-napi / raw koffi (ns per op)', ratio: r, limit: '> 1', pass: r > 1 });
  }
  return out;
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const deadline = new Deadline(opts.budgetMs);
  const range = opts.maxEntries;
  const started = new Date();

  // Garbage left by one variant (lookup() allocates per call) must not be
  // collected inside the next variant's sample, so collect between samples.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;

  const build = await ensureBaseline();
  const napi = ffiNapiStatus();
  const skipped: Array<{ variant: string; reason: string }> = [];
  if ('missing' in napi) skipped.push({ variant: 'update.ffi-napi', reason: napi.missing });

  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const pinDir = `/sys/fs/bpf/podnet-bench-${randomBytes(3).toString('hex')}`;
  const pinPath = `${pinDir}/hash`;
  let map: BpfMap | undefined;
  const samples: Samples = new Map();
  let libbpfVersion = 'unknown';
  try {
    mkdirSync(pinDir);
    map = BpfMap.create({ type: 'hash', name: 'pn_bench_hash', keySize: KEY_SIZE, valueSize: VALUE_SIZE, maxEntries: opts.maxEntries });
    map.pin(pinPath);
    const m = map;

    // Every key present from the start: each variant then overwrites
    // existing elements and the map never changes shape between samples.
    const allKeys = Buffer.alloc(range * KEY_SIZE);
    for (let i = 0; i < range; i++) allKeys.writeUInt32LE(i, i * KEY_SIZE);
    if (m.updateBatchRaw(allKeys, Buffer.alloc(range * VALUE_SIZE), range) !== range) throw new PodnetError('BENCH_FAILED', 'fill map: short batch');
    if (!m.batchOps) throw new PodnetError('BENCH_FAILED', 'fill map: the kernel refused BPF_MAP_UPDATE_BATCH, so the batch figures would measure the element fallback');
    const count = m.count();
    if (count !== range) throw new PodnetError('BENCH_FAILED', `fill map: holds ${count} elements, expected ${range}`);

    const lib = koffi.load('libbpf.so.1');
    const rawUpdate = lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)') as RawUpdate;
    const rawLookup = lib.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)') as RawLookup;

    const key = Buffer.alloc(KEY_SIZE);
    const keyView = new Uint32Array(key.buffer, key.byteOffset, 1);
    const out = Buffer.alloc(VALUE_SIZE);
    const valueFor = (marker: number): Buffer => Buffer.alloc(VALUE_SIZE, marker);
    const target = ['--pin', pinPath, '--range', String(range), '--max-ms', String(opts.sampleMaxMs)];
    const common = [...target, '--warmup', String(opts.warmup)];
    const childTimeout = opts.sampleMaxMs * 2 + 30_000;
    const child = async (file: string, args: string[]): Promise<Sample> => {
      const r = await runChild(file, args, childTimeout);
      if (typeof r.libbpf === 'string') libbpfVersion = r.libbpf;
      return { ops: r.ops, ns: r.ns };
    };
    const inProcess = (loop: (n: number, end: bigint) => number, ops: number): Promise<Sample> =>
      Promise.resolve(timeInProcess(opts.warmup, opts.sampleMaxMs, loop, ops));

    const variants: Variant[] = [];
    {
      const v1 = valueFor(0xb1);
      variants.push({ id: 'update.bindings', group: 'update', label: 'bindings BpfMap.update', marker: 0xb1, run: () => inProcess((n, end) => updateViaBindings(m, key, keyView, v1, n, range, end), opts.ops) });
      const v2 = valueFor(0xb2);
      variants.push({ id: 'update.koffi-raw', group: 'update', label: 'raw koffi bpf_map_update_elem', marker: 0xb2, run: () => inProcess((n, end) => updateViaKoffi(rawUpdate, m.fd, key, keyView, v2, n, range, end), opts.ops) });
      if (!('missing' in napi)) {
        variants.push({
          id: 'update.ffi-napi', group: 'update', label: `ffi-napi ${napi.version} (subprocess)`, marker: 0xb3,
          run: () => child(process.execPath, [FFI_NAPI_SCRIPT, ...common, '--ops', String(opts.ops), '--marker', String(0xb3)]),
        });
      }
      variants.push({
        id: 'update.c', group: 'update', label: 'C libbpf (subprocess)', marker: 0xb4, baseline: true,
        run: () => child(C_BINARY, ['--op', 'update', ...common, '--ops', String(opts.ops), '--marker', String(0xb4)]),
      });
    }
    variants.push({ id: 'lookup.bindings-into', group: 'lookup', label: 'bindings BpfMap.lookupInto', run: () => inProcess((n, end) => lookupIntoViaBindings(m, key, keyView, out, n, range, end), opts.ops) });
    variants.push({ id: 'lookup.bindings', group: 'lookup', label: 'bindings BpfMap.lookup (allocates)', run: () => inProcess((n, end) => lookupViaBindings(m, key, keyView, n, range, end), opts.ops) });
    variants.push({ id: 'lookup.koffi-raw', group: 'lookup', label: 'raw koffi bpf_map_lookup_elem', run: () => inProcess((n, end) => lookupViaKoffi(rawLookup, m.fd, key, keyView, out, n, range, end), opts.ops) });
    variants.push({
      id: 'lookup.c', group: 'lookup', label: 'C libbpf (subprocess)', baseline: true,
      run: () => child(C_BINARY, ['--op', 'lookup', ...common, '--ops', String(opts.ops)]),
    });

    const batchEntries = opts.batchPasses * range;
    for (const size of opts.batchSizes) {
      const bounds = batchBounds(range, size);
      const group: Group = `batch-${size}`;
      const rawKeys = allKeys;
      const rawValues = Buffer.alloc(range * VALUE_SIZE, 0xb5);
      const packed = bounds.map(([off, n]) => ({
        keys: rawKeys.subarray(off * KEY_SIZE, (off + n) * KEY_SIZE),
        values: rawValues.subarray(off * VALUE_SIZE, (off + n) * VALUE_SIZE),
        count: n,
      }));
      const elemKeys = Array.from({ length: range }, (_, i) => Buffer.from(allKeys.subarray(i * KEY_SIZE, (i + 1) * KEY_SIZE)));
      const elemValue = valueFor(0xb6);
      const arrays = bounds.map(([off, n]) => ({ keys: elemKeys.slice(off, off + n), values: new Array<Buffer>(n).fill(elemValue) }));
      const warm = Math.min(opts.warmup * 20, range);
      const inProcessBatch = (loop: (n: number, end: bigint) => number): Promise<Sample> =>
        Promise.resolve(timeInProcess(warm, opts.sampleMaxMs, loop, batchEntries));
      variants.push({ id: `${group}.bindings-raw`, group, label: `bindings updateBatchRaw, batches of ${size}`, marker: 0xb5, run: () => inProcessBatch((n, end) => batchViaRaw(m, packed, n, end)) });
      variants.push({ id: `${group}.bindings-arrays`, group, label: `bindings updateBatch (Buffer[]), batches of ${size}`, marker: 0xb6, run: () => inProcessBatch((n, end) => batchViaArrays(m, arrays, n, end)) });
      variants.push({
        id: `${group}.c`, group, label: `C bpf_map_update_batch, batches of ${size} (subprocess)`, marker: 0xb7, baseline: true,
        run: () => child(C_BINARY, ['--op', 'batch', ...target, '--warmup', String(warm), '--ops', String(batchEntries), '--batch', String(size), '--marker', String(0xb7)]),
      });
    }
    for (const v of variants) samples.set(v.id, []);

    console.log(`BPF map benchmark: hash map, u32 key, ${VALUE_SIZE}-byte value, ${opts.maxEntries} max entries, all ${range} keys present; pinned at ${pinPath}`);
    console.log(`C baseline ${build}: gcc ${GCC_ARGS.join(' ')}`);
    console.log(`${opts.rounds} rounds, ${variants.length} variants each, ${opts.ops} single ops or ${batchEntries} batch entries per sample (each bounded by ${opts.sampleMaxMs} ms)`);
    console.log(NOISE_NOTE);
    for (const s of skipped) console.log(`skipped ${s.variant}: ${s.reason}`);

    const marker = Buffer.alloc(VALUE_SIZE);
    const zero = Buffer.alloc(KEY_SIZE);
    rounds: for (let r = 0; r < opts.rounds; r++) {
      const order = rotation(variants, r);
      if (r % 2 === 1) order.reverse();
      const line: string[] = [];
      for (const v of order) {
        if (interrupted || deadline.expired) break rounds;
        gc();
        const s = await v.run();
        if (!(s.ops > 0)) throw new PodnetError('BENCH_FAILED', `run ${v.id}: no operations timed`);
        if (v.marker !== undefined) {
          // Key 0 is the first key every write variant touches in a sample.
          if (!m.lookupInto(zero, marker) || marker[0] !== v.marker || marker[VALUE_SIZE - 1] !== v.marker) {
            throw new PodnetError('BENCH_FAILED', `run ${v.id}: key 0 holds ${marker.toString('hex')}, not the variant's marker ${v.marker.toString(16)}`);
          }
        }
        samples.get(v.id)!.push(s);
        line.push(`${v.id}=${fmt(metric(v.group, s), v.group.startsWith('batch-') ? 0 : 1)}`);
      }
      console.log(`round ${r + 1}/${opts.rounds}: ${line.join(' ')}`);
    }
    const cutShort = interrupted || deadline.expired;
    if (!m.batchOps) throw new PodnetError('BENCH_FAILED', 'update batch: the kernel refused BPF_MAP_UPDATE_BATCH part-way; the batch figures measured the element fallback');

    // -- report ------------------------------------------------------------
    const groups: Group[] = ['update', 'lookup', ...opts.batchSizes.map((s): Group => `batch-${s}`)];
    const all = new Map<Group, GroupStats[]>(groups.map((g) => [g, groupStats(variants, samples, g)]));
    if (cutShort) console.log('\nNOTE: stopped early (time budget or signal); fewer samples than requested.');
    const single = (g: Group, title: string): void => {
      const rows: Cell[][] = (all.get(g) ?? []).map((s) => [s.label, String(s.n), String(s.opsPerSample), s.median, s.min, s.max, s.vsBaseline, s.pairedVsBaseline]);
      console.log(`\n${title} (ns per op, lower is better; ratios against C)`);
      console.log(formatTable(['variant', 'samples', 'ops/sample', 'median', 'min', 'max', 'x C', 'x C paired'], rows));
    };
    single('update', 'Single update, BPF_ANY over existing keys');
    single('lookup', 'Single lookup of existing keys');
    for (const size of opts.batchSizes) {
      const rows: Cell[][] = (all.get(`batch-${size}`) ?? []).map((s) => [s.label, String(s.n), String(s.opsPerSample), s.median / 1e6, s.min / 1e6, s.max / 1e6, s.vsBaseline, s.pairedVsBaseline]);
      console.log(`\nBatch update, batches of ${size} (million entries per s, higher is better; ratios against C)`);
      console.log(formatTable(['variant', 'samples', 'entries/sample', 'median', 'min', 'max', 'x C', 'x C paired'], rows));
    }
    const t = targets(opts, all);
    console.log('\nTargets (ratios of medians):');
    for (const x of t) console.log(`${x.pass ? 'PASS' : 'MISS'} ${x.name} = ${fmt(x.ratio)} (target ${x.limit})`);
    console.log(NOISE_NOTE);

    const summary = {
      benchmark: 'maps',
      command: COMMAND,
      date: started.toISOString(),
      note: NOISE_NOTE,
      machine: { kernel: release(), cpuModel: cpuModel(), cpus: cpus().length, node: process.version },
      versions: { libbpf: libbpfVersion, koffi: koffi.version, ffiNapi: 'version' in napi ? napi.version : null },
      map: { type: 'hash', keySize: KEY_SIZE, valueSize: VALUE_SIZE, maxEntries: opts.maxEntries, keysPresent: range },
      params: { rounds: opts.rounds, ops: opts.ops, batchSizes: opts.batchSizes, batchEntriesPerSample: batchEntries, warmup: opts.warmup, sampleMaxMs: opts.sampleMaxMs },
      cutShort,
      skipped,
      units: { update: 'ns/op', lookup: 'ns/op', batch: 'entries/s' },
      results: Object.fromEntries(
        groups.map((g) => [
          g,
          Object.fromEntries((all.get(g) ?? []).map((s) => [s.id.slice(g.length + 1), { ...s, samples: (samples.get(s.id) ?? []).map((x) => metric(g, x)) }])),
        ]),
      ),
      targets: t,
    };
    printJsonSummary(summary);
    if (opts.json) await writeFile(opts.json, JSON.stringify(summary, null, 2) + '\n');
    if (opts.strict && t.some((x) => !x.pass)) process.exitCode = 1;
    if (interrupted) process.exitCode = 130;
  } finally {
    if (map) {
      try {
        map.unpin();
      } catch (err) {
        console.error(`cleanup: ${(err as Error).message}`);
      }
      map.close();
    }
    try {
      if (existsSync(pinPath)) console.error(`cleanup: ${pinPath} is still pinned`);
      else if (existsSync(pinDir)) rmdirSync(pinDir);
    } catch (err) {
      console.error(`cleanup: remove ${pinDir}: ${(err as Error).message}`);
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

try {
  await main();
} catch (err) {
  console.error(`maps: ${(err as Error).message}`);
  process.exitCode = 1;
}
