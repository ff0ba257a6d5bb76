/**
 * Per-packet cost of Service translation in from_pod, through
 * BPF_PROG_TEST_RUN (the kernel times the program runs alone): a packet of
 * an established connection to a ClusterIP and the first packet of a new
 * one, with 1 and with 10,000 Services in the maps, against the same
 * program forwarding pod to pod directly. Variants interleave in rotating
 * order; prints medians and the ratio to the direct path.
 *
 *   node --import tsx test/bench/lb-prog.ts [--rounds N] [--repeat N]
 */
import { rmSync } from 'node:fs';
import { BpfObject, type Program } from '../../agent/src/libbpf/index.js';
import { compileBpf, HAIRPIN_ADDR } from '../../agent/src/datapath/index.js';
import { EndpointsMap, EP_F_READY, backendKey, backendValue, slotKey, slotValue, svcKey, svcValue } from '../../agent/src/maps/index.js';
import { bpffsDir, rmBpffsDir, scratchDir } from '../fixtures/bpf/fixtures.js';
import { TCP, frame, ipBytes } from '../lib/packets.js';
import { NOISE_NOTE, formatTable, machineInfo, median, printJsonSummary, ratio, rotation } from './lib/index.js';
import { intOption } from './lib/args.js';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const rounds = intOption('rounds', opt('--rounds'), 40);
const repeat = intOption('repeat', opt('--repeat'), 2000);
const CLIENT = '10.77.0.10', BACKEND = '10.77.0.20';

interface Node { obj: BpfObject; prog: Program; pins: string }

function node(path: string, services: number): Node {
  const pins = bpffsDir();
  const obj = BpfObject.open(path, { pinRoot: pins });
  obj.setConstants({
    pn_pod_cidr_addr: new Uint8Array(ipBytes('10.77.0.0')), pn_pod_cidr_mask: new Uint8Array(ipBytes('255.255.255.0')), pn_hairpin_addr: new Uint8Array(ipBytes(HAIRPIN_ADDR)),
  });
  obj.load();
  const eps = new EndpointsMap(obj.map('pn_endpoints'));
  eps.set(CLIENT, { ifindex: 1, endpointId: 1, podMac: '0a:00:00:00:00:01', hostMac: '0e:00:00:00:00:01', flags: EP_F_READY });
  eps.set(BACKEND, { ifindex: 1, endpointId: 2, podMac: '0a:00:00:00:00:02', hostMac: '0e:00:00:00:00:01', flags: EP_F_READY });
  const be = obj.map('pn_backends').typed(backendKey, backendValue);
  const slots = obj.map('pn_svc_slots').typed(slotKey, slotValue);
  const svc = obj.map('pn_services').typed(svcKey, svcValue);
  for (let b = 1; b <= 4; b++) be.set({ backendId: b }, { addr: BACKEND, port: 8080 + b, proto: TCP, flags: 0 });
  // Service i: 10.96.(i >> 8).(i & 255):80, four backends each.
  for (let i = 0; i < services; i++) {
    for (let s = 0; s < 4; s++) slots.set({ groupId: i + 1, slot: s }, { backendId: s + 1 });
    svc.set({ addr: `10.96.${i >> 8}.${i & 255}`, port: 80, proto: TCP, pad: 0 }, { frontendId: i + 1, groupId: i + 1, count: 4, flags: 0, affinitySeconds: 0, pad: 0 });
  }
  return { obj, prog: obj.program('from_pod'), pins };
}

async function main(): Promise<void> {
  const cache = scratchDir();
  const nodes: Node[] = [];
  try {
    const { path } = await compileBpf('pod', { cacheDir: cache });
    const one = node(path, 1), many = node(path, 10_000);
    nodes.push(one, many);
    const direct = frame({ src: CLIENT, dst: BACKEND, proto: TCP, sport: 40000, dport: 8080, flags: 0x10 });
    const toSvc = frame({ src: CLIENT, dst: '10.96.0.0', proto: TCP, sport: 40001, dport: 80, flags: 0x10 });
    let sport = 1024;
    const fresh = (): Buffer => frame({ src: CLIENT, dst: '10.96.0.0', proto: TCP, sport: 1024 + (sport++ % 60000), dport: 80 });
    const variants: Array<{ name: string; run: () => number }> = [
      { name: 'pod -> pod direct', run: () => one.prog.testRun({ data: direct, repeat }).durationNs },
      { name: 'ClusterIP established, 1 Service', run: () => one.prog.testRun({ data: toSvc, repeat }).durationNs },
      { name: 'ClusterIP established, 10k Services', run: () => many.prog.testRun({ data: toSvc, repeat }).durationNs },
      // A new connection is one packet: repeat 1, each with a fresh source
      // port; its peer is the direct path run the same way (one run carries
      // the test-run's fixed cost).
      { name: 'pod -> pod direct, single runs', run: () => median(Array.from({ length: 50 }, () => one.prog.testRun({ data: direct }).durationNs)) },
      { name: 'ClusterIP new connection, 1 Service', run: () => median(Array.from({ length: 50 }, () => one.prog.testRun({ data: fresh() }).durationNs)) },
      { name: 'ClusterIP new connection, 10k Services', run: () => median(Array.from({ length: 50 }, () => many.prog.testRun({ data: fresh() }).durationNs)) },
    ];
    const samples = new Map(variants.map((v) => [v.name, [] as number[]]));
    for (let r = 0; r < rounds; r++) for (const v of rotation(variants, r)) samples.get(v.name)!.push(v.run());
    const base = median(samples.get(variants[0]!.name)!);
    const single = median(samples.get(variants[3]!.name)!);
    const rows = variants.map((v, i) => { const m = median(samples.get(v.name)!); return [v.name, m, ratio(m, i >= 3 ? single : base)] as const; });
    console.log(`from_pod per-packet time (BPF_PROG_TEST_RUN), ${rounds} rounds, repeat ${repeat}`);
    console.log(formatTable(['variant', 'median ns/packet', 'x direct (same run mode)'], rows));
    const est1 = rows[1]![1], est10k = rows[2]![1];
    console.log(`\n10k Services / 1 Service, established: ${ratio(est10k, est1).toFixed(3)}x`);
    console.log(NOISE_NOTE);
    printJsonSummary({ machine: machineInfo(), rounds, repeat, medians: Object.fromEntries(rows.map((r) => [r[0], r[1]])), ratioToDirect: Object.fromEntries(rows.map((r) => [r[0], r[2]])) });
  } finally {
    for (const n of nodes) { n.obj.close(); rmBpffsDir(n.pins); }
    rmSync(cache, { recursive: true, force: true });
  }
}

await main();
