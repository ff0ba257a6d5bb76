/**
 * Programming Services: how long the Service reconciler takes to bring the
 * service maps in line with a snapshot, against the in-memory fake tables
 * (the reconciler's own cost) and against real BPF hash maps of the
 * default sizes (reconciler plus kernel writes), in the same run.
 *
 * Measured per round, the two table kinds interleaved (order rotated), medians:
 *   - full sync from cold: an empty reconciler and empty maps take the whole
 *     snapshot (default 10,000 Services with 10 endpoints each = 100,000
 *     endpoints; every tenth Service a NodePort on 2 node addresses);
 *   - restart: a new reconciler over the filled maps reads them back and
 *     applies the same snapshot (must write nothing);
 *   - single endpoint change: one endpoint added to one Service, then
 *     removed again, with everything else present;
 *   - the periodic check: read every map back and compare with what was written.
 * Also the heap the reconciler holds after a full sync.
 *
 * Limits (PASS/MISS): full sync on real maps within 5 s; a single endpoint
 * change within 1/20 of the full sync on real maps; heap held below 150 MB.
 *
 * Usage: node --import tsx test/bench/services-reconcile.ts [--services 10000]
 *   [--endpoints 10] [--rounds 5] [--changes 20] [--budget-min 10] [--json FILE] [--strict]
 * Needs root (CAP_BPF) for the real maps; without it only the fake runs.
 */
import { writeFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseArgs } from 'node:util';
import { BpfMap } from '../../agent/src/libbpf/index.js';
import { AFFINITY, BACKENDS, CONNTRACK, SERVICES, SVC_RANGES, SVC_SLOTS, SVC_STATS } from '../../agent/src/maps/services.js';
import type { MapDescriptor } from '../../agent/src/maps/descriptor.js';
import { SERVICE_NAME_LABEL, type EndpointSliceObject, type ServiceObject } from '../../agent/src/services/index.js';
import { ServiceReconciler } from '../../agent/src/services/reconciler.js';
import type { ServiceSnapshot } from '../../agent/src/services/source.js';
import { BpfServiceTables, FakeServiceTables, type ServiceTables } from '../../agent/src/services/tables.js';
import type { ServiceMapHandles } from '../../agent/src/maps/services.js';
import { intOption } from './lib/args.js';
import { NOISE_NOTE, machineInfo, printJsonSummary, rotation, stopCondition } from './lib/runner.js';
import { median, ratio } from './lib/stats.js';
import { fmt, formatTable } from './lib/table.js';

const NODE = { name: 'node-a', addresses: ['192.168.5.4', '10.220.0.1'] };
const CIDRS = ['10.96.0.0/12'];
const FULL_SYNC_LIMIT_S = 5;
const CHANGE_SHARE_LIMIT = 1 / 20;
const HEAP_LIMIT_MB = 150;

function snapshot(services: number, endpoints: number): ServiceSnapshot {
  const svcs: ServiceObject[] = [];
  const slices: EndpointSliceObject[] = [];
  for (let i = 0; i < services; i++) {
    const name = `s${i}`;
    const nodePort = i % 10 === 0;
    svcs.push({
      metadata: { name, namespace: 'bench' },
      spec: {
        type: nodePort ? 'NodePort' : 'ClusterIP', clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
        ports: [{ name: 'http', port: 80, protocol: 'TCP', ...(nodePort ? { nodePort: 30000 + (i / 10) } : {}) }],
      },
    });
    const eps = [];
    for (let j = 0; j < endpoints; j++) {
      const n = i * endpoints + j;
      eps.push({ addresses: [`10.${128 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`], conditions: { ready: true }, nodeName: j % 4 === 0 ? 'node-a' : 'node-b' });
    }
    slices.push({ metadata: { name: `${name}-a`, namespace: 'bench', labels: { [SERVICE_NAME_LABEL]: name } }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: eps });
  }
  return { services: svcs, slices, serviceCidrs: undefined };
}

