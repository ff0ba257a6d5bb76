import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SERVICE_NAME_LABEL, type EndpointObject, type EndpointSliceObject, type ServiceObject } from '../../agent/src/services/index.js';
import { ServiceReconciler, placeSlots } from '../../agent/src/services/reconciler.js';
import { BACKEND_FLAG, FakeServiceTables, SVC_FLAG, type FakeWrite } from '../../agent/src/services/tables.js';
import type { ServiceSnapshot } from '../../agent/src/services/source.js';

const TCP = 6, UDP = 17;
const node = { name: 'node-a', addresses: ['192.168.5.4'] };
const CIDRS = ['10.96.0.0/12'];

type Ep = EndpointObject;
const ep = (ip: string, conditions: Ep['conditions'] = { ready: true }, nodeName = 'node-a'): Ep => ({ addresses: [ip], conditions, nodeName });

function svc(name: string, spec: NonNullable<ServiceObject['spec']>): ServiceObject {
  return { metadata: { name, namespace: 'shop' }, spec };
}
function slice(service: string, ports: EndpointSliceObject['ports'], endpoints: Ep[], name = `${service}-x`): EndpointSliceObject {
  return { metadata: { name, namespace: 'shop', labels: { [SERVICE_NAME_LABEL]: service } }, addressType: 'IPv4', ports, endpoints };
}
const web = (spec: Partial<NonNullable<ServiceObject['spec']>> = {}): ServiceObject =>
  svc('web', { type: 'NodePort', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }], ...spec });
const webSlice = (...ips: Array<string | Ep>): EndpointSliceObject =>
  slice('web', [{ name: 'http', port: 8080, protocol: 'TCP' }], ips.map((x) => (typeof x === 'string' ? ep(x) : x)));
const snap = (services: readonly ServiceObject[], slices: readonly EndpointSliceObject[], serviceCidrs?: string[]): ServiceSnapshot => ({ services, slices, serviceCidrs });

function setup(caps: ConstructorParameters<typeof FakeServiceTables>[0] = {}): { t: FakeServiceTables; r: ServiceReconciler; udpGone: string[] } {
  const t = new FakeServiceTables(caps);
  const udpGone: string[] = [];
  const r = new ServiceReconciler({ tables: t, defaultServiceCidrs: CIDRS, onUdpBackendRemoved: (a, p) => udpGone.push(`${a}:${p}`) });
  return { t, r, udpGone };
}

const sorted = (xs: Array<string | undefined>): Array<string | undefined> => [...xs].sort();

