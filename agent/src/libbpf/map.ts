/**
 * A live BPF map: an owned fd plus what the kernel says about it. Element
 * operations take Buffers and hand them to libbpf as they are; the only
 * allocation on the lookup path is the returned value (lookupInto avoids
 * even that). Sizes are checked before every call because the kernel reads
 * exactly keySize/valueSize bytes from whatever pointer it gets.
 */
import { unlinkSync } from 'node:fs';
import { SyscallError } from '../errors/index.js';
import type { Codec } from './codec.js';
import { libbpfError } from './fail.js';
import { closeFd, dupFd, ffi } from './ffi.js';
import { fdByIdOrThrow, listObjects, mapInfoByFd, objGet, objPin, type MapInfo } from './info.js';
import { mapBatchSupported, numPossibleCpus } from './probe.js';
import { TypedMap } from './typed-map.js';
import { BPF_ANY, BPF_F_LOCK, isPerCpuMapType, mapTypeId, MapFlags, type MapType } from './types.js';
import { ENOENT, EINVAL, ENOSPC, EOPNOTSUPP, ENOTSUPP } from '../errors/errno.js';

/** Options of BpfMap.create. */
export interface MapCreateOptions {
  type: MapType;
  /** Kernel-visible name: at most 15 characters of [A-Za-z0-9_.]. */
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** map_flags (see MapFlags). lpm_trie maps always get NO_PREALLOC, which the kernel requires of them. */
  flags?: number;
}

/** One row of BpfMap.list(). */
export interface MapSummary {
  id: number;
  name: string;
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** A BPF map held by an fd. Close it (or `using` it) when done; pins outlive the fd. */
export class BpfMap implements Disposable {
  /** Kernel-visible name (libbpf's full name for maps of a BpfObject). */
  readonly name: string;
  readonly type: MapType;
  readonly keySize: number;
  /** Size of one value as the map was declared (per CPU for per-CPU maps). */
  readonly valueSize: number;
  readonly maxEntries: number;
  /** Kernel id, stable for the map's lifetime and shown by bpftool. */
  readonly id: number;
  /** map_flags. */
  readonly flags: number;
  /** Number of possible CPUs: how many values a per-CPU lookup returns. */
  readonly possibleCpus: number;
  /** True for per-CPU map types. */
  readonly perCpu: boolean;
  /**
   * Bytes of the value buffer the kernel exchanges per element: valueSize,
   * or for per-CPU maps round_up(valueSize, 8) * possibleCpus.
   */
  readonly valueBufferSize: number;

  private _fd: number;
  private _pinnedPath: string | undefined;
  private batchRefused = false;
  private readonly count1 = new Uint32Array(1);
  private readonly batchOpts: Buffer;

  private constructor(fd: number, info: MapInfo, name?: string, pinnedPath?: string) {
    this._fd = fd;
    this.name = name ?? info.name;
    this.type = info.type;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.id = info.id;
    this.flags = info.flags;
    this.possibleCpus = numPossibleCpus();
    this.perCpu = isPerCpuMapType(info.type);
    this.valueBufferSize = this.perCpu ? roundUp8(info.valueSize) * this.possibleCpus : info.valueSize;
    this._pinnedPath = pinnedPath;
    // struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; }
    this.batchOpts = Buffer.alloc(24);
    this.batchOpts.writeBigUInt64LE(24n, 0);
  }

  /** The map's fd; -1 after close(). */
  get fd(): number {
    return this._fd;
  }

  /** False once the kernel refused a batch command for this map (batch calls then go element by element). */
  get batchOps(): boolean {
    return !this.batchRefused;
  }

  /** bpffs path this map was pinned at or opened from, if any. */
  get pinnedPath(): string | undefined {
    return this._pinnedPath;
  }

