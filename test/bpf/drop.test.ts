/** The one drop path (bpf/lib/drop.h) from XDP: verdict, per-CPU counter and a typed ring-buffer event, like from tc. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, RingBuffer } from '../../agent/src/libbpf/index.js';
import { compileBpf } from '../../agent/src/datapath/index.js';
import { CountersMap, decodeEvent, type DatapathEvent } from '../../agent/src/maps/index.js';
import { REPO } from '../lib/agent-fixture.js';
import { bpffsDir, rmBpffsDir, scratchDir } from '../fixtures/bpf/fixtures.js';

const XDP_DROP = 1, XDP_PASS = 2;

function frame(ethType: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 8);
  f.writeUInt16BE(ethType, 12);
  f[14] = 0x45; f.writeUInt16BE(28, 16); f[22] = 64; f[23] = 17;
  Buffer.from([10, 1, 2, 3]).copy(f, 26);
  Buffer.from([10, 4, 5, 6]).copy(f, 30);
  return f;
}

describe('drop path from XDP', () => {
  const out = scratchDir();
  const pins = bpffsDir();
  let obj: BpfObject;
  let ring: RingBuffer;
  const events: DatapathEvent[] = [];

  before(async () => {
    const { path } = await compileBpf('drop-xdp', { cacheDir: out, source: join(REPO, 'test/fixtures/bpf/drop-xdp.bpf.c') });
    obj = BpfObject.open(path, { pinRoot: pins });
    obj.load();
    ring = RingBuffer.open(obj.map('pn_events'), (d) => { events.push(decodeEvent(d)); });
  });
  after(() => {
    ring?.close();
    obj?.close();
    rmBpffsDir(pins);
    rmSync(out, { recursive: true, force: true });
  });

  test('an XDP program drops through pn_drop_xdp: XDP_DROP, the counter bumped, a drop event emitted', () => {
    const counters = new CountersMap(obj.map('pn_counters'));
    const r = obj.program('drop_xdp').testRun({ data: frame(0x0800) });
    assert.equal(r.retval, XDP_DROP);
    ring.consume();
    assert.deepEqual(counters.readAll().map((c) => ({ id: c.endpointId, dir: c.direction, reason: c.reason, packets: c.packets })), [{ id: 77, dir: 'ingress', reason: 2, packets: 1n }]);
    assert.equal(events.length, 1);
    assert.deepEqual({ type: events[0]!.type, reason: events[0]!.reason, direction: events[0]!.direction, saddr: events[0]!.saddr, daddr: events[0]!.daddr, protocol: events[0]!.protocol, len: events[0]!.len },
      { type: 'drop', reason: 'malformed', direction: 'ingress', saddr: '10.1.2.3', daddr: '10.4.5.6', protocol: 17, len: 42 });
  });

  test('a frame the program does not drop passes with nothing recorded', () => {
    events.length = 0;
    assert.equal(obj.program('drop_xdp').testRun({ data: frame(0x0806) }).retval, XDP_PASS);
    ring.consume();
    assert.equal(events.length, 0);
  });
});
