import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { PodnetError, SyscallError, VerifierError } from '../../agent/src/errors/index.js';
import { BpfObject, Program, RingBuffer, u32, u64 } from '../../agent/src/libbpf/index.js';
import { bpffsDir, compileFixture, rmBpffsDir, scratchDir, suffix } from '../fixtures/bpf/fixtures.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;

/** A 64-byte Ethernet/IPv4 frame between two test addresses; its content does not matter to the fixture. */
function packet(): Buffer {
  const p = Buffer.alloc(64);
  p.write('02000000000102000000000208004500', 0, 'hex');
  return p;
}

function sum(values: bigint[] | undefined): bigint {
  assert.ok(values, 'counter slot present');
  return values.reduce((a, b) => a + b, 0n);
}

describe('BpfObject', () => {
  let dir: string;
  let pins: string;
  let fixture: string;
  let reject: string;

  before(() => {
    dir = scratchDir();
    pins = bpffsDir();
    fixture = compileFixture('fixture', dir);
    reject = compileFixture('reject', dir);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmBpffsDir(pins);
  });

  it('lists the declared maps and programs right after open', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    assert.equal(obj.name, 'fixture');
    const maps = new Map(obj.mapSpecs().map((m) => [m.name, m]));
    assert.deepEqual({ ...maps.get('pn_fx_counts') }, { name: 'pn_fx_counts', type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 2, flags: 0, internal: false });
    assert.equal(maps.get('pn_fx_pinned')?.pinPath, `${pins}/pn_fx_pinned`);
    assert.equal(maps.get('pn_fx_events')?.type, 'ringbuf');
    assert.equal(maps.get('fixture.rodata')?.internal, true);
    assert.deepEqual(obj.programSpecs(), [
      { name: 'fx_xdp', section: 'xdp', type: 'xdp', autoload: true },
      { name: 'fx_tc', section: 'tc', type: 'sched_cls', autoload: true },
    ]);
    assert.throws(() => obj.program('fx_xdp'), /load\(\) it first/);
  });

  it('bakes setConstants values into the programs it loads', () => {
    using plain = BpfObject.open(fixture, { pinRoot: pins });
    plain.load();
    assert.equal(plain.program('fx_xdp').testRun({ data: packet() }).retval, XDP_PASS);
    assert.equal(plain.program('fx_tc').testRun({ data: packet() }).retval, TC_ACT_OK);

    using tuned = BpfObject.open(fixture, { pinRoot: pins });
    tuned.setConstants({ fx_xdp_verdict: XDP_DROP, fx_tc_drop: true });
    tuned.load();
    assert.equal(tuned.program('fx_xdp').testRun({ data: packet() }).retval, XDP_DROP);
    assert.equal(tuned.program('fx_tc').testRun({ data: packet() }).retval, TC_ACT_SHOT);
  });

  it('counts every test run in the per-CPU counter map', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.load();
    const xdp = obj.program('fx_xdp');
    const run = xdp.testRun({ data: packet(), repeat: 5 });
    assert.equal(run.retval, XDP_PASS);
    assert.equal(run.dataOut.length, 64);
    assert.deepEqual(run.dataOut, packet(), 'the program leaves the packet alone');
    obj.program('fx_tc').testRun({ data: packet(), repeat: 3 });
    const counts = obj.map('pn_fx_counts').typed(u32, u64);
    assert.equal(sum(counts.getPerCpu(0)), 5n);
    assert.equal(sum(counts.getPerCpu(1)), 3n);
  });

  it('hands each ring buffer record over with the constants the program saw', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.setConstants({ fx_cookie: 0x1122334455667788n, fx_tag: Uint8Array.from([1, 2, 3, 4, 5, 6]) });
    obj.load();
    const records: Buffer[] = [];
    using rb = RingBuffer.open(obj.map('pn_fx_events'), (d) => records.push(d), { intervalMs: 0 });
    assert.equal(rb.consume(), 0, 'nothing before the first run');
    obj.program('fx_xdp').testRun({ data: packet(), repeat: 2 });
    assert.equal(rb.consume(), 2);
    assert.equal(records.length, 2);
    const r = records[0]!;
    assert.equal(r.length, 24);
    assert.equal(r.readUInt32LE(0), 64, 'packet length');
    assert.equal(r.readUInt32LE(4), XDP_PASS);
    assert.equal(r.readBigUInt64LE(8), 0x1122334455667788n);
    assert.equal(r.subarray(16, 22).toString('hex'), '010203040506');
  });

  it('polls the ring buffer on its own timer', async () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.load();
    const records: Buffer[] = [];
    using _rb = RingBuffer.open(obj.map('pn_fx_events'), (d) => records.push(d), { intervalMs: 10 });
    obj.program('fx_xdp').testRun({ data: packet(), repeat: 3 });
    for (let i = 0; i < 200 && records.length < 3; i++) await sleep(10);
    assert.equal(records.length, 3);
  });

  it('reports a throwing record callback from consume and keeps the rest for later', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.load();
    let calls = 0;
    using rb = RingBuffer.open(obj.map('pn_fx_events'), () => {
      calls++;
      if (calls === 1) throw new Error('bad record');
    }, { intervalMs: 0 });
    obj.program('fx_xdp').testRun({ data: packet(), repeat: 3 });
    assert.throws(() => rb.consume(), /bad record/);
    rb.consume();
    assert.equal(calls, 3, 'the two records after the failing one are still delivered');
  });

  it('refuses setConstants with an unknown name, naming it and the known ones', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    assert.throws(() => obj.setConstants({ fx_xdp_verdict: 1, fx_nope: 3 }), (e: unknown) => {
      assert.ok(e instanceof PodnetError);
      assert.equal(e.message, 'set constants of object fixture: unknown constant fx_nope (the object\'s .rodata has: fx_cookie, fx_tag, fx_tc_drop, fx_xdp_verdict)');
      return true;
    });
  });

  it('refuses setConstants values that do not fit the variable, naming it', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    assert.throws(() => obj.setConstants({ fx_tc_drop: 256 }), /set constant fx_tc_drop of object fixture: 256 does not fit in 1 bytes/);
    assert.throws(() => obj.setConstants({ fx_tag: new Uint8Array(4) }), /set constant fx_tag of object fixture: got 4 bytes, the variable has 6/);
    assert.throws(() => obj.setConstants({ fx_xdp_verdict: 1.5 }), /fx_xdp_verdict.*not a safe integer/);
    obj.load();
    assert.equal(obj.program('fx_xdp').testRun({ data: packet() }).retval, XDP_PASS, 'a refused call changed nothing');
    assert.throws(() => obj.setConstants({ fx_tc_drop: 1 }), /already loaded/);
  });

  it('throws VerifierError with the verifier log for a program it refuses', () => {
    using obj = BpfObject.open(reject);
    assert.throws(() => obj.load(), (e: unknown) => {
      assert.ok(e instanceof VerifierError, String(e));
      assert.equal(e.program, 'fx_reject');
      assert.equal(e.errno, 13, 'EACCES');
      assert.match(e.log, /invalid access to packet/);
      assert.match(e.log, /^processed \d+ insns/m, 'the log runs to its final summary line');
      assert.match(e.message, /^load program fx_reject: verifier rejected it \(EACCES\)/);
      return true;
    });
  });

  it('refuses to load an object with maps pinned by name when no pinRoot was given, pinning nothing at /sys/fs/bpf', () => {
    const before = readdirSync('/sys/fs/bpf');
    using obj = BpfObject.open(fixture);
    assert.throws(() => obj.load(), /load object .*: maps .* are pinned by name; open it with a pinRoot/);
    assert.deepEqual(readdirSync('/sys/fs/bpf'), before);
  });

  it('pins maps declared with pinning by name under pinRoot and reuses them on the next load', () => {
    const root = `${pins}/reuse-${suffix()}`;
    let id: number;
    {
      using first = BpfObject.open(fixture, { pinRoot: root });
      first.load();
      const m = first.map('pn_fx_pinned');
      assert.equal(m.pinnedPath, `${root}/pn_fx_pinned`);
      m.update(Buffer.from([1, 0, 0, 0]), Buffer.from([7, 0, 0, 0]));
      id = m.id;
    }
    assert.ok(existsSync(`${root}/pn_fx_pinned`), 'the pin outlives the object');
    using second = BpfObject.open(fixture, { pinRoot: root });
    second.load();
    const again = second.map('pn_fx_pinned');
    assert.equal(again.id, id);
    assert.equal(again.lookup(Buffer.from([1, 0, 0, 0]))?.readUInt32LE(0), 7);
    assert.deepEqual(readdirSync(root), ['pn_fx_pinned']);
  });

  it('names the object and what it has when asked for a program or map it lacks', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.load();
    assert.throws(() => obj.program('fx_nope'), /get program fx_nope: object fixture has no such program \(it has: fx_tc, fx_xdp\)/);
    assert.throws(() => obj.map('pn_nope'), /object fixture has no such map \(it has: fixture\.rodata, pn_fx_counts, pn_fx_events, pn_fx_pinned\)/);
    assert.deepEqual(obj.programs().map((p) => p.name).sort(), ['fx_tc', 'fx_xdp']);
    assert.equal(obj.maps().length, 4);
  });

  it('skips programs whose autoload is off', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.setAutoload('fx_tc', false);
    obj.load();
    assert.deepEqual(obj.programs().map((p) => p.name), ['fx_xdp']);
    assert.throws(() => obj.program('fx_tc'), /not loaded \(autoload is off\)/);
  });

  it('resizes a map before load', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.setMapMaxEntries('pn_fx_counts', 8);
    obj.load();
    assert.equal(obj.map('pn_fx_counts').maxEntries, 8);
  });

  it('pins a program and re-opens it by path and by id with the same identity', () => {
    const path = `${pins}/prog-${suffix()}`;
    let id: number;
    {
      using obj = BpfObject.open(fixture, { pinRoot: pins });
      obj.load();
      const p = obj.program('fx_tc');
      assert.equal(p.type, 'sched_cls');
      assert.match(p.tag, /^[0-9a-f]{16}$/);
      p.pin(path);
      id = p.id;
    }
    using pinned = Program.openPinned(path);
    assert.equal(pinned.id, id);
    assert.equal(pinned.name, 'fx_tc');
    assert.equal(pinned.type, 'sched_cls');
    assert.equal(pinned.testRun({ data: packet() }).retval, TC_ACT_OK);
    using byId = Program.fromId(id);
    assert.equal(byId.tag, pinned.tag);
    assert.ok(Program.list().some((p) => p.id === id && p.type === 'sched_cls'));
    pinned.unpin();
    assert.equal(existsSync(path), false);
  });

  it('keeps cloned handles working after the object is closed', () => {
    const obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.load();
    const prog = obj.program('fx_xdp').clone();
    const counts = obj.map('pn_fx_counts').clone();
    obj.close();
    obj.close();
    try {
      assert.equal(prog.testRun({ data: packet() }).retval, XDP_PASS);
      assert.equal(sum(counts.typed(u32, u64).getPerCpu(0)), 1n);
    } finally {
      prog.close();
      counts.close();
    }
    assert.throws(() => obj.program('fx_xdp'), /it is closed/);
  });

  it('opens an object from memory under the given name', () => {
    using obj = BpfObject.openBuffer(readFileSync(fixture), 'inmem', { pinRoot: pins });
    assert.equal(obj.name, 'inmem');
    assert.ok(obj.mapSpecs().some((m) => m.name === 'inmem.rodata'));
    obj.load();
    assert.equal(obj.program('fx_xdp').testRun({ data: packet() }).retval, XDP_PASS);
  });

  it('quotes libbpf when a file is missing or not an ELF object', () => {
    assert.throws(() => BpfObject.open(`${dir}/missing.o`), (e: unknown) => e instanceof SyscallError && e.is('ENOENT') && e.message.startsWith(`open BPF object ${dir}/missing.o: ENOENT`));
    assert.throws(() => BpfObject.openBuffer(Buffer.from('not an elf file'), 'junk'), /open BPF object junk: E4001 .*not a proper ELF object/);
  });

  it('refuses a test run whose output does not fit, saying what to raise', () => {
    using obj = BpfObject.open(fixture, { pinRoot: pins });
    obj.load();
    assert.throws(() => obj.program('fx_xdp').testRun({ data: packet(), dataSizeOut: 16 }), /ENOSPC.*raise dataSizeOut|raise dataSizeOut.*ENOSPC/);
  });
});
