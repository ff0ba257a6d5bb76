/**
 * Fixed-size binary codecs for BPF map keys and values. BPF maps store
 * integers in host byte order; fields the datapath keeps in network order
 * (`__be16`, `__be32`, IPv4 addresses) have their own codecs. A struct codec
 * places fields where the caller says and zero-fills every byte no field
 * covers, so padding never leaks stale bytes into hash keys.
 */
import { endianness } from 'node:os';

/** Encodes and decodes one value of a fixed byte size. */
export interface Codec<T> {
  /** Bytes one value occupies. */
  readonly size: number;
  /** Writes `value` at buf[offset .. offset+size). Throws RangeError/TypeError on a value that does not fit. */
  encode(value: T, buf: Buffer, offset: number): void;
  /** Reads a value from buf[offset .. offset+size). */
  decode(buf: Buffer, offset: number): T;
}

/** The value type a codec carries. */
export type CodecValue<C> = C extends Codec<infer T> ? T : never;

const LE = endianness() === 'LE';

function intCheck(v: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`encode ${what}: ${v} is not an integer in [${min}, ${max}]`);
}

/** Unsigned 8-bit integer. */
export const u8: Codec<number> = {
  size: 1,
  encode(v, b, o) { intCheck(v, 0, 0xff, 'u8'); b[o] = v; },
  decode(b, o) { return b[o]!; },
};

/** Unsigned 16-bit integer, host byte order. */
export const u16: Codec<number> = {
  size: 2,
  encode(v, b, o) { intCheck(v, 0, 0xffff, 'u16'); if (LE) b.writeUInt16LE(v, o); else b.writeUInt16BE(v, o); },
  decode(b, o) { return LE ? b.readUInt16LE(o) : b.readUInt16BE(o); },
};

/** Unsigned 32-bit integer, host byte order. */
export const u32: Codec<number> = {
  size: 4,
  encode(v, b, o) { intCheck(v, 0, 0xffffffff, 'u32'); if (LE) b.writeUInt32LE(v, o); else b.writeUInt32BE(v, o); },
  decode(b, o) { return LE ? b.readUInt32LE(o) : b.readUInt32BE(o); },
};

/** Signed 32-bit integer, host byte order. */
export const i32: Codec<number> = {
  size: 4,
  encode(v, b, o) { intCheck(v, -0x80000000, 0x7fffffff, 'i32'); if (LE) b.writeInt32LE(v, o); else b.writeInt32BE(v, o); },
  decode(b, o) { return LE ? b.readInt32LE(o) : b.readInt32BE(o); },
};

/** Unsigned 64-bit integer as a bigint, host byte order. */
export const u64: Codec<bigint> = {
  size: 8,
  encode(v, b, o) {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`encode u64: ${String(v)} is not a bigint in [0, 2^64)`);
    if (LE) b.writeBigUInt64LE(v, o); else b.writeBigUInt64BE(v, o);
  },
  decode(b, o) { return LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o); },
};

/** A 16-bit number stored in network byte order (`__be16`, e.g. ports). */
export const be16: Codec<number> = {
  size: 2,
  encode(v, b, o) { intCheck(v, 0, 0xffff, 'be16'); b.writeUInt16BE(v, o); },
  decode(b, o) { return b.readUInt16BE(o); },
};

/** A 32-bit number stored in network byte order (`__be32`). */
export const be32: Codec<number> = {
  size: 4,
  encode(v, b, o) { intCheck(v, 0, 0xffffffff, 'be32'); b.writeUInt32BE(v, o); },
  decode(b, o) { return b.readUInt32BE(o); },
};

/** A boolean in one byte (0 or 1; any non-zero byte decodes as true). */
export const bool: Codec<boolean> = {
  size: 1,
  encode(v, b, o) { b[o] = v ? 1 : 0; },
  decode(b, o) { return b[o] !== 0; },
};

/** Parses dotted-quad IPv4 text into its 32-bit value; throws TypeError on anything else. */
export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) throw new TypeError(`encode ipv4: ${JSON.stringify(text)} is not a dotted-quad IPv4 address`);
  let v = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) throw new TypeError(`encode ipv4: ${JSON.stringify(text)} is not a dotted-quad IPv4 address`);
    v = v * 256 + Number(p);
  }
  return v;
}

