/**
 * Service translation in from_pod, to_pod and from_netdev, as fixture
 * packets through BPF_PROG_TEST_RUN against maps written by hand: DNAT and
 * reverse NAT with every checksum recomputed from scratch in the output,
 * conntrack, affinity, rejects, hairpin, service ranges and the stats.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { BpfObject, type BpfMap, type Program, type TypedMap } from '../../agent/src/libbpf/index.js';
import { compileBpf, DEFAULT_CT_TIMEOUTS, HAIRPIN_ADDR } from '../../agent/src/datapath/index.js';
import {
  CountersMap, CT_DIR, CT_FLAG, DROP_REASONS, EndpointsMap, EP_F_READY, SVC_FLAG, ServiceMaps,
  affinityKey, affinityValue, backendKey, backendValue, ctKey, ctValue, slotKey, slotValue, svcKey, svcRangeKey, svcRangeValue, svcValue,
} from '../../agent/src/maps/index.js';
import { bpffsDir, rmBpffsDir, scratchDir } from '../fixtures/bpf/fixtures.js';
import { ACK, FIN, ICMP, RST, SYN, TCP, UDP, frame, icmpErrorFrame, inetChecksum, ipBytes, parse, type FrameSpec } from '../lib/packets.js';

const TC_ACT_UNSPEC = -1, TC_ACT_SHOT = 2, TC_ACT_REDIRECT = 7;
const LO = 1; // BPF_PROG_TEST_RUN runs tc programs on an skb of the loopback device
const reason = (name: string): number => DROP_REASONS.find((r) => r.name === name)!.value;

const CLIENT = '10.77.0.10', BE_A = '10.77.0.20', BE_B = '10.77.0.21', HOST_BE = '192.0.2.50', NODE = '192.0.2.10', OUTSIDE = '198.51.100.7';
const POD_MAC: Record<string, string> = { [CLIENT]: '0a:00:00:00:00:10', [BE_A]: '0a:00:00:00:00:20', [BE_B]: '0a:00:00:00:00:21' };
const HOST_MAC = '0e:00:00:00:00:01';

type Ct = ReturnType<typeof ctValue.decode>;

describe('Service translation programs', () => {
  const out = scratchDir();
  const pins = bpffsDir();
  let pod: BpfObject, netdev: BpfObject;
  let fromPod: Program, toPod: Program, fromNetdev: Program, toNetdev: Program;
  let services: TypedMap<any, any>, slots: TypedMap<any, any>, backends: TypedMap<any, any>, ct: TypedMap<any, any>;
  let affinity: TypedMap<any, any>, ranges: TypedMap<any, any>;
  let counters: CountersMap;
  let view: ServiceMaps;
  let sport = 41000;
  const nextPort = () => ++sport;

  before(async () => {
    const compiled = await Promise.all(['pod', 'netdev'].map((s) => compileBpf(s, { cacheDir: out })));
    pod = BpfObject.open(compiled[0]!.path, { pinRoot: pins });
    pod.setConstants({
      pn_pod_cidr_addr: new Uint8Array(ipBytes('10.77.0.0')), pn_pod_cidr_mask: new Uint8Array(ipBytes('255.255.255.0')),
      pn_hairpin_addr: new Uint8Array(ipBytes(HAIRPIN_ADDR)),
    });
    pod.load();
    // The second object finds the first one's maps pinned by name and shares them.
    netdev = BpfObject.open(compiled[1]!.path, { pinRoot: pins });
    netdev.load();
    fromPod = pod.program('from_pod');
    toPod = pod.program('to_pod');
    fromNetdev = netdev.program('from_netdev');
    toNetdev = netdev.program('to_netdev');
    const m = (n: string): BpfMap => pod.map(n);
    services = m('pn_services').typed(svcKey, svcValue);
    slots = m('pn_svc_slots').typed(slotKey, slotValue);
    backends = m('pn_backends').typed(backendKey, backendValue);
    ct = m('pn_ct').typed(ctKey, ctValue);
    affinity = m('pn_affinity').typed(affinityKey, affinityValue);
    ranges = m('pn_svc_ranges').typed(svcRangeKey, svcRangeValue);
    counters = new CountersMap(m('pn_counters'));
    view = new ServiceMaps({
      services: m('pn_services'), svcSlots: m('pn_svc_slots'), backends: m('pn_backends'), conntrack: m('pn_ct'),
      affinity: m('pn_affinity'), svcStats: m('pn_svc_stats'), svcRanges: m('pn_svc_ranges'),
    });
    assert.equal(netdev.map('pn_ct').id, pod.map('pn_ct').id, 'both objects share one conntrack map');

    const eps = new EndpointsMap(m('pn_endpoints'));
    let id = 10;
    for (const ip of [CLIENT, BE_A, BE_B]) eps.set(ip, { ifindex: LO, endpointId: id++, podMac: POD_MAC[ip]!, hostMac: HOST_MAC, flags: EP_F_READY });
    ranges.set({ prefixLen: 24, data: '10.96.1.0' }, { flags: 0 });
  });
  after(() => {
    netdev?.close();
    pod?.close();
    rmBpffsDir(pins);
    rmSync(out, { recursive: true, force: true });
  });

  const backend = (id: number, addr: string, port: number, proto = TCP) => backends.set({ backendId: id }, { addr, port, proto, flags: 0 });
  /** A frontend with its group filled from `ids`, written in the order the reconciler uses. */
  function frontend(o: { addr: string; port: number; proto?: number; id: number; group: number; ids: number[]; flags?: number; affinitySeconds?: number }): void {
    o.ids.forEach((b, slot) => slots.set({ groupId: o.group, slot }, { backendId: b }));
    services.set({ addr: o.addr, port: o.port, proto: o.proto ?? TCP, pad: 0 },
      { frontendId: o.id, groupId: o.group, count: o.ids.length, flags: o.flags ?? 0, affinitySeconds: o.affinitySeconds ?? 0, pad: 0 });
  }
  const fwdKey = (s: { src: string; dst: string; sport: number; dport: number; proto: number }) =>
    ({ saddr: s.src, daddr: s.dst, sport: s.sport, dport: s.dport, proto: s.proto, dir: CT_DIR.forward, pad: 0 });
  const revKey = (s: { src: string; dst: string; sport: number; dport: number; proto: number }) =>
    ({ saddr: s.src, daddr: s.dst, sport: s.sport, dport: s.dport, proto: s.proto, dir: CT_DIR.reverse, pad: 0 });
  const statsOf = (frontendId: number) => view.frontendStats(frontendId);
  const dropCount = (endpointId: number, dir: 'ingress' | 'egress', r: number) =>
    counters.readAll().filter((c) => c.endpointId === endpointId && c.direction === dir && c.reason === r).reduce((s, c) => s + c.packets, 0n);
  const run = (p: Program, s: FrameSpec) => {
    const r = p.testRun({ data: frame(s) });
    return { retval: r.retval, pkt: parse(r.dataOut), raw: r.dataOut };
  };
  const assertChecksums = (p: ReturnType<typeof parse>) => {
    assert.ok(p.ipChecksumOk, 'IPv4 header checksum verifies');
    assert.ok(p.l4ChecksumOk, `L4 checksum 0x${p.l4Checksum.toString(16)} verifies`);
  };

  // ---- ClusterIP TCP and UDP -------------------------------------------------

  before(() => {
    backend(1, BE_A, 8080);
    backend(3, BE_A, 5353, UDP);
    backend(4, BE_B, 5354);
    frontend({ addr: '10.96.1.1', port: 80, id: 1, group: 1, ids: [1] });
    frontend({ addr: '10.96.1.1', port: 53, proto: UDP, id: 2, group: 2, ids: [3] });
    frontend({ addr: '10.96.1.1', port: 53, proto: TCP, id: 3, group: 3, ids: [4] });
  });

  test('from_pod DNATs a TCP SYN to a ClusterIP to the backend, redirects it to the backend pod and keeps both checksums right', () => {
    const p = nextPort();
    const before = statsOf(1);
    const { retval, pkt, raw } = run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: TCP, sport: p, dport: 80, payload: Buffer.from('hello') });
    assert.equal(retval, TC_ACT_REDIRECT);
    assert.equal(pkt.dst, BE_A);
    assert.equal(pkt.dport, 8080);
    assert.equal(pkt.src, CLIENT, 'the source is left alone');
    assert.equal(pkt.sport, p);
    assert.equal(pkt.dstMac, POD_MAC[BE_A], 'routed on the translated destination');
    assert.deepEqual(pkt.payload, Buffer.from('hello'));
    assertChecksums(pkt);
    const after = statsOf(1);
    assert.equal(after.connections - before.connections, 1n, 'one new connection');
    assert.equal(after.packets - before.packets, 1n);
    assert.equal(after.bytes - before.bytes, BigInt(raw.length));
    const f = ct.get(fwdKey({ src: CLIENT, dst: '10.96.1.1', sport: p, dport: 80, proto: TCP })) as Ct;
    assert.equal(f.backendId, 1);
    assert.equal(f.frontendId, 1);
    const r = ct.get(revKey({ src: BE_A, dst: CLIENT, sport: 8080, dport: p, proto: TCP })) as Ct;
    assert.deepEqual([r.natAddr, r.natPort, r.origAddr], ['10.96.1.1', 80, '0.0.0.0'], 'the reverse entry writes the frontend back');
  });

  test('from_pod DNATs UDP with a checksum, and UDP without one keeps checksum 0', () => {
    const p = nextPort();
    const a = run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: UDP, sport: p, dport: 53, payload: Buffer.from('query') });
    assert.equal(a.retval, TC_ACT_REDIRECT);
    assert.deepEqual([a.pkt.dst, a.pkt.dport], [BE_A, 5353]);
    assert.notEqual(a.pkt.l4Checksum, 0);
    assertChecksums(a.pkt);
    const b = run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: UDP, sport: nextPort(), dport: 53, payload: Buffer.from('query'), noUdpChecksum: true });
    assert.deepEqual([b.pkt.dst, b.pkt.dport], [BE_A, 5353]);
    assert.equal(b.pkt.l4Checksum, 0, 'no checksum stays no checksum');
    assert.ok(b.pkt.ipChecksumOk);
  });

  test('TCP and UDP on the same port go to different groups', () => {
    const u = run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: UDP, sport: nextPort(), dport: 53 });
    const t = run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: TCP, sport: nextPort(), dport: 53 });
    assert.deepEqual([u.pkt.dst, u.pkt.dport], [BE_A, 5353]);
    assert.deepEqual([t.pkt.dst, t.pkt.dport], [BE_B, 5354]);
    assertChecksums(t.pkt);
  });

  test("from_pod gives the backend pod's answer the frontend as its source again", () => {
    const p = nextPort();
    run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: TCP, sport: p, dport: 80 });
    const { retval, pkt } = run(fromPod, { src: BE_A, dst: CLIENT, proto: TCP, sport: 8080, dport: p, flags: SYN | ACK, ack: 1001, payload: Buffer.from('hi') });
    assert.equal(retval, TC_ACT_REDIRECT);
    assert.deepEqual([pkt.src, pkt.sport, pkt.dst, pkt.dport], ['10.96.1.1', 80, CLIENT, p]);
    assert.equal(pkt.dstMac, POD_MAC[CLIENT], 'and it is routed to the client pod');
    assertChecksums(pkt);
    const f = ct.get(fwdKey({ src: CLIENT, dst: '10.96.1.1', sport: p, dport: 80, proto: TCP })) as Ct;
    assert.ok(f.flags & CT_FLAG.seen_reply, 'the forward entry knows the backend answered');
  });

  test('a packet from a pod that matches no conntrack entry and no frontend passes untranslated', () => {
    const { retval, pkt } = run(fromPod, { src: BE_A, dst: CLIENT, proto: TCP, sport: 8080, dport: 1, flags: ACK });
    assert.equal(retval, TC_ACT_REDIRECT);
    assert.deepEqual([pkt.src, pkt.sport], [BE_A, 8080]);
  });

  test("a backend's ICMP port unreachable about a translated flow is translated back, quoted packet included", () => {
    const p = nextPort();
    const sent = run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: UDP, sport: p, dport: 53, payload: Buffer.from('q') });
    assert.deepEqual([sent.pkt.dst, sent.pkt.dport], [BE_A, 5353]);
    // What the backend's kernel quotes: the datagram as it arrived there.
    const quoted = Buffer.from(sent.raw.subarray(14, 14 + 28));
    const r = fromPod.testRun({ data: icmpErrorFrame({ src: BE_A, dst: CLIENT, quoted }) });
    assert.equal(r.retval, TC_ACT_REDIRECT, 'on to the client pod');
    const pkt = parse(r.dataOut);
    assert.deepEqual([pkt.src, pkt.dst, pkt.icmpType, pkt.icmpCode], ['10.96.1.1', CLIENT, 3, 3]);
    assert.ok(pkt.ipChecksumOk && pkt.l4ChecksumOk, 'outer IPv4 and ICMP checksums verify');
    const inner = pkt.quoted;
    assert.equal(`${inner[12]}.${inner[13]}.${inner[14]}.${inner[15]}`, CLIENT, 'quoted source is the client');
    assert.equal(`${inner[16]}.${inner[17]}.${inner[18]}.${inner[19]}`, '10.96.1.1', 'quoted destination is the frontend');
    assert.deepEqual([inner.readUInt16BE(20), inner.readUInt16BE(22)], [p, 53]);
    assert.equal(inetChecksum(inner.subarray(0, 20)), 0, 'quoted IPv4 checksum verifies');
  });

  test('an ICMP error about a flow that was never translated is left alone', () => {
    const quoted = frame({ src: CLIENT, dst: BE_B, proto: UDP, sport: 9, dport: 9 }).subarray(14, 42);
    const r = fromPod.testRun({ data: icmpErrorFrame({ src: BE_A, dst: CLIENT, quoted }) });
    const pkt = parse(r.dataOut);
    assert.equal(pkt.src, BE_A);
    assert.deepEqual(pkt.quoted.subarray(0, 28), quoted);
  });

  // ---- host-network backend, to_pod ------------------------------------------

  test('from_pod DNATs to a host-network backend and passes it to the host stack; to_pod translates the answer back', () => {
    backend(6, HOST_BE, 6443);
    frontend({ addr: '10.96.1.5', port: 443, id: 8, group: 8, ids: [6] });
    const p = nextPort();
    const fwd = run(fromPod, { src: CLIENT, dst: '10.96.1.5', proto: TCP, sport: p, dport: 443 });
    assert.equal(fwd.retval, TC_ACT_UNSPEC, 'on to the host stack');
    assert.deepEqual([fwd.pkt.dst, fwd.pkt.dport], [HOST_BE, 6443]);
    assertChecksums(fwd.pkt);
    const back = run(toPod, { src: HOST_BE, dst: CLIENT, proto: TCP, sport: 6443, dport: p, flags: SYN | ACK, ack: 1001 });
    assert.equal(back.retval, TC_ACT_UNSPEC, 'to_pod never drops or redirects');
    assert.deepEqual([back.pkt.src, back.pkt.sport, back.pkt.dst, back.pkt.dport], ['10.96.1.5', 443, CLIENT, p]);
    assertChecksums(back.pkt);
  });

  test('to_pod leaves traffic of untranslated connections alone', () => {
    const { pkt } = run(toPod, { src: HOST_BE, dst: CLIENT, proto: TCP, sport: 6443, dport: 9, flags: ACK });
    assert.deepEqual([pkt.src, pkt.sport], [HOST_BE, 6443]);
    assertChecksums(pkt);
  });

  // ---- conntrack ---------------------------------------------------------------

  test('an established connection keeps its backend when the slots change, and a new one gets the new backend', () => {
    backend(10, BE_A, 9000);
    backend(11, BE_B, 9000);
    frontend({ addr: '10.96.1.10', port: 80, id: 10, group: 10, ids: [10] });
    const p = nextPort();
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.10', proto: TCP, sport: p, dport: 80 }).pkt.dst, BE_A);
    frontend({ addr: '10.96.1.10', port: 80, id: 10, group: 10, ids: [11] });
    const again = run(fromPod, { src: CLIENT, dst: '10.96.1.10', proto: TCP, sport: p, dport: 80, flags: ACK, seq: 1001, ack: 5 });
    assert.equal(again.pkt.dst, BE_A, 'the connection stays on its backend');
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.10', proto: TCP, sport: nextPort(), dport: 80 }).pkt.dst, BE_B, 'a new connection uses the new slots');
  });

  test('an expired conntrack entry counts as a miss', () => {
    backend(12, BE_A, 7000, UDP);
    backend(13, BE_B, 7000, UDP);
    frontend({ addr: '10.96.1.11', port: 70, proto: UDP, id: 11, group: 11, ids: [12] });
    const p = nextPort();
    const spec = { src: CLIENT, dst: '10.96.1.11', proto: UDP, sport: p, dport: 70 };
    assert.equal(run(fromPod, spec).pkt.dst, BE_A);
    frontend({ addr: '10.96.1.11', port: 70, proto: UDP, id: 11, group: 11, ids: [13] });
    assert.equal(run(fromPod, spec).pkt.dst, BE_A, 'still live');
    const k = fwdKey(spec);
    const e = ct.get(k) as Ct;
    const old = process.hrtime.bigint() - BigInt(DEFAULT_CT_TIMEOUTS.other + 5) * 1_000_000_000n;
    ct.set(k, { ...e, lastSeenNs: old });
    assert.equal(run(fromPod, spec).pkt.dst, BE_B, 'older than the UDP timeout: picked again');
  });

  test('a conntrack entry refreshed by another CPU after this packet read the clock is live, not expired', () => {
    backend(14, BE_A, 7100);
    backend(15, BE_B, 7100);
    frontend({ addr: '10.96.1.12', port: 80, id: 12, group: 12, ids: [14] });
    const spec = { src: CLIENT, dst: '10.96.1.12', proto: TCP, sport: nextPort(), dport: 80 };
    assert.equal(run(fromPod, spec).pkt.dst, BE_A);
    frontend({ addr: '10.96.1.12', port: 80, id: 12, group: 12, ids: [15] });
    const k = fwdKey(spec);
    ct.set(k, { ...(ct.get(k) as Ct), lastSeenNs: process.hrtime.bigint() + 5_000_000_000n });
    assert.equal(run(fromPod, { ...spec, flags: ACK }).pkt.dst, BE_A, 'the connection keeps its backend');
  });

  test('a packet writes its conntrack entry\'s last use only when it is a second old or more', () => {
    backend(16, BE_A, 7200, UDP);
    frontend({ addr: '10.96.1.13', port: 72, proto: UDP, id: 13, group: 13, ids: [16] });
    const spec = { src: CLIENT, dst: '10.96.1.13', proto: UDP, sport: nextPort(), dport: 72 };
    assert.equal(run(fromPod, spec).pkt.dst, BE_A);
    const k = fwdKey(spec);
    const recent = process.hrtime.bigint() - 500_000_000n;
    ct.set(k, { ...(ct.get(k) as Ct), lastSeenNs: recent });
    run(fromPod, spec);
    assert.equal((ct.get(k) as Ct).lastSeenNs, recent, 'half a second old: not written');
    const stale = process.hrtime.bigint() - 2_000_000_000n;
    ct.set(k, { ...(ct.get(k) as Ct), lastSeenNs: stale });
    const before = process.hrtime.bigint();
    run(fromPod, spec);
    assert.ok((ct.get(k) as Ct).lastSeenNs >= before, 'two seconds old: refreshed');
  });

  test('answers keep the FORWARD entry alive, looking it up only when its REVERSE entry is due', () => {
    backend(17, BE_A, 7300, UDP);
    frontend({ addr: '10.96.1.14', port: 73, proto: UDP, id: 14, group: 14, ids: [17] });
    const p = nextPort();
    const spec = { src: CLIENT, dst: '10.96.1.14', proto: UDP, sport: p, dport: 73 };
    assert.equal(run(fromPod, spec).pkt.dst, BE_A);
    const answer = { src: BE_A, dst: CLIENT, proto: UDP, sport: 7300, dport: p };
    assert.equal(run(fromPod, answer).pkt.src, '10.96.1.14', 'the first answer carries the frontend');
    const fk = fwdKey(spec), rk = revKey(answer);
    const old = process.hrtime.bigint() - 50_000_000_000n;
    ct.set(fk, { ...(ct.get(fk) as Ct), lastSeenNs: old });
    ct.set(rk, { ...(ct.get(rk) as Ct), lastSeenNs: process.hrtime.bigint() });
    run(fromPod, answer);
    assert.equal((ct.get(fk) as Ct).lastSeenNs, old, 'REVERSE refreshed just now: FORWARD not touched');
    ct.set(rk, { ...(ct.get(rk) as Ct), lastSeenNs: process.hrtime.bigint() - 2_000_000_000n });
    const before = process.hrtime.bigint();
    run(fromPod, answer);
    assert.ok((ct.get(fk) as Ct).lastSeenNs >= before, 'REVERSE due: FORWARD refreshed by the answer');
    assert.ok((ct.get(rk) as Ct).lastSeenNs >= before, 'and REVERSE itself');
    assert.equal(run(fromPod, spec).pkt.dst, BE_A, 'the flow stays on its backend');
  });

  test('a FIN marks both entries of the connection closing', () => {
    const p = nextPort();
    run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: TCP, sport: p, dport: 80 });
    run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: TCP, sport: p, dport: 80, flags: FIN | ACK, seq: 1001, ack: 1 });
    const f = ct.get(fwdKey({ src: CLIENT, dst: '10.96.1.1', sport: p, dport: 80, proto: TCP })) as Ct;
    const r = ct.get(revKey({ src: BE_A, dst: CLIENT, sport: 8080, dport: p, proto: TCP })) as Ct;
    assert.ok(f.flags & CT_FLAG.closing, 'forward entry closing');
    assert.ok(r.flags & CT_FLAG.closing, 'reverse entry closing');
  });

  test('an RST from the backend marks both entries closing', () => {
    const p = nextPort();
    run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: TCP, sport: p, dport: 80 });
    run(fromPod, { src: BE_A, dst: CLIENT, proto: TCP, sport: 8080, dport: p, flags: RST | ACK, ack: 1001 });
    const f = ct.get(fwdKey({ src: CLIENT, dst: '10.96.1.1', sport: p, dport: 80, proto: TCP })) as Ct;
    const r = ct.get(revKey({ src: BE_A, dst: CLIENT, sport: 8080, dport: p, proto: TCP })) as Ct;
    assert.ok(f.flags & CT_FLAG.closing && r.flags & CT_FLAG.closing);
  });

  test('a TCP connection whose backend was removed is reset, counted as backend_gone', () => {
    backend(20, BE_A, 9100);
    backend(21, BE_B, 9100);
    frontend({ addr: '10.96.1.20', port: 80, id: 20, group: 20, ids: [20] });
    const p = nextPort();
    run(fromPod, { src: CLIENT, dst: '10.96.1.20', proto: TCP, sport: p, dport: 80 });
    frontend({ addr: '10.96.1.20', port: 80, id: 20, group: 20, ids: [21] });
    backends.delete({ backendId: 20 });
    const before = dropCount(10, 'egress', reason('backend_gone'));
    const { retval, pkt } = run(fromPod, { src: CLIENT, dst: '10.96.1.20', proto: TCP, sport: p, dport: 80, flags: ACK | 0x08, seq: 5000, ack: 777, payload: Buffer.from('data') });
    assert.equal(retval, TC_ACT_REDIRECT, 'the reset goes back to the client');
    assert.equal(pkt.flags, RST, 'answering a segment with ACK: RST alone');
    assert.equal(pkt.seq, 777, 'seq is the ACK the client sent');
    assert.deepEqual([pkt.src, pkt.sport, pkt.dst, pkt.dport], ['10.96.1.20', 80, CLIENT, p]);
    assertChecksums(pkt);
    assert.equal(dropCount(10, 'egress', reason('backend_gone')) - before, 1n);
  });

  test('a UDP flow whose backend was removed picks a backend again', () => {
    backend(22, BE_A, 9200, UDP);
    backend(23, BE_B, 9200, UDP);
    frontend({ addr: '10.96.1.21', port: 53, proto: UDP, id: 21, group: 21, ids: [22] });
    const spec = { src: CLIENT, dst: '10.96.1.21', proto: UDP, sport: nextPort(), dport: 53 };
    assert.equal(run(fromPod, spec).pkt.dst, BE_A);
    frontend({ addr: '10.96.1.21', port: 53, proto: UDP, id: 21, group: 21, ids: [23] });
    backends.delete({ backendId: 22 });
    const { retval, pkt } = run(fromPod, spec);
    assert.equal(retval, TC_ACT_REDIRECT);
    assert.equal(pkt.dst, BE_B);
    assert.equal((ct.get(fwdKey(spec)) as Ct).backendId, 23, 'the flow now names the new backend');
  });

  // ---- affinity ------------------------------------------------------------------

  test('with ClientIP affinity every connection of a client goes to one backend', () => {
    backend(30, BE_A, 9300);
    backend(31, BE_B, 9300);
    frontend({ addr: '10.96.1.30', port: 80, id: 30, group: 30, ids: [30, 31], flags: SVC_FLAG.affinity, affinitySeconds: 60 });
    const seen = new Set<string>();
    for (let i = 0; i < 24; i++) seen.add(run(fromPod, { src: CLIENT, dst: '10.96.1.30', proto: TCP, sport: nextPort(), dport: 80 }).pkt.dst);
    assert.equal(seen.size, 1, `one backend for 24 connections, got ${[...seen].join(', ')}`);
    const a = affinity.get({ groupId: 30, clientAddr: CLIENT });
    assert.ok(a, 'affinity recorded');
    assert.equal(backends.get({ backendId: a.backendId }).addr, [...seen][0]);
  });

  test('without affinity connections spread over the slots', () => {
    frontend({ addr: '10.96.1.31', port: 80, id: 31, group: 31, ids: [30, 31] });
    const seen = new Set<string>();
    // 40 connections all on one of two backends happens with probability 2^-39.
    for (let i = 0; i < 40; i++) seen.add(run(fromPod, { src: CLIENT, dst: '10.96.1.31', proto: TCP, sport: nextPort(), dport: 80 }).pkt.dst);
    assert.deepEqual([...seen].sort(), [BE_A, BE_B]);
  });

  test('a fresh affinity wins over the slots, and an expired one is replaced by a new pick', () => {
    frontend({ addr: '10.96.1.32', port: 80, id: 32, group: 32, ids: [31], flags: SVC_FLAG.affinity, affinitySeconds: 5 });
    const now = process.hrtime.bigint();
    affinity.set({ groupId: 32, clientAddr: CLIENT }, { lastUsedNs: now, backendId: 30, pad: 0 });
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.32', proto: TCP, sport: nextPort(), dport: 80 }).pkt.dst, BE_A, 'fresh affinity: backend 30');
    affinity.set({ groupId: 32, clientAddr: CLIENT }, { lastUsedNs: now - 6_000_000_000n, backendId: 30, pad: 0 });
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.32', proto: TCP, sport: nextPort(), dport: 80 }).pkt.dst, BE_B, 'expired: the slot decides');
    assert.equal(affinity.get({ groupId: 32, clientAddr: CLIENT }).backendId, 31, 'and becomes the new affinity');
  });

  test('an affinity used by another CPU after this packet read the clock is fresh', () => {
    frontend({ addr: '10.96.1.33', port: 80, id: 33, group: 33, ids: [31], flags: SVC_FLAG.affinity, affinitySeconds: 5 });
    affinity.set({ groupId: 33, clientAddr: CLIENT }, { lastUsedNs: process.hrtime.bigint() + 5_000_000_000n, backendId: 30, pad: 0 });
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.33', proto: TCP, sport: nextPort(), dport: 80 }).pkt.dst, BE_A);
  });

  // ---- Local policy ----------------------------------------------------------------

  test('the Local flag changes nothing in selection: the group the agent wrote is used as it is', () => {
    frontend({ addr: '10.96.1.40', port: 80, id: 40, group: 40, ids: [31], flags: SVC_FLAG.local });
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.40', proto: TCP, sport: nextPort(), dport: 80 }).pkt.dst, BE_B);
  });

  test('a Local frontend without backends drops, counted as no_local_backend and in the frontend stats', () => {
    frontend({ addr: '10.96.1.41', port: 80, id: 41, group: 41, ids: [], flags: SVC_FLAG.local });
    const before = dropCount(10, 'egress', reason('no_local_backend'));
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.41', proto: TCP, sport: nextPort(), dport: 80 }).retval, TC_ACT_SHOT);
    assert.equal(dropCount(10, 'egress', reason('no_local_backend')) - before, 1n);
    assert.equal(statsOf(41).noBackend, 1n);
  });

  // ---- rejects ----------------------------------------------------------------------

  test('a TCP SYN to a frontend without backends is answered with RST+ACK built in BPF', () => {
    frontend({ addr: '10.96.1.2', port: 80, id: 4, group: 4, ids: [] });
    const p = nextPort();
    const before = dropCount(10, 'egress', reason('no_backend'));
    const { retval, pkt, raw } = run(fromPod, { src: CLIENT, dst: '10.96.1.2', proto: TCP, sport: p, dport: 80, seq: 123456, srcMac: POD_MAC[CLIENT]!, dstMac: HOST_MAC });
    assert.equal(retval, TC_ACT_REDIRECT, 'sent back out to the client');
    assert.equal(raw.length, 14 + 20 + 20, 'just the headers');
    assert.deepEqual([pkt.dstMac, pkt.srcMac], [POD_MAC[CLIENT], HOST_MAC], 'MACs swapped');
    assert.deepEqual([pkt.src, pkt.sport, pkt.dst, pkt.dport], ['10.96.1.2', 80, CLIENT, p]);
    assert.equal(pkt.flags, RST | ACK);
    assert.equal(pkt.seq, 0);
    assert.equal(pkt.ack, 123457, 'acknowledges the SYN');
    assert.equal(pkt.totLen, 40);
    assertChecksums(pkt);
    assert.equal(dropCount(10, 'egress', reason('no_backend')) - before, 1n, 'counted under no_backend');
    assert.equal(statsOf(4).noBackend, 1n);
    assert.equal(statsOf(4).connections, 0n);
    assert.equal(view.allStats().get(4)?.noBackend, 1n, 'allStats sums the same');
  });

  test('a TCP segment with payload and FIN to a frontend without backends is acknowledged whole in the RST', () => {
    const { pkt } = run(fromPod, { src: CLIENT, dst: '10.96.1.2', proto: TCP, sport: nextPort(), dport: 80, seq: 10, flags: FIN | 0x08, payload: Buffer.from('abcdef') });
    assert.equal(pkt.flags, RST | ACK);
    assert.equal(pkt.ack, 10 + 6 + 1);
    assertChecksums(pkt);
  });

  test('UDP to a frontend without backends is answered with ICMP port unreachable quoting the datagram', () => {
    frontend({ addr: '10.96.1.2', port: 53, proto: UDP, id: 5, group: 5, ids: [] });
    const p = nextPort();
    const input = frame({ src: CLIENT, dst: '10.96.1.2', proto: UDP, sport: p, dport: 53, payload: Buffer.from('a longer query payload') });
    const r = fromPod.testRun({ data: input });
    const pkt = parse(r.dataOut);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.dataOut.length, 14 + 20 + 8 + 20 + 8);
    assert.equal(pkt.proto, ICMP);
    assert.deepEqual([pkt.icmpType, pkt.icmpCode], [3, 3]);
    assert.deepEqual([pkt.src, pkt.dst], ['10.96.1.2', CLIENT]);
    assert.deepEqual(pkt.quoted, input.subarray(14, 14 + 28), 'the original IPv4 header and 8 bytes');
    assertChecksums(pkt);
    assert.equal(statsOf(5).noBackend, 1n);
  });

  // ---- hairpin ------------------------------------------------------------------------

  test('a pod reaching itself through its Service sees the hairpin address, and its answer is translated back', () => {
    backend(50, CLIENT, 8080);
    frontend({ addr: '10.96.1.50', port: 80, id: 50, group: 50, ids: [50] });
    const p = nextPort();
    const there = run(fromPod, { src: CLIENT, dst: '10.96.1.50', proto: TCP, sport: p, dport: 80 });
    assert.equal(there.retval, TC_ACT_REDIRECT);
    assert.deepEqual([there.pkt.src, there.pkt.sport, there.pkt.dst, there.pkt.dport], [HAIRPIN_ADDR, p, CLIENT, 8080]);
    assert.equal(there.pkt.dstMac, POD_MAC[CLIENT]);
    assertChecksums(there.pkt);
    const back = run(fromPod, { src: CLIENT, dst: HAIRPIN_ADDR, proto: TCP, sport: 8080, dport: p, flags: SYN | ACK, ack: 1001 });
    assert.equal(back.retval, TC_ACT_REDIRECT);
    assert.deepEqual([back.pkt.src, back.pkt.sport, back.pkt.dst, back.pkt.dport], ['10.96.1.50', 80, CLIENT, p]);
    assertChecksums(back.pkt);
    const again = run(fromPod, { src: CLIENT, dst: '10.96.1.50', proto: TCP, sport: p, dport: 80, flags: ACK, seq: 1001, ack: 1 });
    assert.equal(again.pkt.src, HAIRPIN_ADDR, 'later packets of the connection are hairpinned too');
    const f = ct.get(fwdKey({ src: CLIENT, dst: '10.96.1.50', sport: p, dport: 80, proto: TCP })) as Ct;
    assert.ok(f.flags & CT_FLAG.hairpin);
  });

  // ---- service ranges ---------------------------------------------------------------

  test('a packet into a service range that matches no frontend is dropped and counted as no_service', () => {
    const before = dropCount(10, 'egress', reason('no_service'));
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.200', proto: TCP, dport: 80 }).retval, TC_ACT_SHOT);
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: TCP, dport: 81 }).retval, TC_ACT_SHOT, 'a frontend address on another port');
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.1.1', proto: ICMP }).retval, TC_ACT_SHOT, 'ICMP into the range');
    assert.equal(dropCount(10, 'egress', reason('no_service')) - before, 3n);
  });

  test('a packet outside every service range and frontend is routed as before', () => {
    assert.equal(run(fromPod, { src: CLIENT, dst: '10.96.2.1', proto: TCP, dport: 80 }).retval, TC_ACT_UNSPEC);
  });

  // ---- from_netdev --------------------------------------------------------------------

  test('from_netdev DNATs a NodePort connection from outside to a local pod, and from_pod translates the answer', () => {
    frontend({ addr: NODE, port: 30080, id: 60, group: 1, ids: [1], flags: SVC_FLAG.nodeport });
    const p = nextPort();
    const before = statsOf(60);
    const { retval, pkt } = run(fromNetdev, { src: OUTSIDE, dst: NODE, proto: TCP, sport: p, dport: 30080 });
    assert.equal(retval, TC_ACT_REDIRECT, 'straight into the backend pod');
    assert.deepEqual([pkt.src, pkt.sport, pkt.dst, pkt.dport], [OUTSIDE, p, BE_A, 8080]);
    assert.deepEqual([pkt.dstMac, pkt.srcMac], [POD_MAC[BE_A], HOST_MAC]);
    assertChecksums(pkt);
    assert.equal(statsOf(60).connections - before.connections, 1n);
    const back = run(fromPod, { src: BE_A, dst: OUTSIDE, proto: TCP, sport: 8080, dport: p, flags: SYN | ACK, ack: 1001 });
    // Straight out when this machine's FIB has a route to the client (the
    // real-traffic test proves where it goes), else to the host stack.
    assert.ok([TC_ACT_REDIRECT, TC_ACT_UNSPEC].includes(back.retval), `the answer leaves towards the client (verdict ${back.retval})`);
    assert.deepEqual([back.pkt.src, back.pkt.sport, back.pkt.dst, back.pkt.dport], [NODE, 30080, OUTSIDE, p]);
    assertChecksums(back.pkt);
  });

  test("from_netdev DNATs a NodePort to a host-network backend for the host stack; to_netdev translates the host's answer", () => {
    backend(62, NODE, 10250);
    frontend({ addr: NODE, port: 30082, id: 62, group: 62, ids: [62], flags: SVC_FLAG.nodeport });
    const p = nextPort();
    const fwd = run(fromNetdev, { src: OUTSIDE, dst: NODE, proto: TCP, sport: p, dport: 30082 });
    assert.equal(fwd.retval, TC_ACT_UNSPEC, 'to the host stack, which owns the backend address');
    assert.deepEqual([fwd.pkt.dst, fwd.pkt.dport], [NODE, 10250]);
    assertChecksums(fwd.pkt);
    const back = run(toNetdev, { src: NODE, dst: OUTSIDE, proto: TCP, sport: 10250, dport: p, flags: SYN | ACK, ack: 1001 });
    assert.equal(back.retval, TC_ACT_UNSPEC, 'to_netdev never drops or redirects');
    assert.deepEqual([back.pkt.src, back.pkt.sport, back.pkt.dst, back.pkt.dport], [NODE, 30082, OUTSIDE, p]);
    assertChecksums(back.pkt);
    const other = run(toNetdev, { src: NODE, dst: OUTSIDE, proto: TCP, sport: 22, dport: p, flags: ACK });
    assert.deepEqual([other.pkt.src, other.pkt.sport], [NODE, 22], 'other traffic leaves as it is');
  });

  test('from_netdev passes traffic that is no Service traffic untouched', () => {
    const { retval, pkt } = run(fromNetdev, { src: OUTSIDE, dst: NODE, proto: TCP, dport: 22 });
    assert.equal(retval, TC_ACT_UNSPEC);
    assert.deepEqual([pkt.dst, pkt.dport], [NODE, 22]);
  });

  test('from_netdev rejects a connection to a frontend without backends back out of the uplink', () => {
    frontend({ addr: NODE, port: 30081, id: 61, group: 61, ids: [], flags: SVC_FLAG.nodeport });
    const { retval, pkt } = run(fromNetdev, { src: OUTSIDE, dst: NODE, proto: TCP, sport: 5555, dport: 30081 });
    assert.equal(retval, TC_ACT_REDIRECT);
    assert.deepEqual([pkt.src, pkt.dst, pkt.flags], [NODE, OUTSIDE, RST | ACK]);
    assertChecksums(pkt);
  });

  test('a frontend on 127.0.0.1 (a host port for host processes) is translated neither by from_pod nor by from_netdev', () => {
    frontend({ addr: '127.0.0.1', port: 54323, id: 70, group: 1, ids: [1] });
    const before = statsOf(70);
    const a = run(fromPod, { src: CLIENT, dst: '127.0.0.1', proto: TCP, sport: nextPort(), dport: 54323 });
    assert.equal(a.retval, TC_ACT_UNSPEC, 'left to the kernel, which drops a martian destination');
    assert.deepEqual([a.pkt.dst, a.pkt.dport], ['127.0.0.1', 54323]);
    const b = run(fromNetdev, { src: OUTSIDE, dst: '127.0.0.1', proto: TCP, sport: nextPort(), dport: 54323 });
    assert.equal(b.retval, TC_ACT_UNSPEC);
    assert.deepEqual([b.pkt.dst, b.pkt.dport], ['127.0.0.1', 54323]);
    assert.equal(statsOf(70).connections - before.connections, 0n, 'no connection counted');
  });

  test('from_netdev drops a packet into a service range that matches no frontend', () => {
    const before = dropCount(0, 'ingress', reason('no_service'));
    assert.equal(run(fromNetdev, { src: OUTSIDE, dst: '10.96.1.201', proto: UDP, dport: 53 }).retval, TC_ACT_SHOT);
    assert.equal(dropCount(0, 'ingress', reason('no_service')) - before, 1n);
  });
});