  /** Creates a map (bpf_map_create). Throws SyscallError, e.g. EPERM without CAP_BPF. */
  static create(opts: MapCreateOptions): BpfMap {
    if (!/^[A-Za-z0-9_.]{0,15}$/.test(opts.name)) throw new TypeError(`create map ${JSON.stringify(opts.name)}: a map name is at most 15 characters of [A-Za-z0-9_.]`);
    let flags = opts.flags ?? 0;
    if (opts.type === 'lpm_trie') flags |= MapFlags.NO_PREALLOC;
    // struct bpf_map_create_opts: sz at 0, map_flags at 28; 48 bytes.
    const o = Buffer.alloc(48);
    o.writeBigUInt64LE(48n, 0);
    o.writeUInt32LE(flags >>> 0, 28);
    const fd = ffi().bpf_map_create(mapTypeId(opts.type), opts.name, opts.keySize, opts.valueSize, opts.maxEntries, o);
    if (fd < 0) throw libbpfError(`create ${opts.type} map ${opts.name}`, fd);
    return BpfMap.fromFd(fd);
  }

  /** Opens a map pinned in bpffs. Throws SyscallError (ENOENT when nothing is pinned there, EINVAL when it is not a map). */
  static openPinned(path: string): BpfMap {
    const fd = objGet(path);
    return BpfMap.fromFd(fd, { pinnedPath: path, what: `pinned map ${path}` });
  }

  /** Opens a map by kernel id. Throws SyscallError (ENOENT when no such map). */
  static fromId(id: number): BpfMap {
    return BpfMap.fromFd(fdByIdOrThrow('map', id));
  }

  /** Wraps a map fd and takes ownership of it (it is closed if reading its info fails). */
  static fromFd(fd: number, opts?: { name?: string; pinnedPath?: string; what?: string }): BpfMap {
    let info: MapInfo;
    try {
      info = mapInfoByFd(fd);
    } catch (err) {
      closeFd(fd);
      if (err instanceof SyscallError && opts?.what) throw new SyscallError(`open ${opts.what}: not a map`, err.errno, { cause: err });
      throw err;
    }
    return new BpfMap(fd, info, opts?.name, opts?.pinnedPath);
  }

  /** Every map in the kernel (walks BPF_MAP_GET_NEXT_ID). Maps freed during the walk are skipped. */
  static list(): MapSummary[] {
    return listObjects('map', (fd) => {
      const i = mapInfoByFd(fd);
      return { id: i.id, name: i.name, type: i.type, keySize: i.keySize, valueSize: i.valueSize, maxEntries: i.maxEntries };
    });
  }

  /** A second handle on the same map with its own fd (for handing to something that outlives this one). */
  clone(): BpfMap {
    const fd = dupFd(this._fd);
    if (fd < 0) throw libbpfError(`duplicate fd of map ${this.label()}`, fd);
    return new BpfMap(fd, mapInfoByFd(fd), this.name, this._pinnedPath);
  }

  // -- single elements ------------------------------------------------------

  /** The value under `key` (for per-CPU maps all CPUs' values back to back), or undefined when absent. */
  lookup(key: Uint8Array): Buffer | undefined {
    const out = Buffer.allocUnsafe(this.valueBufferSize);
    return this.lookupInto(key, out) ? out : undefined;
  }

  /** Reads the value under `key` into `out` (valueBufferSize bytes); false when the key is absent. No allocation. */
  lookupInto(key: Uint8Array, out: Uint8Array): boolean {
    if (key.length !== this.keySize || out.length !== this.valueBufferSize) this.throwSizes('look up in', key, out);
    const rc = ffi().bpf_map_lookup_elem(this._fd, key, out);
    if (rc === 0) return true;
    if (rc === -ENOENT) return false;
    throw libbpfError(`look up in map ${this.label()}`, rc);
  }

  /** Writes `value` under `key`; flags BPF_ANY (default), BPF_NOEXIST or BPF_EXIST. Throws SyscallError (E2BIG when full, EEXIST/ENOENT per flags). */
  update(key: Uint8Array, value: Uint8Array, flags: bigint = BPF_ANY): void {
    if (key.length !== this.keySize || value.length !== this.valueBufferSize) this.throwSizes('update', key, value);
    const rc = ffi().bpf_map_update_elem(this._fd, key, value, flags);
    if (rc !== 0) throw libbpfError(`update map ${this.label()}`, rc);
  }

  /** Deletes `key`; false when it was not there. Throws SyscallError (EINVAL on array maps, whose elements cannot be deleted). */
  delete(key: Uint8Array): boolean {
    if (key.length !== this.keySize) this.throwSizes('delete from', key);
    const rc = ffi().bpf_map_delete_elem(this._fd, key);
    if (rc === 0) return true;
    if (rc === -ENOENT) return false;
    throw libbpfError(`delete from map ${this.label()}`, rc);
  }

