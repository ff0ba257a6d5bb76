/**
 * from_pod and to_pod as fixture tables through BPF_PROG_TEST_RUN: input
 * packet, expected verdict, expected rewrite, expected counter and event.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfObject, RingBuffer, type Program } from '../../agent/src/libbpf/index.js';
import { POD_OBJECT, compileBpf, type HostRouting } from '../../agent/src/datapath/index.js';
import { parsePool } from '../../agent/src/ipam/index.js';
import { CountersMap, EndpointsMap, EP_F_READY, EVENT_TYPE, eventRecord } from '../../agent/src/maps/index.js';
import { bpffsDir, rmBpffsDir, scratchDir } from '../fixtures/bpf/fixtures.js';
import { rmSync } from 'node:fs';

const TC_ACT_UNSPEC = -1, TC_ACT_SHOT = 2, TC_ACT_REDIRECT = 7;
const LO = 1; // BPF_PROG_TEST_RUN hands tc programs an skb on the loopback device

const mac = (s: string) => Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));

/** An Ethernet + IPv4 (+ 8 bytes of payload) frame. */
function frame(o: { src: string; dst: string; proto?: number; ethType?: number; ihl?: number }): Buffer {
  const eth = Buffer.concat([mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'), Buffer.from([((o.ethType ?? 0x0800) >> 8) & 255, (o.ethType ?? 0x0800) & 255])]);
  const ip = Buffer.alloc(20);
  ip[0] = 0x40 | (o.ihl ?? 5); ip.writeUInt16BE(28, 2); ip[8] = 64; ip[9] = o.proto ?? 1;
  ip4(o.src).copy(ip, 12); ip4(o.dst).copy(ip, 16);
  return Buffer.concat([eth, ip, Buffer.alloc(8)]);
}

describe('pod datapath programs', () => {
  const out = scratchDir();
  const pins = bpffsDir();
  let obj: BpfObject;
  let fromPod: Program, toPod: Program;
  let eps: EndpointsMap, counters: CountersMap;
  const events: Array<Record<string, unknown>> = [];
  let ring: RingBuffer;

  before(async () => {
    const { path } = await compileBpf('pod', { cacheDir: out });
    obj = BpfObject.open(path, { pinRoot: pins });
    obj.setConstants({ pn_pod_cidr_addr: new Uint8Array(ip4('10.9.0.0')), pn_pod_cidr_mask: new Uint8Array(ip4('255.255.255.0')) });
    obj.load();
    fromPod = obj.program('from_pod');
    toPod = obj.program('to_pod');
    eps = new EndpointsMap(obj.map('pn_endpoints'));
    counters = new CountersMap(obj.map('pn_counters'));
    ring = RingBuffer.open(obj.map('pn_events'), (d) => { events.push(eventRecord.decode(d, 0)); });
    eps.set('10.9.0.10', { ifindex: LO, endpointId: 10, podMac: '0a:00:00:00:00:10', hostMac: '0e:00:00:00:00:10', flags: EP_F_READY });
    eps.set('10.9.0.20', { ifindex: 4242, endpointId: 20, podMac: '0a:00:00:00:00:20', hostMac: '0e:00:00:00:00:20', flags: EP_F_READY });
    eps.set('10.9.0.30', { ifindex: 4343, endpointId: 30, podMac: '0a:00:00:00:00:30', hostMac: '0e:00:00:00:00:30', flags: 0 });
  });
  after(() => {
    ring?.close();
    obj?.close();
    rmBpffsDir(pins);
    rmSync(out, { recursive: true, force: true });
  });

  const count = (id: number, dir: string, reason: number) =>
    counters.readAll().filter((c) => c.endpointId === id && c.direction === dir && c.reason === reason).reduce((s, c) => s + c.packets, 0n);

  const cases: Array<{ name: string; pkt: () => Buffer; verdict: number; counter?: [number, string, number]; event?: number; rewrite?: [string, string] }> = [
    { name: 'ARP goes to the host stack untouched', pkt: () => frame({ src: '10.9.0.10', dst: '10.9.0.20', ethType: 0x0806 }), verdict: TC_ACT_UNSPEC },
    { name: 'traffic to a local ready pod is redirected to its peer with both MACs rewritten', pkt: () => frame({ src: '10.9.0.10', dst: '10.9.0.20' }), verdict: TC_ACT_REDIRECT, counter: [20, 'ingress', 0], rewrite: ['0a:00:00:00:00:20', '0e:00:00:00:00:20'] },
    { name: 'traffic leaving the node goes to the host stack and is counted as egress', pkt: () => frame({ src: '10.9.0.10', dst: '192.0.2.1' }), verdict: TC_ACT_UNSPEC, counter: [10, 'egress', 0] },
    { name: 'a source address that is no endpoint is dropped as spoofed', pkt: () => frame({ src: '10.9.0.99', dst: '10.9.0.20' }), verdict: TC_ACT_SHOT, counter: [0, 'egress', 1], event: 1 },
    // Counted against no endpoint: endpoint 20 did not send it, it is the victim.
    { name: "another endpoint's address sent from this interface is dropped as spoofed and not blamed on that endpoint", pkt: () => frame({ src: '10.9.0.20', dst: '192.0.2.1' }), verdict: TC_ACT_SHOT, counter: [0, 'egress', 1], event: 1 },
    { name: 'an address in the pod CIDR without an endpoint is dropped', pkt: () => frame({ src: '10.9.0.10', dst: '10.9.0.77' }), verdict: TC_ACT_SHOT, counter: [10, 'egress', 4], event: 4 },
    { name: 'an endpoint that is not ready is not redirected to', pkt: () => frame({ src: '10.9.0.10', dst: '10.9.0.30' }), verdict: TC_ACT_SHOT, counter: [10, 'egress', 4], event: 4 },
    // (The kernel refuses to test-run a truncated IPv4 frame, so the malformed case is a bad header length.)
    { name: 'an IPv4 header shorter than 20 bytes is dropped as malformed', pkt: () => frame({ src: '10.9.0.10', dst: '10.9.0.20', ihl: 4 }), verdict: TC_ACT_SHOT, counter: [0, 'egress', 2], event: 2 },
  ];

  for (const c of cases) {
    test(`from_pod: ${c.name}`, () => {
      const before = c.counter ? count(...c.counter) : 0n;
      events.length = 0;
      const r = fromPod.testRun({ data: c.pkt() });
      assert.equal(r.retval, c.verdict);
      if (c.counter) assert.equal(count(...c.counter) - before, 1n, `counter ${c.counter.join('/')}`);
      if (c.rewrite) {
        assert.deepEqual(r.dataOut.subarray(0, 6), mac(c.rewrite[0]), 'destination MAC is the pod');
        assert.deepEqual(r.dataOut.subarray(6, 12), mac(c.rewrite[1]), 'source MAC is its host veth');
      }
      ring.consume();
      if (c.event !== undefined) {
        assert.equal(events.length, 1, 'one drop event');
        assert.equal(events[0]!['reason'], c.event);
        assert.equal(events[0]!['direction'], 1);
        assert.equal(events[0]!['type'], EVENT_TYPE.drop, 'a drop event says so in its first field');
      } else {
        assert.equal(events.length, 0, 'no drop event');
      }
    });
  }

  test('from_pod: the redirect counts egress for the sender too', () => {
    const before = count(10, 'egress', 0);
    assert.equal(fromPod.testRun({ data: frame({ src: '10.9.0.10', dst: '10.9.0.20' }) }).retval, TC_ACT_REDIRECT);
    assert.equal(count(10, 'egress', 0) - before, 1n);
  });

  test('to_pod: traffic the host delivers to a pod is passed and counted as its ingress', () => {
    const before = count(20, 'ingress', 0);
    const r = toPod.testRun({ data: frame({ src: '192.0.2.1', dst: '10.9.0.20' }) });
    assert.equal(r.retval, TC_ACT_UNSPEC);
    assert.equal(count(20, 'ingress', 0) - before, 1n);
  });
});

/**
 * from_pod with each host routing mode, its constants set the way the
 * agent's loader sets them (POD_OBJECT.constants): traffic to a local ready
 * pod is redirected (bpf) or handed to the host stack (kernel), and each
 * side of it is counted exactly once.
 */
describe('pod datapath programs by host routing mode', () => {
  const out = scratchDir();
  const loaded: Array<{ obj: BpfObject; pins: string }> = [];

  async function load(hostRouting: HostRouting) {
    const { path } = await compileBpf('pod', { cacheDir: out });
    const pins = bpffsDir();
    const obj = BpfObject.open(path, { pinRoot: pins });
    loaded.push({ obj, pins });
    obj.setConstants(POD_OBJECT.constants({ pool: parsePool('10.9.0.0/24'), hostRouting }));
    obj.load();
    const eps = new EndpointsMap(obj.map('pn_endpoints'));
    eps.set('10.9.0.10', { ifindex: LO, endpointId: 10, podMac: '0a:00:00:00:00:10', hostMac: '0e:00:00:00:00:10', flags: EP_F_READY });
    eps.set('10.9.0.20', { ifindex: 4242, endpointId: 20, podMac: '0a:00:00:00:00:20', hostMac: '0e:00:00:00:00:20', flags: EP_F_READY });
    eps.set('10.9.0.30', { ifindex: 4343, endpointId: 30, podMac: '0a:00:00:00:00:30', hostMac: '0e:00:00:00:00:30', flags: 0 });
    const counters = new CountersMap(obj.map('pn_counters'));
    const count = (id: number, dir: string, reason = 0) =>
      counters.readAll().filter((c) => c.endpointId === id && c.direction === dir && c.reason === reason).reduce((n, c) => n + c.packets, 0n);
    return { fromPod: obj.program('from_pod'), toPod: obj.program('to_pod'), count };
  }

  after(() => {
    for (const { obj, pins } of loaded) {
      obj.close();
      rmBpffsDir(pins);
    }
    rmSync(out, { recursive: true, force: true });
  });

  test('kernel: traffic to a local ready pod goes to the host stack untouched, counted as the sender\'s egress only', async () => {
    const { fromPod, count } = await load('kernel');
    const pkt = frame({ src: '10.9.0.10', dst: '10.9.0.20' });
    const r = fromPod.testRun({ data: pkt });
    assert.equal(r.retval, TC_ACT_UNSPEC, 'passed on to the host stack, not redirected');
    assert.deepEqual(r.dataOut, pkt, 'the frame is unchanged (the host stack rewrites the MACs when it routes)');
    assert.equal(count(10, 'egress'), 1n, "the sender's egress");
    assert.equal(count(20, 'ingress'), 0n, "the destination's ingress is to_pod's to count");
  });

  test('kernel: to_pod on the destination counts what from_pod passed, so each side is counted once', async () => {
    const { fromPod, toPod, count } = await load('kernel');
    const pkt = frame({ src: '10.9.0.10', dst: '10.9.0.20' });
    assert.equal(fromPod.testRun({ data: pkt }).retval, TC_ACT_UNSPEC);
    assert.equal(toPod.testRun({ data: pkt }).retval, TC_ACT_UNSPEC);
    assert.deepEqual([count(10, 'egress'), count(20, 'ingress'), count(20, 'egress'), count(10, 'ingress')], [1n, 1n, 0n, 0n]);
  });

  test('kernel: spoofed sources and pod CIDR addresses without a ready endpoint are still dropped', async () => {
    const { fromPod, count } = await load('kernel');
    assert.equal(fromPod.testRun({ data: frame({ src: '10.9.0.99', dst: '10.9.0.20' }) }).retval, TC_ACT_SHOT);
    assert.equal(count(0, 'egress', 1), 1n, 'spoofed source');
    assert.equal(fromPod.testRun({ data: frame({ src: '10.9.0.10', dst: '10.9.0.30' }) }).retval, TC_ACT_SHOT);
    assert.equal(fromPod.testRun({ data: frame({ src: '10.9.0.10', dst: '10.9.0.77' }) }).retval, TC_ACT_SHOT);
    assert.equal(count(10, 'egress', 4), 2n, 'no endpoint, twice');
    assert.equal(count(10, 'egress'), 0n, 'nothing passed');
  });

  test('bpf: traffic to a local ready pod is redirected to its peer and both sides are counted by from_pod', async () => {
    const { fromPod, count } = await load('bpf');
    const r = fromPod.testRun({ data: frame({ src: '10.9.0.10', dst: '10.9.0.20' }) });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.deepEqual(r.dataOut.subarray(0, 12), Buffer.concat([mac('0a:00:00:00:00:20'), mac('0e:00:00:00:00:20')]), 'MACs of the destination pod and its host veth');
    assert.deepEqual([count(10, 'egress'), count(20, 'ingress')], [1n, 1n]);
  });
});
