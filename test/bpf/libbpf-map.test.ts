import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SyscallError } from '../../agent/src/errors/index.js';
import {
  BPF_EXIST, BPF_NOEXIST, BpfMap, encodeToBuffer, ipv4, lpmKey, numPossibleCpus, struct, u32, u64,
} from '../../agent/src/libbpf/index.js';
import { bpffsDir, rmBpffsDir, suffix } from '../fixtures/bpf/fixtures.js';

const key = (n: number): Buffer => encodeToBuffer(u32, n);
const val = (n: bigint): Buffer => encodeToBuffer(u64, n);

describe('BpfMap', () => {
  const open: BpfMap[] = [];
  let pins: string;
  const make = (type: Parameters<typeof BpfMap.create>[0]['type'], keySize: number, valueSize: number, maxEntries: number): BpfMap => {
    const m = BpfMap.create({ type, name: `pn_t_${suffix(2)}`, keySize, valueSize, maxEntries });
    open.push(m);
    return m;
  };

  before(() => {
    pins = bpffsDir();
  });
  after(() => {
    for (const m of open) m.close();
    rmBpffsDir(pins);
  });

  it('creates a hash map whose kernel info matches what was asked', () => {
    const m = make('hash', 4, 8, 64);
    assert.ok(m.fd > 0);
    assert.ok(m.id > 0);
    assert.equal(m.type, 'hash');
    assert.deepEqual([m.keySize, m.valueSize, m.maxEntries, m.valueBufferSize], [4, 8, 64, 8]);
    assert.equal(m.perCpu, false);
  });

  it('updates, looks up and deletes single elements', () => {
    const m = make('hash', 4, 8, 64);
    assert.equal(m.lookup(key(1)), undefined);
    m.update(key(1), val(42n));
    assert.equal(m.lookup(key(1))?.readBigUInt64LE(0), 42n);
    const out = Buffer.alloc(8);
    assert.equal(m.lookupInto(key(1), out), true);
    assert.equal(out.readBigUInt64LE(0), 42n);
    assert.equal(m.delete(key(1)), true);
    assert.equal(m.delete(key(1)), false, 'a second delete finds nothing');
    assert.equal(m.lookupInto(key(1), out), false);
  });

  it('honours BPF_NOEXIST and BPF_EXIST with errors naming the map and its id', () => {
    const m = make('hash', 4, 8, 4);
    m.update(key(1), val(1n), BPF_NOEXIST);
    assert.throws(() => m.update(key(1), val(2n), BPF_NOEXIST), (e: unknown) => {
      assert.ok(e instanceof SyscallError);
      assert.equal(e.message, `update map ${m.name} (id ${m.id}): EEXIST`);
      return true;
    });
    assert.throws(() => m.update(key(2), val(2n), BPF_EXIST), (e: unknown) => e instanceof SyscallError && e.is('ENOENT'));
    assert.equal(m.lookup(key(1))?.readBigUInt64LE(0), 1n);
  });

  it('reports E2BIG when a hash map is full', () => {
    const m = make('hash', 4, 8, 2);
    m.update(key(1), val(1n));
    m.update(key(2), val(2n));
    assert.throws(() => m.update(key(3), val(3n)), (e: unknown) => e instanceof SyscallError && e.is('E2BIG'));
  });

  it('refuses keys and values of the wrong size before calling the kernel', () => {
    const m = make('hash', 4, 8, 4);
    assert.throws(() => m.update(Buffer.alloc(3), val(1n)), /needs a 4-byte key and 8-byte value, got 3\/8 bytes/);
    assert.throws(() => m.lookup(Buffer.alloc(8)), RangeError);
    assert.throws(() => m.delete(Buffer.alloc(2)), RangeError);
  });

  it('refuses to delete from an array map with EINVAL', () => {
    const m = make('array', 4, 8, 4);
    assert.equal(m.lookup(key(3))?.readBigUInt64LE(0), 0n, 'array elements always exist');
    assert.throws(() => m.delete(key(0)), (e: unknown) => e instanceof SyscallError && e.is('EINVAL'));
  });

  it('iterates keys and entries and counts elements', () => {
    const m = make('hash', 4, 8, 64);
    for (let i = 0; i < 10; i++) m.update(key(i), val(BigInt(i * 10)));
    const keys = [...m.keys()].map((k) => k.readUInt32LE(0)).sort((a, b) => a - b);
    assert.deepEqual(keys, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [k, v] of m.entries()) assert.equal(v.readBigUInt64LE(0), BigInt(k.readUInt32LE(0) * 10));
    assert.equal(m.count(), 10);
  });

  it('lets the caller delete each key while iterating', () => {
    const m = make('hash', 4, 8, 256);
    for (let i = 0; i < 200; i++) m.update(key(i), val(1n));
    let seen = 0;
    for (const k of m.keys()) {
      assert.equal(m.delete(k), true);
      seen++;
    }
    assert.equal(seen, 200);
    assert.equal(m.count(), 0);
  });

  it('writes, reads and deletes a hash map in batches', () => {
    const m = make('hash', 4, 8, 4096);
    const keys = Array.from({ length: 3000 }, (_, i) => key(i));
    const vals = Array.from({ length: 3000 }, (_, i) => val(BigInt(i) * 3n));
    assert.equal(m.updateBatch(keys, vals), 3000);
    assert.equal(m.batchOps, true, 'hash maps take batch commands');
    const all = m.lookupBatch();
    assert.equal(all.length, 3000);
    for (const [k, v] of all) assert.equal(v.readBigUInt64LE(0), BigInt(k.readUInt32LE(0)) * 3n);
    // Keys 2990..3009: the last ten are absent and are skipped, not fatal.
    const del = Array.from({ length: 20 }, (_, i) => key(2990 + i));
    assert.equal(m.deleteBatch(del), 10);
    assert.equal(m.count(), 2990);
    assert.equal(m.lookup(key(2990)), undefined);
    assert.ok(m.lookup(key(2989)));
  });

  it('writes packed buffers with updateBatchRaw', () => {
    const m = make('hash', 4, 8, 1024);
    const n = 500;
    const kb = Buffer.alloc(n * 4);
    const vb = Buffer.alloc(n * 8);
    for (let i = 0; i < n; i++) {
      kb.writeUInt32LE(i, i * 4);
      vb.writeBigUInt64LE(BigInt(i + 1), i * 8);
    }
    assert.equal(m.updateBatchRaw(kb, vb, n), n);
    assert.equal(m.lookup(key(499))?.readBigUInt64LE(0), 500n);
    assert.throws(() => m.updateBatchRaw(kb, vb, n + 1), RangeError);
    assert.throws(() => m.updateBatchRaw(kb.subarray(0, 8), vb, 2, BPF_NOEXIST), (e: unknown) => e instanceof SyscallError && e.is('EEXIST'));
  });

  it('writes, reads and deletes an LPM trie in batches and matches the longest prefix', () => {
    const trie = BpfMap.create({ type: 'lpm_trie', name: `pn_t_${suffix(2)}`, keySize: 8, valueSize: 4, maxEntries: 64 });
    open.push(trie);
    const k = lpmKey(ipv4);
    const enc = (prefixLen: number, data: string): Buffer => encodeToBuffer(k, { prefixLen, data });
    const cidrs: Array<[number, string, number]> = [[8, '10.0.0.0', 1], [16, '10.1.0.0', 2], [24, '10.1.2.0', 3]];
    // Linux 6.18 has batch commands for LPM tries, older kernels refuse them: either path must give the same result.
    assert.equal(trie.updateBatch(cidrs.map(([p, a]) => enc(p, a)), cidrs.map(([, , v]) => key(v))), 3);
    // Longest prefix wins on lookup.
    assert.equal(trie.lookup(enc(32, '10.1.2.9'))?.readUInt32LE(0), 3);
    assert.equal(trie.lookup(enc(32, '10.1.9.9'))?.readUInt32LE(0), 2);
    assert.equal(trie.lookup(enc(32, '10.9.9.9'))?.readUInt32LE(0), 1);
    assert.equal(trie.lookup(enc(32, '11.0.0.1')), undefined);
    const all = trie.lookupBatch().map(([kk, v]) => [k.decode(kk, 0), v.readUInt32LE(0)]);
    assert.equal(all.length, 3);
    assert.deepEqual(all.find(([, v]) => v === 2)?.[0], { prefixLen: 16, data: '10.1.0.0' });
    assert.equal(trie.deleteBatch([enc(16, '10.1.0.0'), enc(20, '10.2.0.0')]), 1);
    assert.equal(trie.count(), 2);
  });

  it('falls back to one element at a time on a map type without batch commands (devmap)', () => {
    const lo = Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8'));
    const dm = make('devmap', 4, 4, 8);
    assert.equal(dm.batchOps, true);
    assert.equal(dm.updateBatch([key(0), key(3)], [key(lo), key(lo)]), 2);
    assert.equal(dm.batchOps, false, 'the kernel refused the batch and the map remembers it');
    assert.deepEqual(dm.lookupBatch().map(([k, v]) => [k.readUInt32LE(0), v.readUInt32LE(0)]), [[0, lo], [3, lo]]);
    assert.equal(dm.deleteBatch([key(3)]), 1);
    assert.equal(dm.lookup(key(3)), undefined);
    assert.equal(dm.lookup(key(0))?.readUInt32LE(0), lo);
  });

  it('reads and writes one value per possible CPU with the kernel stride', () => {
    const cpus = numPossibleCpus();
    assert.ok(cpus >= 1);
    // A 12-byte value is stored at a stride of 16 per CPU.
    const m = make('percpu_hash', 4, 12, 16);
    assert.equal(m.perCpu, true);
    assert.equal(m.possibleCpus, cpus);
    assert.equal(m.valueBufferSize, 16 * cpus);
    const values = Array.from({ length: cpus }, (_, c) => Buffer.from(Array.from({ length: 12 }, (_, b) => c * 16 + b)));
    m.updatePerCpu(key(7), values);
    const back = m.lookupPerCpu(key(7));
    assert.ok(back);
    assert.deepEqual(back.map((b) => b.toString('hex')), values.map((v) => v.toString('hex')));
    assert.equal(m.lookupPerCpu(key(8)), undefined);
    assert.throws(() => m.updatePerCpu(key(7), values.slice(1)), /per-CPU values, need/);
    const batch = m.lookupBatch();
    assert.equal(batch.length, 1);
    assert.equal(batch[0]![1].length, 16 * cpus);
  });

  it('sums per-CPU counters through a typed view and resets them on every CPU at once', () => {
    const m = make('percpu_array', 4, 8, 2);
    const t = m.typed(u32, u64);
    m.updatePerCpu(key(1), Array.from({ length: m.possibleCpus }, (_, c) => val(BigInt(c + 1))));
    const per = t.getPerCpu(1);
    assert.ok(per);
    assert.equal(per.reduce((a, b) => a + b, 0n), BigInt((m.possibleCpus * (m.possibleCpus + 1)) / 2));
    t.set(1, 0n);
    assert.deepEqual(t.getPerCpu(1), Array.from({ length: m.possibleCpus }, () => 0n));
    assert.throws(() => t.get(1), /per-CPU, use getPerCpu/);
    assert.equal([...t.entriesPerCpu()].length, 2);
  });

  it('gives typed access through codecs and checks their sizes', () => {
    const m = make('hash', 8, 16, 32);
    const keyCodec = struct({ addr: ipv4, port: { offset: 4, codec: u32 } }, 8);
    const valueCodec = struct({ packets: u64, bytes: u64 }, 16);
    const t = m.typed(keyCodec, valueCodec);
    t.set({ addr: '10.0.0.1', port: 80 }, { packets: 1n, bytes: 64n });
    assert.deepEqual(t.get({ addr: '10.0.0.1', port: 80 }), { packets: 1n, bytes: 64n });
    assert.equal(t.get({ addr: '10.0.0.2', port: 80 }), undefined);
    assert.equal(t.has({ addr: '10.0.0.1', port: 80 }), true);
    assert.equal(t.setBatch([[{ addr: '10.0.0.2', port: 1 }, { packets: 2n, bytes: 2n }], [{ addr: '10.0.0.3', port: 1 }, { packets: 3n, bytes: 3n }]]), 2);
    assert.deepEqual([...t.keys()].map((k) => k.addr).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.equal(new Map([...t.entries()].map(([k, v]) => [k.addr, v.packets])).get('10.0.0.3'), 3n);
    assert.equal(t.deleteBatch([{ addr: '10.0.0.2', port: 1 }, { addr: '10.9.9.9', port: 1 }]), 1);
    assert.equal(t.delete({ addr: '10.0.0.1', port: 80 }), true);
    assert.equal(m.count(), 1);
    assert.throws(() => m.typed(u32, valueCodec), /codecs are 4\/16 bytes but the map's key\/value are 8\/16/);
  });

  it('pins, re-opens by path and by id, lists and unpins a map', () => {
    const m = make('hash', 4, 8, 8);
    m.update(key(5), val(55n));
    const path = `${pins}/map-${suffix()}`;
    m.pin(path);
    assert.equal(m.pinnedPath, path);
    assert.ok(existsSync(path));
    {
      using again = BpfMap.openPinned(path);
      assert.equal(again.id, m.id);
      assert.equal(again.name, m.name);
      assert.equal(again.pinnedPath, path);
      assert.equal(again.lookup(key(5))?.readBigUInt64LE(0), 55n);
    }
    {
      using byId = BpfMap.fromId(m.id);
      assert.equal(byId.type, 'hash');
    }
    const listed = BpfMap.list().find((x) => x.id === m.id);
    assert.deepEqual(listed, { id: m.id, name: m.name, type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 });
    m.unpin();
    assert.equal(existsSync(path), false);
    assert.equal(m.pinnedPath, undefined);
    m.unpin();
    assert.throws(() => BpfMap.openPinned(path), (e: unknown) => e instanceof SyscallError && e.is('ENOENT') && e.message.includes(path));
  });

  it('keeps a clone usable after the original handle is closed', () => {
    const m = BpfMap.create({ type: 'array', name: `pn_t_${suffix(2)}`, keySize: 4, valueSize: 8, maxEntries: 1 });
    const c = m.clone();
    open.push(c);
    m.update(key(0), val(9n));
    m.close();
    m.close();
    assert.equal(m.fd, -1);
    assert.equal(c.lookup(key(0))?.readBigUInt64LE(0), 9n);
    assert.throws(() => m.lookup(key(0)), (e: unknown) => e instanceof SyscallError && e.is('EBADF'));
  });

  it('rejects map names the kernel would refuse', () => {
    assert.throws(() => BpfMap.create({ type: 'hash', name: 'this-name-is-too-long', keySize: 4, valueSize: 4, maxEntries: 1 }), /at most 15 characters/);
  });
});