  /** Per-CPU maps: the value of each possible CPU under `key` (views of one buffer), or undefined when absent. */
  lookupPerCpu(key: Uint8Array): Buffer[] | undefined {
    this.requirePerCpu('look up per-CPU values in');
    const raw = this.lookup(key);
    if (!raw) return undefined;
    const stride = roundUp8(this.valueSize);
    const out: Buffer[] = new Array(this.possibleCpus);
    for (let c = 0; c < this.possibleCpus; c++) out[c] = raw.subarray(c * stride, c * stride + this.valueSize);
    return out;
  }

  /** Per-CPU maps: writes one value per possible CPU under `key`. */
  updatePerCpu(key: Uint8Array, values: Uint8Array[], flags: bigint = BPF_ANY): void {
    this.requirePerCpu('update per-CPU values in');
    if (values.length !== this.possibleCpus) throw new RangeError(`update map ${this.label()}: got ${values.length} per-CPU values, need ${this.possibleCpus}`);
    const stride = roundUp8(this.valueSize);
    const buf = Buffer.alloc(this.valueBufferSize);
    values.forEach((v, c) => {
      if (v.length !== this.valueSize) throw new RangeError(`update map ${this.label()}: CPU ${c} value is ${v.length} bytes, need ${this.valueSize}`);
      buf.set(v, c * stride);
    });
    this.update(key, buf, flags);
  }

  // -- iteration --------------------------------------------------------------

  /**
   * Every key (BPF_MAP_GET_NEXT_KEY). The next key is fetched before the
   * current one is yielded, so deleting the yielded key is safe. Other
   * concurrent deletes may make the kernel restart the walk, so a key can be
   * seen twice; the walk never yields more than maxEntries keys.
   */
  *keys(): Generator<Buffer> {
    const n = ffi();
    const fd = this._fd;
    let next = Buffer.allocUnsafe(this.keySize);
    let rc = n.bpf_map_get_next_key(fd, null, next);
    for (let yielded = 0; rc === 0 && yielded < this.maxEntries; yielded++) {
      const cur = next;
      next = Buffer.allocUnsafe(this.keySize);
      rc = n.bpf_map_get_next_key(fd, cur, next);
      yield cur;
    }
    if (rc !== 0 && rc !== -ENOENT) throw libbpfError(`iterate keys of map ${this.label()}`, rc);
  }

  /** Every key with its value; keys deleted between the key walk and the lookup are skipped. */
  *entries(): Generator<[Buffer, Buffer]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  /** Number of elements, by walking every key: O(n) system calls. */
  count(): number {
    let c = 0;
    for (const _ of this.keys()) c++;
    return c;
  }

  // -- batches ---------------------------------------------------------------

  /**
   * Every element through BPF_MAP_LOOKUP_BATCH (about 1024 per system call),
   * falling back to a key walk when the map type or kernel has no batch
   * lookup (e.g. devmap, Linux < 5.6). Keys and values are views into
   * buffers made for this call, so they stay valid.
   */
  lookupBatch(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    this.walkBatches(true, (keys, vals, got) => {
      for (let i = 0; i < got; i++) out.push([keys.subarray(i * ks, (i + 1) * ks), vals.subarray(i * vs, (i + 1) * vs)]);
    });
    return out;
  }

  /**
   * Visits every element, a batch at a time, keeping no object per
   * element (maps of 100,000 entries are read this way): `keys` and
   * `values` hold `count` elements back to back, keySize and
   * valueBufferSize apart. The buffers are reused from one visit to the
   * next, so read them inside the visit only. Same fallback as lookupBatch.
   */
  forEachBatch(visit: (keys: Buffer, values: Buffer, count: number) => void): void {
    this.walkBatches(false, visit);
  }

  /** Number of elements, by batch lookups (a key walk where there are none). */
  countBatch(): number {
    let n = 0;
    this.walkBatches(false, (_k, _v, got) => { n += got; });
    return n;
  }

