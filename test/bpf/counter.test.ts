/** The per-interface counter program through BPF_PROG_TEST_RUN: verdict unchanged, packets and bytes counted exactly. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { BpfObject } from '../../agent/src/libbpf/index.js';
import { compileCounterFixture, IfCountMap, type InterfaceCounter } from '../fixtures/bpf/ifcount.js';
import { bpffsDir, rmBpffsDir, scratchDir } from '../fixtures/bpf/fixtures.js';

const TC_ACT_UNSPEC = -1, XDP_PASS = 2;

describe('counter program', () => {
  const out = scratchDir();
  const pins = bpffsDir();
  let obj: BpfObject;
  let counts: IfCountMap;

  before(async () => {
    obj = BpfObject.open((await compileCounterFixture(out)).path, { pinRoot: pins });
    obj.load();
    counts = new IfCountMap(obj.map('pn_ifcount'));
  });
  after(() => {
    obj?.close();
    rmBpffsDir(pins);
    rmSync(out, { recursive: true, force: true });
  });

  const total = (hook: InterfaceCounter['hook']) =>
    counts.readAll().filter((c) => c.hook === hook).reduce((s, c) => ({ packets: s.packets + c.packets, bytes: s.bytes + c.bytes }), { packets: 0n, bytes: 0n });

  for (const [prog, hook, verdict] of [
    ['count_tc_ingress', 'tc_ingress', TC_ACT_UNSPEC],
    ['count_tc_egress', 'tc_egress', TC_ACT_UNSPEC],
    ['count_xdp', 'xdp', XDP_PASS],
  ] as const) {
    test(`${prog} passes every packet and counts ${hook} packets and bytes exactly`, () => {
      const before = total(hook);
      const sizes = [60, 128, 1514];
      for (const n of sizes) {
        const pkt = Buffer.alloc(n);
        pkt.writeUInt16BE(0x0800, 12);
        assert.equal(obj.program(prog).testRun({ data: pkt, repeat: 3 }).retval, verdict);
      }
      const after = total(hook);
      assert.equal(after.packets - before.packets, 9n);
      assert.equal(after.bytes - before.bytes, BigInt(3 * sizes.reduce((a, b) => a + b, 0)));
    });
  }
});
