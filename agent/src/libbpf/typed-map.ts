/**
 * A BpfMap seen through key and value codecs. Single-element calls reuse two
 * scratch buffers, so get/set allocate nothing beyond the decoded value.
 */
import type { Codec } from './codec.js';
import type { BpfMap } from './map.js';
import { BPF_ANY } from './types.js';

/** Typed access to a map; build one with BpfMap.typed(). Does not own the map. */
export class TypedMap<K, V> {
  readonly map: BpfMap;
  readonly keyCodec: Codec<K>;
  readonly valueCodec: Codec<V>;
  private readonly kbuf: Buffer;
  private readonly vbuf: Buffer;
  private readonly stride: number;

  /** Prefer BpfMap.typed(), which checks the codec sizes. */
  constructor(map: BpfMap, key: Codec<K>, value: Codec<V>) {
    this.map = map;
    this.keyCodec = key;
    this.valueCodec = value;
    this.kbuf = Buffer.alloc(map.keySize);
    this.vbuf = Buffer.alloc(map.valueBufferSize);
    this.stride = (map.valueSize + 7) & ~7;
  }

  /** The value under `k`, or undefined. Per-CPU maps have one value per CPU: use getPerCpu(). */
  get(k: K): V | undefined {
    if (this.map.perCpu) throw new TypeError(`get from map ${this.map.label()}: it is per-CPU, use getPerCpu()`);
    this.keyCodec.encode(k, this.kbuf, 0);
    return this.map.lookupInto(this.kbuf, this.vbuf) ? this.valueCodec.decode(this.vbuf, 0) : undefined;
  }

  /** Writes `v` under `k`. On a per-CPU map every CPU's slot gets `v` (handy for resetting counters). */
  set(k: K, v: V, flags: bigint = BPF_ANY): void {
    this.keyCodec.encode(k, this.kbuf, 0);
    this.encodeValue(v, this.vbuf, 0);
    this.map.update(this.kbuf, this.vbuf, flags);
  }

  /** Deletes `k`; false when absent. */
  delete(k: K): boolean {
    this.keyCodec.encode(k, this.kbuf, 0);
    return this.map.delete(this.kbuf);
  }

  /** True when `k` is present. */
  has(k: K): boolean {
    this.keyCodec.encode(k, this.kbuf, 0);
    return this.map.lookupInto(this.kbuf, this.vbuf);
  }

  /** Every key, decoded (same iteration guarantees as BpfMap.keys()). */
  *keys(): Generator<K> {
    for (const k of this.map.keys()) yield this.keyCodec.decode(k, 0);
  }

  /** Every entry, decoded. Not for per-CPU maps: use entriesPerCpu(). */
  *entries(): Generator<[K, V]> {
    if (this.map.perCpu) throw new TypeError(`iterate map ${this.map.label()}: it is per-CPU, use entriesPerCpu()`);
    for (const [k, v] of this.map.entries()) yield [this.keyCodec.decode(k, 0), this.valueCodec.decode(v, 0)];
  }

  /** Per-CPU maps: each possible CPU's value under `k`, or undefined. */
  getPerCpu(k: K): V[] | undefined {
    this.requirePerCpu('get per-CPU values from');
    this.keyCodec.encode(k, this.kbuf, 0);
    if (!this.map.lookupInto(this.kbuf, this.vbuf)) return undefined;
    return this.splitPerCpu(this.vbuf);
  }

  /** Per-CPU maps: every entry with each CPU's value. */
  *entriesPerCpu(): Generator<[K, V[]]> {
    this.requirePerCpu('iterate per-CPU values of');
    for (const [k, v] of this.map.entries()) yield [this.keyCodec.decode(k, 0), this.splitPerCpu(v)];
  }

  /** Writes many entries in one batch (per-element where the map refuses batches). Returns the number written. */
  setBatch(entries: Array<[K, V]>, flags: bigint = BPF_ANY): number {
    const ks = this.map.keySize;
    const vs = this.map.valueBufferSize;
    const kb = Buffer.alloc(entries.length * ks);
    const vb = Buffer.alloc(entries.length * vs);
    entries.forEach(([k, v], i) => {
      this.keyCodec.encode(k, kb, i * ks);
      this.encodeValue(v, vb, i * vs);
    });
    return this.map.updateBatchRaw(kb, vb, entries.length, flags);
  }

  /** Deletes many keys; absent keys are skipped. Returns how many were deleted. */
  deleteBatch(keys: K[]): number {
    const ks = this.map.keySize;
    const kb = Buffer.alloc(keys.length * ks);
    keys.forEach((k, i) => this.keyCodec.encode(k, kb, i * ks));
    return this.map.deleteBatchRaw(kb, keys.length);
  }

  private requirePerCpu(verb: string): void {
    if (!this.map.perCpu) throw new TypeError(`${verb} map ${this.map.label()}: it is a ${this.map.type} map, not per-CPU`);
  }

  private encodeValue(v: V, buf: Buffer, off: number): void {
    if (!this.map.perCpu) {
      this.valueCodec.encode(v, buf, off);
      return;
    }
    buf.fill(0, off, off + this.map.valueBufferSize);
    for (let c = 0; c < this.map.possibleCpus; c++) this.valueCodec.encode(v, buf, off + c * this.stride);
  }

  private splitPerCpu(raw: Buffer): V[] {
    const out: V[] = new Array(this.map.possibleCpus);
    for (let c = 0; c < this.map.possibleCpus; c++) out[c] = this.valueCodec.decode(raw, c * this.stride);
    return out;
  }
}