  private walkBatches(fresh: boolean, visit: (keys: Buffer, values: Buffer, count: number) => void): void {
    const walk = (): void => { for (const [k, v] of this.entries()) visit(k, v, 1); };
    if (this.batchRefused) { walk(); return; }
    const n = ffi();
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    let chunk = Math.max(1, Math.min(this.maxEntries, 1024));
    // The resume token is a bucket index (u32) for hash maps and a key for the generic walk.
    const token = Buffer.alloc(Math.max(ks, 8));
    const count = this.count1;
    let keys = Buffer.allocUnsafe(chunk * ks);
    let vals = Buffer.allocUnsafe(chunk * vs);
    let started = false;
    let seen = 0;
    for (;;) {
      // Fresh buffers per round when the caller keeps views into them.
      if (fresh && started) { keys = Buffer.allocUnsafe(chunk * ks); vals = Buffer.allocUnsafe(chunk * vs); }
      count[0] = chunk;
      this.batchOpts.writeBigUInt64LE(0n, 8);
      const rc = n.bpf_map_lookup_batch(this._fd, started ? token : null, token, keys, vals, count, this.batchOpts);
      if (rc !== 0 && rc !== -ENOENT) {
        if (!started && this.isRefusal(rc)) {
          this.batchRefused = true;
          walk();
          return;
        }
        if (rc === -ENOSPC && chunk < this.maxEntries * 2) {
          // One hash bucket holds more elements than fit. The kernel wrote
          // that bucket's token, so grow and resume from it.
          chunk *= 4;
          keys = Buffer.allocUnsafe(chunk * ks);
          vals = Buffer.allocUnsafe(chunk * vs);
          started = true;
          continue;
        }
        throw libbpfError(`look up batch in map ${this.label()}`, rc);
      }
      const got = count[0]!;
      if (got > 0) visit(keys, vals, got);
      seen += got;
      if (rc === -ENOENT) return;
      started = true;
      if (seen > this.maxEntries * 4) throw new SyscallError(`look up batch in map ${this.label()}: walk did not end`, 5);
    }
  }

  /** Writes many elements (BPF_MAP_UPDATE_BATCH, or one by one where refused). Returns the number written. */
  updateBatch(keys: Uint8Array[], values: Uint8Array[], flags: bigint = BPF_ANY): number {
    if (keys.length !== values.length) throw new RangeError(`update batch in map ${this.label()}: ${keys.length} keys but ${values.length} values`);
    const kb = Buffer.allocUnsafe(keys.length * this.keySize);
    const vb = Buffer.allocUnsafe(values.length * this.valueBufferSize);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = values[i]!;
      if (k.length !== this.keySize || v.length !== this.valueBufferSize) this.throwSizes('update batch in', k, v);
      kb.set(k, i * this.keySize);
      vb.set(v, i * this.valueBufferSize);
    }
    return this.updateBatchRaw(kb, vb, keys.length, flags);
  }

