/**
 * The reconciler over real BPF maps (BpfServiceTables): what it writes reads
 * back the same, a restart keeps ids and writes nothing, and a full hash
 * map refuses with E2BIG, which the reconciler reports naming the map while
 * the batch falls back to single writes for what still fits.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BpfMap } from '../../agent/src/libbpf/index.js';
import type { MapDescriptor } from '../../agent/src/maps/descriptor.js';
import { AFFINITY, BACKENDS, CONNTRACK, CT_FLAG, DEFAULT_CT_TIMEOUTS, SERVICES, SVC_RANGES, SVC_SLOTS, SVC_STATS, ctKey, ctValue, type ServiceMapHandles } from '../../agent/src/maps/index.js';
import { SERVICE_NAME_LABEL, type EndpointSliceObject, type ServiceObject } from '../../agent/src/services/index.js';
import { ServiceReconciler } from '../../agent/src/services/reconciler.js';
import { BpfServiceTables } from '../../agent/src/services/tables.js';
import { servicesView } from '../../agent/src/services/view.js';
import type { ServiceSnapshot } from '../../agent/src/services/source.js';

const node = { name: 'node-a', addresses: ['192.168.5.4'] };
const open: BpfMap[] = [];
function maps(sizes: Partial<Record<string, number>> = {}): ServiceMapHandles {
  const mk = (d: MapDescriptor<any, any>): BpfMap => {
    const m = BpfMap.create({ type: d.type, name: d.name, keySize: d.key!.size, valueSize: d.value!.size, maxEntries: sizes[d.name] ?? d.maxEntries });
    open.push(m);
    return m;
  };
  return { services: mk(SERVICES), svcSlots: mk(SVC_SLOTS), backends: mk(BACKENDS), conntrack: mk(CONNTRACK), affinity: mk(AFFINITY), svcStats: mk(SVC_STATS), svcRanges: mk(SVC_RANGES) };
}

function snapshot(services: number, endpoints: number): ServiceSnapshot {
  const svcs: ServiceObject[] = [];
  const slices: EndpointSliceObject[] = [];
  for (let i = 0; i < services; i++) {
    svcs.push({ metadata: { name: `s${i}`, namespace: 'ns' }, spec: { type: 'NodePort', clusterIP: `10.96.3.${i + 1}`, ports: [{ name: 'p', port: 80, protocol: i % 2 ? 'UDP' : 'TCP', nodePort: 30300 + i }] } });
    slices.push({
      metadata: { name: `s${i}-a`, namespace: 'ns', labels: { [SERVICE_NAME_LABEL]: `s${i}` } }, addressType: 'IPv4', ports: [{ name: 'p', port: 8080, protocol: i % 2 ? 'UDP' : 'TCP' }],
      endpoints: Array.from({ length: endpoints }, (_, j) => ({ addresses: [`10.244.${i}.${j + 1}`], conditions: { ready: true }, nodeName: j % 2 ? 'node-a' : 'node-b' })),
    });
  }
  return { services: svcs, slices, serviceCidrs: ['10.96.3.0/24'] };
}

describe('the service reconciler on BPF maps', () => {
  after(() => { for (const m of open) m.close(); });

  it('writes what reads back the same, and a restarted reconciler writes nothing and keeps every id', () => {
    const m = maps();
    const t = new BpfServiceTables(m);
    const r = new ServiceReconciler({ tables: t, defaultServiceCidrs: [] });
    const s = snapshot(20, 5);
    const out = r.apply(s, node);
    assert.deepEqual(out.errors, []);
    assert.equal(m.services.count(), 40);
    assert.equal(m.backends.count(), 100);
    assert.equal(m.svcSlots.count(), 100, 'ClusterIP and NodePort share one group per Service');
    assert.deepEqual(t.readRanges(), ['10.96.3.0/24']);
    const view = servicesView(t, r.names());
    assert.equal(view.length, 20);
    assert.ok(view.every((v) => v.ports.length === 1 && v.ports[0]!.backends.length === 5 && v.ports[0]!.problems.length === 0));
    assert.equal(r.verify(), true);
    const before = JSON.stringify([t.readFrontends().sort(), t.readSlots().sort(), t.readBackends().sort()]);
    const again = new ServiceReconciler({ tables: t, defaultServiceCidrs: [] });
    const o2 = again.apply(s, node);
    assert.equal(o2.result, 'ok');
    assert.equal(JSON.stringify([t.readFrontends().sort(), t.readSlots().sort(), t.readBackends().sort()]), before);
    // Emptying removes everything, stats rows included.
    again.apply({ services: [], slices: [], serviceCidrs: [] }, node);
    assert.equal(m.services.count() + m.svcSlots.count() + m.backends.count() + m.svcRanges.count(), 0);
  });

  it('reports a full pn_backends with its size and setting, writes what fits one by one, and keeps every count within written backends', () => {
    const m = maps({ pn_backends: 7 });
    const t = new BpfServiceTables(m);
    const r = new ServiceReconciler({ tables: t, defaultServiceCidrs: [] });
    const out = r.apply(snapshot(3, 4), node);
    assert.equal(out.result, 'failed');
    assert.equal(out.full.pn_backends, 5);
    assert.match(out.errors.join('\n'), /write 5 entries to pn_backends: the map is full \(7 entries\); raise --lb-map-size \(backends get 2x\)/);
    assert.equal(m.backends.count(), 7);
    const view = servicesView(t, r.names());
    assert.equal(view.reduce((n, v) => n + v.ports[0]!.backends.length, 0), 7);
    assert.ok(view.every((v) => v.ports[0]!.problems.length === 0), JSON.stringify(view.map((v) => v.ports[0]!.problems)));
  });

  it('sweeps exactly the conntrack entries idle past their timeout, in batches over thousands of entries', () => {
    const m = maps();
    const t = new BpfServiceTables(m);
    const now = process.hrtime.bigint();
    const s = 1_000_000_000n;
    const T = DEFAULT_CT_TIMEOUTS;
    // [proto, flags, idle seconds, expired?]: each timeout class just inside and just past its limit, and a use later than now.
    const cases: Array<[number, number, bigint, boolean]> = [
      [6, CT_FLAG.seen_reply, BigInt(T.tcp) - 5n, false], [6, CT_FLAG.seen_reply, BigInt(T.tcp) + 5n, true],
      [6, 0, BigInt(T.syn) - 5n, false], [6, 0, BigInt(T.syn) + 5n, true],
      [6, CT_FLAG.seen_reply | CT_FLAG.closing, BigInt(T.closing) - 5n, false], [6, CT_FLAG.seen_reply | CT_FLAG.closing, BigInt(T.closing) + 5n, true],
      [17, 0, BigInt(T.other) - 5n, false], [17, CT_FLAG.seen_reply, BigInt(T.other) + 5n, true],
      [6, CT_FLAG.seen_reply, -3n, false],
    ];
    const key = (i: number, proto: number, dir: number): Buffer => {
      const b = Buffer.alloc(ctKey.size);
      ctKey.encode({ saddr: `10.244.${(i >> 8) & 255}.${i & 255}`, daddr: '10.96.0.10', sport: 1024 + (i % 50000), dport: 80, proto, dir, pad: 0 }, b, 0);
      return b;
    };
    const value = (lastSeenNs: bigint, flags: number): Buffer => {
      const b = Buffer.alloc(ctValue.size);
      ctValue.encode({ lastSeenNs, backendId: 1, frontendId: 1, natAddr: '10.96.0.10', origAddr: '0.0.0.0', natPort: 80, flags, pad: 0, pad2: 0 }, b, 0);
      return b;
    };
    // 3,000 entries: the cases over and over, in both directions.
    const want = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const [proto, flags, idle, expired] = cases[i % cases.length]!;
      const k = key(i, proto, i % 2);
      m.conntrack.update(k, value(now - idle * s, flags));
      if (!expired) want.add(Buffer.from(k).toString('hex'));
    }
    const r = t.sweepConntrack(now, T);
    assert.equal(r.scanned, 3000);
    assert.equal(r.removed, 3000 - want.size);
    const left = new Set([...m.conntrack.keys()].map((k) => Buffer.from(k).toString('hex')));
    assert.deepEqual([...left].sort(), [...want].sort(), 'every live entry stays and only those');
    assert.deepEqual(t.sweepConntrack(now, T), { scanned: want.size, removed: 0 }, 'a second sweep finds nothing more');
  });
});