/** An IPv4 address as 'a.b.c.d', stored as 4 bytes in network order (a `__be32`). */
export const ipv4: Codec<string> = {
  size: 4,
  encode(v, b, o) { b.writeUInt32BE(parseIpv4(v), o); },
  decode(b, o) { return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`; },
};

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** An Ethernet address as 'aa:bb:cc:dd:ee:ff' (decoded lower-case), stored as 6 bytes. */
export const mac: Codec<string> = {
  size: 6,
  encode(v, b, o) {
    if (!MAC_RE.test(v)) throw new TypeError(`encode mac: ${JSON.stringify(v)} is not a colon-separated MAC address`);
    for (let i = 0; i < 6; i++) b[o + i] = parseInt(v.slice(i * 3, i * 3 + 2), 16);
  },
  decode(b, o) {
    let s = '';
    for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[o + i]!.toString(16).padStart(2, '0');
    return s;
  },
};

/** Raw bytes of a fixed length; decode returns a copy. */
export function bytes(n: number): Codec<Uint8Array> {
  return {
    size: n,
    encode(v, b, o) {
      if (v.length !== n) throw new RangeError(`encode bytes(${n}): got ${v.length} bytes`);
      b.set(v, o);
    },
    decode(b, o) { return Buffer.from(b.subarray(o, o + n)); },
  };
}

/** A NUL-padded UTF-8 string in a fixed `char[n]` field; at most n-1 bytes so C always finds a NUL. */
export function cstring(n: number): Codec<string> {
  return {
    size: n,
    encode(v, b, o) {
      const len = Buffer.byteLength(v, 'utf8');
      if (len > n - 1) throw new RangeError(`encode cstring(${n}): ${JSON.stringify(v)} is ${len} bytes, at most ${n - 1} fit`);
      b.fill(0, o, o + n);
      b.write(v, o, 'utf8');
    },
    decode(b, o) {
      const end = b.indexOf(0, o);
      return b.toString('utf8', o, end < 0 || end > o + n ? o + n : end);
    },
  };
}

/**
 * A `char[n]` that holds up to n bytes of UTF-8, NUL-padded but not
 * necessarily NUL-terminated (a value of exactly n bytes fills it): for
 * fields no C code prints, such as a 64-character container id in char[64].
 */
export function paddedString(n: number): Codec<string> {
  const c = cstring(n);
  return {
    size: n,
    encode(v, b, o) {
      const len = Buffer.byteLength(v, 'utf8');
      if (len > n) throw new RangeError(`encode paddedString(${n}): ${JSON.stringify(v)} is ${len} bytes, at most ${n} fit`);
      b.fill(0, o, o + n);
      b.write(v, o, 'utf8');
    },
    decode: c.decode,
  };
}

/** A fixed-length array of `count` elements laid out back to back. */
export function array<T>(codec: Codec<T>, count: number): Codec<T[]> {
  return {
    size: codec.size * count,
    encode(v, b, o) {
      if (v.length !== count) throw new RangeError(`encode array(${count}): got ${v.length} elements`);
      for (let i = 0; i < count; i++) codec.encode(v[i]!, b, o + i * codec.size);
    },
    decode(b, o) {
      const out: T[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = codec.decode(b, o + i * codec.size);
      return out;
    },
  };
}

/** A struct field: a codec placed right after the previous field, or at an explicit byte offset. */
export type FieldSpec<T = unknown> = Codec<T> | { offset: number; codec: Codec<T> };

type FieldValue<F> = F extends Codec<infer T> ? T : F extends { codec: Codec<infer T> } ? T : never;

/** The object type a struct codec carries. */
export type StructValue<F extends Record<string, FieldSpec<any>>> = { [K in keyof F]: FieldValue<F[K]> };

/**
 * A C struct of `size` bytes. Fields go in declaration order, each right
 * after the previous one unless it names its `offset`: C's alignment padding
 * is never inferred, write it as an explicit offset. Bytes no field covers
 * are zeroed on encode. Throws TypeError at definition time when fields
 * overlap or do not fit in `size`.
 */
export function struct<F extends Record<string, FieldSpec<any>>>(fields: F, size: number): Codec<StructValue<F>> {
  const layout: Array<{ name: string; offset: number; codec: Codec<unknown> }> = [];
  let next = 0;
  for (const [name, spec] of Object.entries(fields)) {
    const isPlaced = typeof (spec as { offset?: unknown }).offset === 'number' && 'codec' in spec;
    const codec = (isPlaced ? (spec as { codec: Codec<unknown> }).codec : spec) as Codec<unknown>;
    const offset = isPlaced ? (spec as { offset: number }).offset : next;
    if (offset < 0 || offset + codec.size > size) throw new TypeError(`define struct: field ${name} at ${offset}+${codec.size} does not fit in ${size} bytes`);
    for (const f of layout) {
      if (offset < f.offset + f.codec.size && f.offset < offset + codec.size) throw new TypeError(`define struct: field ${name} overlaps field ${f.name}`);
    }
    layout.push({ name, offset, codec });
    next = offset + codec.size;
  }
  // Padding = bytes no field covers; precompute the runs to zero.
  const covered = new Uint8Array(size);
  for (const f of layout) covered.fill(1, f.offset, f.offset + f.codec.size);
  const gaps: Array<[number, number]> = [];
  for (let i = 0; i < size; ) {
    if (covered[i]) { i++; continue; }
    let j = i;
    while (j < size && !covered[j]) j++;
    gaps.push([i, j]);
    i = j;
  }
  return {
    size,
    encode(v, b, o) {
      for (const [s, e] of gaps) b.fill(0, o + s, o + e);
      for (const f of layout) {
        const fv = (v as Record<string, unknown>)[f.name];
        if (fv === undefined) throw new TypeError(`encode struct: field ${f.name} is missing`);
        f.codec.encode(fv, b, o + f.offset);
      }
    },
    decode(b, o) {
      const out: Record<string, unknown> = {};
      for (const f of layout) out[f.name] = f.codec.decode(b, o + f.offset);
      return out as StructValue<F>;
    },
  };
}

/** Key of an LPM trie map: `struct { __u32 prefixlen; <data> }` with the prefix length in host order. */
export function lpmKey<T>(data: Codec<T>): Codec<{ prefixLen: number; data: T }> {
  return struct({ prefixLen: u32, data }, 4 + data.size);
}

/** Encodes one value into a new Buffer of exactly codec.size bytes. */
export function encodeToBuffer<T>(codec: Codec<T>, value: T): Buffer {
  const b = Buffer.alloc(codec.size);
  codec.encode(value, b, 0);
  return b;
}