describe('the service reconciler', () => {
  it('writes a frontend per ClusterIP and NodePort address sharing one group, with its backends and non-zero ids', () => {
    const { t, r } = setup();
    const out = r.apply(snap([web()], [webSlice('10.244.0.5', '10.244.0.6')]), node);
    assert.equal(out.result, 'changed', out.errors.join('; '));
    const cip = t.frontend('10.96.0.10', 80, TCP)!;
    const np = t.frontend('192.168.5.4', 30080, TCP)!;
    assert.ok(cip && np, 'both frontends are written');
    assert.equal(cip.groupId, np.groupId, 'the ClusterIP and the NodePort of one port share a group');
    assert.notEqual(cip.frontendId, np.frontendId);
    assert.ok(cip.frontendId > 0 && cip.groupId > 0 && np.frontendId > 0);
    assert.equal(cip.count, 2);
    assert.equal(cip.flags, 0);
    assert.equal(np.flags, SVC_FLAG.nodeport);
    assert.deepEqual(sorted(t.backendsOf('10.96.0.10', 80, TCP)), ['10.244.0.5:8080', '10.244.0.6:8080']);
    for (const id of t.backends.keys()) assert.ok(id > 0, 'backend ids are never 0');
    assert.deepEqual([...t.ranges], CIDRS);
    assert.deepEqual(t.broken(), []);
  });

  it('writes nothing when the same snapshot comes again', () => {
    const { t, r } = setup();
    const s = snap([web()], [webSlice('10.244.0.5', '10.244.0.6')]);
    r.apply(s, node);
    const n = t.log.length;
    const out = r.apply(s, node);
    assert.equal(out.result, 'ok');
    assert.equal(t.log.length, n, `wrote ${JSON.stringify(t.log.slice(n))}`);
  });

  it('adds an endpoint with one backend, one slot and the counts, in that order', () => {
    const { t, r } = setup();
    r.apply(snap([web()], [webSlice('10.244.0.5', '10.244.0.6')]), node);
    const from = t.log.length;
    r.apply(snap([web()], [webSlice('10.244.0.5', '10.244.0.6', '10.244.0.7')]), node);
    const w = t.log.slice(from);
    assert.deepEqual(w.map((x) => `${x.op} ${x.map}`), ['set pn_backends', 'set pn_svc_slots', 'set pn_services', 'set pn_services']);
    assert.equal(t.frontend('10.96.0.10', 80, TCP)!.count, 3);
    assert.deepEqual(sorted(t.backendsOf('192.168.5.4', 30080, TCP)), ['10.244.0.5:8080', '10.244.0.6:8080', '10.244.0.7:8080']);
  });

  it('removes an endpoint by moving the last slot into its hole, lowering the counts, then deleting the slot and the backend', () => {
    const { t, r } = setup();
    r.apply(snap([web()], [webSlice('10.244.0.5', '10.244.0.6', '10.244.0.7')]), node);
    const before = t.backendsOf('10.96.0.10', 80, TCP);
    const from = t.log.length;
    r.apply(snap([web()], [webSlice('10.244.0.6', '10.244.0.7')]), node);
    const w = t.log.slice(from);
    assert.deepEqual(w.map((x) => `${x.op} ${x.map}`), ['set pn_svc_slots', 'set pn_services', 'set pn_services', 'delete pn_svc_slots', 'delete pn_backends']);
    const after = t.backendsOf('10.96.0.10', 80, TCP);
    assert.deepEqual(sorted(after), ['10.244.0.6:8080', '10.244.0.7:8080']);
    // The backend that stays in slot 1 is not moved.
    assert.equal(after[1], before[1]);
    assert.equal(t.backends.size, 2);
  });

  it('keeps every live frontend pointing at existing backends after every single write, and never empties a Service that has backends before and after', () => {
    const { t, r } = setup();
    let rng = 42;
    const rand = (n: number): number => { rng = (rng * 1103515245 + 12345) & 0x7fffffff; return rng % n; };
    const services = Array.from({ length: 6 }, (_, i) => svc(`s${i}`, {
      type: i % 2 ? 'NodePort' : 'ClusterIP', clusterIP: `10.96.1.${i + 1}`, externalTrafficPolicy: i % 3 === 0 ? 'Local' : 'Cluster',
      ports: [{ name: 'a', port: 80, protocol: 'TCP', nodePort: 30100 + i }, { name: 'b', port: 53, protocol: 'UDP', nodePort: 30200 + i }],
    }));
    const slicesFor = (round: number): EndpointSliceObject[] => services.map((s, i) => {
      const n = 1 + rand(6);
      const eps = Array.from({ length: n }, (_, j) => ep(`10.244.${i}.${1 + rand(12)}`, j === 0 && round % 4 === 0 ? { ready: false, serving: true, terminating: true } : { ready: true }, rand(2) ? 'node-a' : 'node-b'));
      return slice(s.metadata!.name!, [{ name: 'a', port: 8080, protocol: 'TCP' }, { name: 'b', port: 5353, protocol: 'UDP' }], eps);
    });
    const nonEmpty = (): Set<string> => new Set([...t.frontends.values()].filter(([, v]) => v.count > 0).map(([k]) => `${k.addr}:${k.port}/${k.proto}`));
    let checks = 0;
    for (let round = 0; round < 40; round++) {
      const next = snap(services.filter((_, i) => (round + i) % 7 !== 0), slicesFor(round));
      // Which frontends have backends now and will after this pass: those must never show count 0.
      const shadow = new FakeServiceTables();
      const sr = new ServiceReconciler({ tables: shadow, defaultServiceCidrs: CIDRS });
      sr.apply(next, node);
      const afterSet = new Set([...shadow.frontends.values()].filter(([, v]) => v.count > 0).map(([k]) => `${k.addr}:${k.port}/${k.proto}`));
      const keep = [...nonEmpty()].filter((k) => afterSet.has(k));
      t.afterWrite = (w: FakeWrite) => {
        checks++;
        const bad = t.broken();
        assert.deepEqual(bad, [], `after ${w.op} ${w.map} ${JSON.stringify(w.key)} in round ${round}`);
        const live = nonEmpty();
        for (const k of keep) assert.ok(live.has(k), `${k} had no backend after ${w.op} ${w.map} ${JSON.stringify(w.key)} in round ${round}`);
      };
      const out = r.apply(next, node);
      t.afterWrite = undefined;
      assert.deepEqual(out.errors, []);
      assert.deepEqual(nonEmpty(), afterSet, `round ${round}: the maps hold what the snapshot asks`);
      // The incremental pass leaves the maps as a pass from scratch would (ids aside).
      const view = (x: FakeServiceTables): string[] => [...x.frontends.values()].map(([k, v]) => `${k.addr}:${k.port}/${k.proto} flags=${v.flags} -> ${sorted(x.backendsOf(k.addr, k.port, k.proto)).join(',')}`).sort();
      assert.deepEqual(view(t), view(shadow), `round ${round}`);
      assert.deepEqual([...t.backends.values()].map((b) => `${b.addr}:${b.port}/${b.proto} ${b.flags}`).sort(), [...shadow.backends.values()].map((b) => `${b.addr}:${b.port}/${b.proto} ${b.flags}`).sort());
      assert.equal(t.slots.size, shadow.slots.size, `round ${round}: no slot left behind`);
    }
    assert.ok(checks > 100, `only ${checks} writes were checked`);
  });

  it('keeps every id across an agent restart and rewrites nothing that is right', () => {
    const { t, r } = setup();
    const s = snap([web(), svc('db', { clusterIP: '10.96.0.20', ports: [{ name: '', port: 5432, protocol: 'TCP' }] })],
      [webSlice('10.244.0.5', '10.244.0.6'), slice('db', [{ name: '', port: 5432, protocol: 'TCP' }], [ep('10.244.0.9')])]);
    r.apply(s, node);
    const ids = JSON.stringify([...t.frontends.values()]) + JSON.stringify([...t.slots.values()]) + JSON.stringify([...t.backends]);
    const from = t.log.length;
    const restarted = new ServiceReconciler({ tables: t, defaultServiceCidrs: CIDRS });
    const out = restarted.apply(s, node);
    assert.equal(out.result, 'ok');
    assert.deepEqual(t.log.slice(from), []);
    assert.equal(JSON.stringify([...t.frontends.values()]) + JSON.stringify([...t.slots.values()]) + JSON.stringify([...t.backends]), ids);
    assert.equal(restarted.names().get(t.frontend('10.96.0.20', 5432, TCP)!.frontendId)?.service, 'shop/db');

    // A change after the restart keeps the group and the ids that stay, and hands out new ids above the old ones.
    const before = t.frontend('10.96.0.10', 80, TCP)!;
    const maxBackend = Math.max(...t.backends.keys());
    restarted.apply(snap(s.services, [webSlice('10.244.0.5', '10.244.0.6', '10.244.0.8'), s.slices[1]!]), node);
    const afterF = t.frontend('10.96.0.10', 80, TCP)!;
    assert.equal(afterF.groupId, before.groupId);
    assert.equal(afterF.frontendId, before.frontendId);
    assert.ok([...t.backends.keys()].some((id) => id > maxBackend));
    assert.deepEqual(t.broken(), []);
  });

  it('tells whether the maps still hold what it wrote', () => {
    const { t, r } = setup();
    assert.equal(r.verify(), false, 'nothing is known before the first pass');
    r.apply(snap([web()], [webSlice('10.244.0.5', '10.244.0.6')]), node);
    assert.equal(r.verify(), true);
    const [id, b] = [...t.backends][0]!;
    t.backends.set(id, { ...b, flags: 3 });
    assert.equal(r.verify(), false);
    t.backends.set(id, b);
    t.slots.delete([...t.slots.keys()][0]!);
    assert.equal(r.verify(), false);
    r.load();
    r.apply(snap([web()], [webSlice('10.244.0.5', '10.244.0.6')]), node);
    assert.equal(r.verify(), true);
    assert.deepEqual(t.broken(), []);
    assert.equal(t.frontend('10.96.0.10', 80, TCP)!.count, 2, 'the missing slot is written again');
  });

  it('does not hand out a backend id conntrack still names after a restart', () => {
    const { t, r } = setup();
    r.apply(snap([web()], [webSlice('10.244.0.5')]), node);
    r.apply(snap([web()], []), node);
    assert.equal(t.backends.size, 0);
    t.conntrack = { backend: 50, frontend: 60 };
    const restarted = new ServiceReconciler({ tables: t, defaultServiceCidrs: CIDRS });
    restarted.apply(snap([web(), svc('db', { clusterIP: '10.96.0.20', ports: [{ port: 5432 }] })], [webSlice('10.244.0.7')]), node);
    assert.ok([...t.backends.keys()].every((id) => id > 50));
    assert.ok(t.frontend('10.96.0.20', 5432, TCP)!.frontendId > 60);
  });

  it('says which map is full, its size and the setting to raise, and still applies what fits', () => {
    const { t, r } = setup({ pn_backends: 3 });
    const other = svc('db', { clusterIP: '10.96.0.20', ports: [{ name: '', port: 5432, protocol: 'TCP' }] });
    t.afterWrite = () => assert.deepEqual(t.broken(), []);
    const out = r.apply(snap([web(), other], [webSlice('10.244.0.5', '10.244.0.6', '10.244.0.7', '10.244.0.8'), slice('db', [{ name: '', port: 5432, protocol: 'TCP' }], [ep('10.244.1.1')])]), node);
    assert.equal(out.result, 'failed');
    assert.equal(out.full.pn_backends, 2);
    assert.equal(out.errors.length, 1);
    assert.match(out.errors[0]!, /^write 2 entries to pn_backends: the map is full \(3 entries\); raise --lb-map-size/);
    assert.equal(t.backends.size, 3);
    // Both Services have frontends, and every count covers only backends that exist.
    assert.ok(t.frontend('10.96.0.10', 80, TCP) && t.frontend('10.96.0.20', 5432, TCP));
    const total = t.frontend('10.96.0.10', 80, TCP)!.count + t.frontend('10.96.0.20', 5432, TCP)!.count;
    assert.equal(total, 3);
    // Room again: the next pass completes it.
    t.caps.pn_backends = 10;
    const again = r.apply(snap([web(), other], [webSlice('10.244.0.5', '10.244.0.6', '10.244.0.7', '10.244.0.8'), slice('db', [{ name: '', port: 5432, protocol: 'TCP' }], [ep('10.244.1.1')])]), node);
    assert.deepEqual(again.errors, []);
    assert.equal(t.frontend('10.96.0.10', 80, TCP)!.count, 4);
    assert.equal(t.frontend('10.96.0.20', 5432, TCP)!.count, 1);
  });

  it('counts only the slots a full slot map took', () => {
    const { t, r } = setup({ pn_svc_slots: 2 });
    t.afterWrite = () => assert.deepEqual(t.broken(), []);
    const out = r.apply(snap([web()], [webSlice('10.244.0.5', '10.244.0.6', '10.244.0.7', '10.244.0.8')]), node);
    assert.equal(out.full.pn_svc_slots, 2);
    assert.match(out.errors[0]!, /pn_svc_slots: the map is full \(2 entries\); raise --lb-map-size \(slots get 4x\)/);
    assert.equal(t.frontend('10.96.0.10', 80, TCP)!.count, 2);
    assert.equal(t.frontend('192.168.5.4', 30080, TCP)!.count, 2);
    assert.equal(t.backends.size, 4, 'every endpoint keeps its backend');
  });

  it('reports a full frontend map and keeps the frontends it could write', () => {
    const { t, r } = setup({ pn_services: 1 });
    const out = r.apply(snap([web()], [webSlice('10.244.0.5')]), node);
    assert.equal(out.full.pn_services, 1);
    assert.match(out.errors.join('\n'), /pn_services: the map is full \(1 entries\); raise --lb-map-size/);
    assert.equal(t.frontends.size, 1);
    assert.deepEqual(t.broken(), []);
  });

  it('keeps a terminating endpoint that no longer serves in pn_backends, out of every slot, until it leaves its slice', () => {
    const { t, r, udpGone } = setup();
    const dns = svc('dns', { clusterIP: '10.96.0.53', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] });
    const dnsSlice = (...eps: Ep[]): EndpointSliceObject => slice('dns', [{ name: 'dns', port: 53, protocol: 'UDP' }], eps);
    r.apply(snap([dns], [dnsSlice(ep('10.244.0.2'), ep('10.244.0.3'))]), node);
    r.apply(snap([dns], [dnsSlice(ep('10.244.0.2'), ep('10.244.0.3', { ready: false, serving: false, terminating: true }))]), node);
    assert.deepEqual(t.backendsOf('10.96.0.53', 53, UDP), ['10.244.0.2:53']);
    const term = [...t.backends.values()].find((b) => b.addr === '10.244.0.3');
    assert.ok(term, 'the terminating endpoint keeps its backend for conntrack');
    assert.equal(term.flags & BACKEND_FLAG.terminating, BACKEND_FLAG.terminating);
    assert.deepEqual(udpGone, []);
    r.apply(snap([dns], [dnsSlice(ep('10.244.0.2'))]), node);
    assert.equal([...t.backends.values()].some((b) => b.addr === '10.244.0.3'), false);
    assert.deepEqual(udpGone, ['10.244.0.3:53'], 'the socket hook runs for the removed UDP backend');
  });

  it('uses serving terminating endpoints only when no ready one is left, flagged terminating', () => {
    const { t, r } = setup();
    r.apply(snap([web()], [webSlice(ep('10.244.0.5', { ready: false, serving: true, terminating: true }))]), node);
    assert.deepEqual(t.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.5:8080']);
    assert.equal([...t.backends.values()][0]!.flags & BACKEND_FLAG.terminating, BACKEND_FLAG.terminating);
  });

  it('gives Local-policy frontends their own group of local endpoints, and sets the affinity, local and external flags', () => {
    const { t, r } = setup();
    const s = web({
      type: 'LoadBalancer', externalTrafficPolicy: 'Local', externalIPs: ['203.0.113.7'], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
    });
    r.apply(snap([s], [webSlice(ep('10.244.0.5'), ep('10.244.9.9', { ready: true }, 'node-b'))]), node);
    const cip = t.frontend('10.96.0.10', 80, TCP)!;
    const np = t.frontend('192.168.5.4', 30080, TCP)!;
    const ext = t.frontend('203.0.113.7', 80, TCP)!;
    assert.notEqual(cip.groupId, np.groupId);
    assert.equal(np.groupId, ext.groupId, 'NodePort and externalIP share the Local group');
    assert.equal(cip.count, 2);
    assert.equal(np.count, 1);
    assert.deepEqual(t.backendsOf('192.168.5.4', 30080, TCP), ['10.244.0.5:8080']);
    assert.equal(cip.flags, SVC_FLAG.affinity);
    assert.equal(cip.affinitySeconds, 600);
    assert.equal(np.flags, SVC_FLAG.affinity | SVC_FLAG.local | SVC_FLAG.nodeport);
    assert.equal(ext.flags, SVC_FLAG.affinity | SVC_FLAG.local | SVC_FLAG.external);
    const local = [...t.backends.values()].find((b) => b.addr === '10.244.0.5')!;
    const remote = [...t.backends.values()].find((b) => b.addr === '10.244.9.9')!;
    assert.equal(local.flags, BACKEND_FLAG.local);
    assert.equal(remote.flags, 0);
  });

  it('moves a frontend to the Local group in one write when its policy changes', () => {
    const { t, r } = setup();
    const slices = [webSlice(ep('10.244.0.5'), ep('10.244.9.9', { ready: true }, 'node-b'))];
    r.apply(snap([web()], slices), node);
    t.afterWrite = () => assert.deepEqual(t.broken(), []);
    r.apply(snap([web({ externalTrafficPolicy: 'Local' })], slices), node);
    const np = t.frontend('192.168.5.4', 30080, TCP)!;
    assert.notEqual(np.groupId, t.frontend('10.96.0.10', 80, TCP)!.groupId);
    assert.deepEqual(t.backendsOf('192.168.5.4', 30080, TCP), ['10.244.0.5:8080']);
  });

  it('writes a frontend with count 0 for a Service without endpoints, so the datapath rejects', () => {
    const { t, r } = setup();
    r.apply(snap([web()], []), node);
    assert.equal(t.frontend('10.96.0.10', 80, TCP)!.count, 0);
    assert.equal(t.slots.size, 0);
  });

  it('removes a deleted Service: frontends, then slots, then backends, and its stats', () => {
    const { t, r } = setup();
    r.apply(snap([web()], [webSlice('10.244.0.5')]), node);
    const id = t.frontend('10.96.0.10', 80, TCP)!.frontendId;
    t.stats.set(id, { connections: 1n, packets: 2n, bytes: 3n, noBackend: 0n });
    const from = t.log.length;
    r.apply(snap([], []), node);
    assert.deepEqual(t.log.slice(from).map((x) => `${x.op} ${x.map}`), ['delete pn_services', 'delete pn_services', 'delete pn_svc_slots', 'delete pn_backends']);
    assert.equal(t.frontends.size + t.slots.size + t.backends.size, 0);
    assert.equal(t.stats.has(id), false);
  });

  it('writes the service CIDRs the snapshot gives into pn_svc_ranges, and the default when it gives none', () => {
    const { t, r } = setup();
    r.apply(snap([], [], ['10.222.0.0/16', '10.223.0.0/24']), node);
    assert.deepEqual([...t.ranges].sort(), ['10.222.0.0/16', '10.223.0.0/24']);
    r.apply(snap([], []), node);
    assert.deepEqual([...t.ranges], CIDRS);
    // A dual-stack cluster's ServiceCIDRs: the IPv6 one is not for this datapath.
    const out = r.apply(snap([], [], ['10.222.0.0/16', 'fd00:10:96::/112']), node);
    assert.deepEqual(out.errors, []);
    assert.deepEqual([...t.ranges], ['10.222.0.0/16']);
  });

  it('recomputes only Services whose object or slices changed, also when the source copies unchanged objects', () => {
    const { t, r } = setup();
    const a = { ...web(), metadata: { name: 'web', namespace: 'shop', resourceVersion: '7', uid: 'u1' } } as ServiceObject;
    const sl = { ...webSlice('10.244.0.5'), metadata: { ...webSlice().metadata, resourceVersion: '9', uid: 'u2' } } as EndpointSliceObject;
    r.apply(snap([a], [sl]), node);
    const from = t.log.length;
    // Same versions, new objects whose content differs: taken as unchanged.
    const copyA = structuredClone(a);
    const copySl = structuredClone(sl);
    copySl.endpoints = [ep('10.244.0.99')];
    assert.equal(r.apply(snap([copyA], [copySl]), node).result, 'ok');
    assert.equal(t.log.length, from);
    // A new version is computed (a new object: snapshot objects are never changed in place).
    const v10 = { ...copySl, metadata: { ...copySl.metadata, resourceVersion: '10' } } as EndpointSliceObject;
    r.apply(snap([copyA], [v10]), node);
    assert.deepEqual(t.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.99:8080']);
  });

  it('follows slices and Services by object across passes: one slice of two gone, order changed, a Service gone and back', () => {
    const { t, r } = setup();
    const s1 = slice('web', [{ name: 'http', port: 8080, protocol: 'TCP' }], [ep('10.244.0.5')], 'web-1');
    const s2 = slice('web', [{ name: 'http', port: 8080, protocol: 'TCP' }], [ep('10.244.0.6')], 'web-2');
    const w = web();
    r.apply(snap([w], [s1, s2]), node);
    assert.deepEqual(sorted(t.backendsOf('10.96.0.10', 80, TCP)), ['10.244.0.5:8080', '10.244.0.6:8080']);
    const from = t.log.length;
    assert.equal(r.apply(snap([w], [s2, s1]), node).result, 'ok', 'the same objects in another order change nothing');
    assert.equal(t.log.length, from);
    r.apply(snap([w], [s2]), node);
    assert.deepEqual(t.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.6:8080'], 'the slice that left takes its endpoint along');
    r.apply(snap([], [s2]), node);
    assert.equal(t.frontend('10.96.0.10', 80, TCP), undefined, 'a Service gone takes its frontends along, its slices staying');
    r.apply(snap([w], [s2]), node);
    assert.deepEqual(t.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.6:8080'], 'the same object back is a Service again');
    // Two objects of one name in one snapshot: the last one counts, and the other once it is alone.
    const w2 = web({ clusterIP: '10.96.0.11' });
    r.apply(snap([w, w2], [s2]), node);
    assert.ok(t.frontend('10.96.0.11', 80, TCP) && !t.frontend('10.96.0.10', 80, TCP));
    r.apply(snap([w], [s2]), node);
    assert.ok(t.frontend('10.96.0.10', 80, TCP) && !t.frontend('10.96.0.11', 80, TCP));
    assert.deepEqual(t.broken(), []);
  });

  it('refuses a frontend two Services claim, keeps the first one, and says so', () => {
    const { t, r } = setup();
    const other = svc('web2', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
    r.apply(snap([web()], [webSlice('10.244.0.5')]), node);
    const out = r.apply(snap([web(), other], [webSlice('10.244.0.5'), slice('web2', [{ name: 'http', port: 9090, protocol: 'TCP' }], [ep('10.244.0.6')])]), node);
    assert.match(out.errors.join('\n'), /frontend 10\.96\.0\.10:80\/TCP of Service shop\/web2: already used by Service shop\/web/);
    assert.deepEqual(t.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.5:8080']);
    // Once the first one is gone, the second gets it.
    r.apply(snap([other], [slice('web2', [{ name: 'http', port: 9090, protocol: 'TCP' }], [ep('10.244.0.6')])]), node);
    assert.deepEqual(t.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.6:9090']);
    assert.deepEqual(t.broken(), []);
  });

  it('skips ports that cannot exist instead of failing the whole pass', () => {
    const { t, r } = setup();
    const bad = svc('bad', { clusterIP: '10.96.0.30', ports: [{ name: 'x', port: 70000 }, { name: 'y', port: 81 }] });
    const out = r.apply(snap([web(), bad], [webSlice('10.244.0.5'), slice('bad', [{ name: 'y', port: 0 }], [ep('10.244.0.7')])]), node);
    assert.deepEqual(out.errors, []);
    assert.equal(t.frontend('10.96.0.30', 81, TCP)!.count, 0);
    assert.deepEqual(t.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.5:8080']);
  });

  it('keeps TCP and UDP backends of one endpoint apart', () => {
    const { t, r } = setup();
    const dns = svc('dns', { clusterIP: '10.96.0.53', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] });
    r.apply(snap([dns], [slice('dns', [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }], [ep('10.244.0.2')])]), node);
    assert.equal(t.backends.size, 2);
    assert.notEqual(t.frontend('10.96.0.53', 53, TCP)!.groupId, t.frontend('10.96.0.53', 53, UDP)!.groupId);
    assert.deepEqual(t.backendsOf('10.96.0.53', 53, UDP), ['10.244.0.2:53']);
  });
});

describe('slot placement', () => {
  it('keeps backends that stay in their slots and fills holes first', () => {
    assert.deepEqual(placeSlots([1, 2, 3], new Set([1, 3, 4])), [1, 4, 3]);
    assert.deepEqual(placeSlots([1, 2], new Set([1, 2, 5, 6])), [1, 2, 5, 6]);
  });
  it('moves the tail into holes when shrinking', () => {
    assert.deepEqual(placeSlots([1, 2, 3, 4, 5], new Set([2, 5])), [5, 2]);
    assert.deepEqual(placeSlots([1, 2, 3, 4], new Set([1, 2])), [1, 2]);
    assert.deepEqual(placeSlots([1, 2, 3, 4], new Set([3, 4])), [4, 3]);
    assert.deepEqual(placeSlots([1, 2, 3], new Set()), []);
  });
  it('treats empty and duplicate slots as holes', () => {
    assert.deepEqual(placeSlots([0, 2, 2], new Set([2, 7])), [7, 2]);
  });
});