  /**
   * Zero-copy batch update: `keys` holds count*keySize bytes and `values`
   * count*valueBufferSize bytes, packed. Returns the number written; on a
   * failure part-way the SyscallError says how many were written.
   */
  updateBatchRaw(keys: Uint8Array, values: Uint8Array, count: number, flags: bigint = BPF_ANY): number {
    if (keys.length < count * this.keySize || values.length < count * this.valueBufferSize) {
      throw new RangeError(`update batch in map ${this.label()}: buffers hold fewer than ${count} elements`);
    }
    if (count === 0) return 0;
    // The kernel's batch update takes no element flag but BPF_F_LOCK, so
    // BPF_NOEXIST/BPF_EXIST go element by element to keep their meaning.
    if (!this.batchRefused && (flags & ~BPF_F_LOCK) === 0n) {
      const c = this.count1;
      c[0] = count;
      this.batchOpts.writeBigUInt64LE(flags, 8);
      const rc = ffi().bpf_map_update_batch(this._fd, keys, values, c, this.batchOpts);
      if (rc === 0) return c[0]!;
      if (!this.isRefusal(rc)) {
        // count only moves when the kernel got as far as the elements.
        const partial = c[0]! < count ? ` (${c[0]} of ${count} written)` : '';
        throw libbpfError(`update batch in map ${this.label()}${partial}`, rc);
      }
      this.batchRefused = true;
    }
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    for (let i = 0; i < count; i++) {
      const rc = ffi().bpf_map_update_elem(this._fd, keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs), flags);
      if (rc !== 0) throw libbpfError(`update batch in map ${this.label()} (${i} of ${count} written)`, rc);
    }
    return count;
  }

  /** Deletes many keys (BPF_MAP_DELETE_BATCH, or one by one where refused). Absent keys are skipped; returns how many were deleted. */
  deleteBatch(keys: Uint8Array[]): number {
    const kb = Buffer.allocUnsafe(keys.length * this.keySize);
    keys.forEach((k, i) => {
      if (k.length !== this.keySize) this.throwSizes('delete batch from', k);
      kb.set(k, i * this.keySize);
    });
    return this.deleteBatchRaw(kb, keys.length);
  }

  /** Zero-copy batch delete of `count` packed keys. Absent keys are skipped; returns how many were deleted. */
  deleteBatchRaw(keys: Uint8Array, count: number): number {
    if (keys.length < count * this.keySize) throw new RangeError(`delete batch from map ${this.label()}: buffer holds fewer than ${count} keys`);
    const ks = this.keySize;
    let deleted = 0;
    let off = 0;
    const c = this.count1;
    while (!this.batchRefused && off < count) {
      c[0] = count - off;
      this.batchOpts.writeBigUInt64LE(0n, 8);
      const rc = ffi().bpf_map_delete_batch(this._fd, keys.subarray(off * ks, count * ks), c, this.batchOpts);
      if (rc === 0) return deleted + c[0]!;
      if (rc === -ENOENT) {
        // The kernel stops at the first absent key; count says how many went before it.
        deleted += c[0]!;
        off += c[0]! + 1;
        continue;
      }
      if (off === 0 && deleted === 0 && this.isRefusal(rc)) {
        this.batchRefused = true;
        break;
      }
      throw libbpfError(`delete batch from map ${this.label()} (${deleted + c[0]!} of ${count} deleted)`, rc);
    }
    for (let i = off; i < count; i++) {
      if (this.delete(keys.subarray(i * ks, (i + 1) * ks))) deleted++;
    }
    return deleted;
  }

  // -- pins, typing, lifetime -------------------------------------------------

  /** Pins the map at a bpffs path so it outlives this process. Throws SyscallError (EEXIST when the path is taken). */
  pin(path: string): void {
    objPin(this._fd, path, `map ${this.label()}`);
    this._pinnedPath = path;
  }

  /** Removes the pin this handle knows about (a no-op when there is none or it is already gone). */
  unpin(): void {
    if (this._pinnedPath === undefined) return;
    try {
      unlinkSync(this._pinnedPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SyscallError(`unpin map ${this.label()} from ${this._pinnedPath}`, -((err as NodeJS.ErrnoException).errno ?? -5), { cause: err });
      }
    }
    this._pinnedPath = undefined;
  }

  /** A typed view through codecs. Throws TypeError when the codec sizes differ from keySize/valueSize. */
  typed<K, V>(key: Codec<K>, value: Codec<V>): TypedMap<K, V> {
    if (key.size !== this.keySize || value.size !== this.valueSize) {
      throw new TypeError(`type map ${this.label()}: codecs are ${key.size}/${value.size} bytes but the map's key/value are ${this.keySize}/${this.valueSize}`);
    }
    return new TypedMap(this, key, value);
  }

  /** Closes the fd (idempotent). The map lives on while pinned or used by a program. */
  close(): void {
    closeFd(this._fd);
    this._fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** "name (id N)", for messages. */
  label(): string {
    return `${this.name} (id ${this.id})`;
  }

  private isRefusal(rc: number): boolean {
    if (rc === -ENOTSUPP || rc === -EOPNOTSUPP) return true;
    // Kernels before 5.6 answer EINVAL to the unknown batch commands.
    return rc === -EINVAL && !mapBatchSupported();
  }

  private requirePerCpu(verb: string): void {
    if (!this.perCpu) throw new TypeError(`${verb} map ${this.label()}: it is a ${this.type} map, not per-CPU`);
  }

  private throwSizes(verb: string, key: Uint8Array, value?: Uint8Array): never {
    const want = value === undefined ? `${this.keySize}-byte key` : `${this.keySize}-byte key and ${this.valueBufferSize}-byte value`;
    const got = value === undefined ? `${key.length}` : `${key.length}/${value.length}`;
    throw new RangeError(`${verb} map ${this.label()}: needs a ${want}, got ${got} bytes`);
  }
}

function roundUp8(n: number): number {
  return (n + 7) & ~7;
}