/** The same snapshot with one more endpoint in one Service's slice. */
function withExtraEndpoint(s: ServiceSnapshot, which: number, k: number): ServiceSnapshot {
  const slices = s.slices.slice();
  const old = slices[which]!;
  slices[which] = { ...old, endpoints: [...(old.endpoints ?? []), { addresses: [`10.250.${k >> 8 & 255}.${k & 255}`], conditions: { ready: true }, nodeName: 'node-b' }] };
  return { ...s, slices };
}

interface Kind {
  id: 'fake' | 'bpf';
  label: string;
  /** Fresh, empty tables. */
  make(): { tables: ServiceTables; close(): void };
}

function bpfMaps(): ServiceMapHandles & { close(): void } {
  const made: BpfMap[] = [];
  const mk = (d: MapDescriptor<any, any>): BpfMap => {
    const m = BpfMap.create({ type: d.type, name: d.name, keySize: d.key!.size, valueSize: d.value!.size, maxEntries: d.maxEntries });
    made.push(m);
    return m;
  };
  try {
    return {
      services: mk(SERVICES), svcSlots: mk(SVC_SLOTS), backends: mk(BACKENDS), conntrack: mk(CONNTRACK), affinity: mk(AFFINITY), svcStats: mk(SVC_STATS),
      svcRanges: mk(SVC_RANGES),
      close: () => { for (const m of made) m.close(); },
    };
  } catch (err) {
    for (const m of made) m.close();
    throw err;
  }
}

const KINDS: Kind[] = [
  { id: 'fake', label: 'fake tables (reconciler only)', make: () => { const t = new FakeServiceTables(); t.record = false; return { tables: t, close: () => {} }; } },
  { id: 'bpf', label: 'BPF hash maps (default sizes)', make: () => { const m = bpfMaps(); return { tables: new BpfServiceTables(m), close: () => m.close() }; } },
];

interface Round { full: number; restart: number; restartWrites: number; change: number[]; verify: number; heapMb: number }

function seconds(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

// The heap held is measured after full collections, with or without node's --expose-gc.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function runRound(kind: Kind, snap: ServiceSnapshot, changes: number): Round {
  const { tables, close } = kind.make();
  try {
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const r = new ServiceReconciler({ tables, defaultServiceCidrs: CIDRS });
    let t0 = process.hrtime.bigint();
    const out = r.apply(snap, NODE);
    const full = seconds(t0);
    if (out.errors.length > 0) throw new Error(`full sync on ${kind.id}: ${out.errors.join('; ')}`);
    gc();
    const heapMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;

    t0 = process.hrtime.bigint();
    const again = new ServiceReconciler({ tables, defaultServiceCidrs: CIDRS });
    const o2 = again.apply(snap, NODE);
    const restart = seconds(t0);
    const restartWrites = Object.values(o2.written).reduce((a, b) => a + b, 0) + Object.values(o2.removed).reduce((a, b) => a + b, 0);

    const change: number[] = [];
    for (let k = 0; k < changes; k++) {
      const which = (k * 7919) % snap.slices.length;
      const grown = withExtraEndpoint(snap, which, k);
      t0 = process.hrtime.bigint();
      const a = again.apply(grown, NODE);
      change.push(seconds(t0));
      if (a.written.backends !== 1) throw new Error(`single change on ${kind.id}: wrote ${a.written.backends} backends, expected 1`);
      t0 = process.hrtime.bigint();
      const b = again.apply(snap, NODE);
      change.push(seconds(t0));
      if (b.removed.backends !== 1) throw new Error(`single change back on ${kind.id}: removed ${b.removed.backends} backends, expected 1`);
    }
    t0 = process.hrtime.bigint();
    if (!again.verify()) throw new Error(`verify on ${kind.id}: the maps differ from what the reconciler wrote`);
    const verify = seconds(t0);
    return { full, restart, restartWrites, change, verify, heapMb };
  } finally {
    close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { services: { type: 'string' }, endpoints: { type: 'string' }, rounds: { type: 'string' }, changes: { type: 'string' }, 'budget-min': { type: 'string' }, json: { type: 'string' }, strict: { type: 'boolean' } },
  });
  const services = intOption('services', values.services, 10_000);
  const endpoints = intOption('endpoints', values.endpoints, 10);
  const rounds = intOption('rounds', values.rounds, 5);
  const changes = intOption('changes', values.changes, 20);
  const stop = stopCondition(intOption('budget-min', values['budget-min'], 10) * 60_000);
  const snap = snapshot(services, endpoints);
  let kinds = KINDS;
  try {
    bpfMaps().close();
  } catch (err) {
    console.error(`real maps unavailable (${(err as Error).message}); measuring the fake only`);
    kinds = KINDS.filter((k) => k.id === 'fake');
  }
  const results = new Map<string, Round[]>(kinds.map((k) => [k.id, []]));
  // One untimed warm-up per kind.
  for (const k of kinds) runRound(k, snapshot(Math.min(services, 500), endpoints), 2);
  for (let round = 0; round < rounds && !stop.stop(); round++) {
    for (const k of rotation(kinds, round)) results.get(k.id)!.push(runRound(k, snap, changes));
  }
  stop.release();

  const rows = kinds.map((k) => {
    const rs = results.get(k.id)!;
    return {
      id: k.id, label: k.label, rounds: rs.length,
      fullS: median(rs.map((r) => r.full)), restartS: median(rs.map((r) => r.restart)), restartWrites: Math.max(...rs.map((r) => r.restartWrites)),
      changeMs: median(rs.flatMap((r) => r.change)) * 1000, verifyMs: median(rs.map((r) => r.verify)) * 1000, heapMb: median(rs.map((r) => r.heapMb)),
    };
  });
  console.log(`Service reconcile: ${services} Services x ${endpoints} endpoints (${services * endpoints} endpoints), ${rounds} rounds, ${changes * 2} single changes per round`);
  console.log(NOISE_NOTE);
  console.log(formatTable(['tables', 'rounds', 'full sync s (p50)', 'restart s (p50)', 'restart writes', 'single change ms (p50)', 'change / full', 'periodic check ms', 'heap held MB'],
    rows.map((r) => [r.label, r.rounds, fmt(r.fullS, 3), fmt(r.restartS, 3), r.restartWrites, fmt(r.changeMs, 1), fmt(ratio(r.changeMs / 1000, r.fullS), 4), fmt(r.verifyMs, 1), fmt(r.heapMb, 1)])));
  const fake = rows.find((r) => r.id === 'fake')!;
  const bpf = rows.find((r) => r.id === 'bpf');
  if (bpf) console.log(`BPF / fake: full sync ${fmt(ratio(bpf.fullS, fake.fullS))}x, single change ${fmt(ratio(bpf.changeMs, fake.changeMs))}x`);
  const ref = bpf ?? fake;
  const checks = [
    { what: `full sync on ${ref.id} within ${FULL_SYNC_LIMIT_S} s`, ok: ref.fullS <= FULL_SYNC_LIMIT_S, value: `${fmt(ref.fullS, 3)} s` },
    { what: `single change within ${CHANGE_SHARE_LIMIT} of the full sync`, ok: ref.changeMs / 1000 <= ref.fullS * CHANGE_SHARE_LIMIT, value: `${fmt(ratio(ref.changeMs / 1000, ref.fullS), 4)}` },
    { what: `heap held below ${HEAP_LIMIT_MB} MB`, ok: ref.heapMb < HEAP_LIMIT_MB, value: `${fmt(ref.heapMb, 1)} MB` },
    { what: 'a restart writes nothing', ok: rows.every((r) => r.restartWrites === 0), value: `${Math.max(...rows.map((r) => r.restartWrites))} writes` },
  ];
  for (const c of checks) console.log(`${c.ok ? 'PASS' : 'MISS'}  ${c.what}: ${c.value}`);
  const summary = { machine: machineInfo(), services, endpoints, rows, checks };
  printJsonSummary(summary);
  if (values.json) await writeFile(values.json, JSON.stringify(summary, null, 2));
  if (values.strict && checks.some((c) => !c.ok)) process.exitCode = 1;
}

await main();
