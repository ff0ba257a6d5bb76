import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  array, be16, be32, bool, bytes, cstring, encodeToBuffer, paddedString, i32, ipv4, lpmKey, mac, parseIpv4, struct, u16, u32, u64, u8, type Codec,
} from '../../agent/src/libbpf/index.js';

function roundTrip<T>(codec: Codec<T>, value: T, hex: string): void {
  const buf = encodeToBuffer(codec, value);
  assert.equal(buf.toString('hex'), hex);
  assert.deepEqual(codec.decode(buf, 0), value);
}

describe('libbpf codecs', () => {
  it('stores host-order integers little-endian on this machine', () => {
    roundTrip(u8, 0xab, 'ab');
    roundTrip(u16, 0x1234, '3412');
    roundTrip(u32, 0x11223344, '44332211');
    roundTrip(i32, -2, 'feffffff');
    roundTrip(u64, 0x0102030405060708n, '0807060504030201');
    roundTrip(bool, true, '01');
  });

  it('stores be16 and be32 in network byte order', () => {
    roundTrip(be16, 8080, '1f90');
    roundTrip(be32, 0x0a000001, '0a000001');
  });

  it('encodes an IPv4 address as four bytes in network order', () => {
    roundTrip(ipv4, '10.244.1.7', '0af40107');
    roundTrip(ipv4, '255.255.255.255', 'ffffffff');
    assert.equal(parseIpv4('192.168.0.1'), 0xc0a80001);
  });

  it('rejects text that is not a dotted-quad IPv4 address', () => {
    for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.01', 'a.b.c.d', '10.0.0.1 ', '::1']) {
      assert.throws(() => encodeToBuffer(ipv4, bad), TypeError, bad);
    }
  });

  it('encodes a MAC address as six bytes and decodes it lower-case', () => {
    const buf = encodeToBuffer(mac, '0A:1b:2C:3d:4E:5f');
    assert.equal(buf.toString('hex'), '0a1b2c3d4e5f');
    assert.equal(mac.decode(buf, 0), '0a:1b:2c:3d:4e:5f');
    assert.throws(() => encodeToBuffer(mac, '0a-1b-2c-3d-4e-5f'), TypeError);
  });

  it('refuses integers that do not fit their width', () => {
    assert.throws(() => encodeToBuffer(u8, 256), RangeError);
    assert.throws(() => encodeToBuffer(u16, -1), RangeError);
    assert.throws(() => encodeToBuffer(u32, 1.5), RangeError);
    assert.throws(() => encodeToBuffer(u64, -1n), RangeError);
    assert.throws(() => encodeToBuffer(be16, 65536), RangeError);
  });

  it('pads a cstring with NULs and keeps room for the terminator', () => {
    roundTrip(cstring(8), 'eth0', '6574683000000000');
    assert.throws(() => encodeToBuffer(cstring(4), 'eth0'), RangeError);
    const dirty = Buffer.from('41414141414141', 'hex');
    cstring(7).encode('b', dirty, 0);
    assert.equal(dirty.toString('hex'), '62000000000000');
  });

  it('fills a padded string to its last byte without a terminator, and pads shorter ones', () => {
    roundTrip(paddedString(4), 'eth0', '65746830');
    roundTrip(paddedString(6), 'eth0', '657468300000');
    assert.throws(() => encodeToBuffer(paddedString(3), 'eth0'), RangeError);
  });

  it('copies raw bytes of a fixed length', () => {
    const codec = bytes(3);
    const src = Buffer.from('010203', 'hex');
    const buf = encodeToBuffer(codec, src);
    const out = codec.decode(buf, 0);
    assert.deepEqual(Buffer.from(out), src);
    buf[0] = 9;
    assert.equal(out[0], 1, 'decode returns a copy, not a view');
    assert.throws(() => encodeToBuffer(codec, Buffer.alloc(2)), RangeError);
  });

  it('lays out arrays back to back', () => {
    roundTrip(array(u16, 3), [1, 2, 0xffff], '01000200ffff');
    assert.throws(() => encodeToBuffer(array(u8, 2), [1]), RangeError);
  });

  it('places struct fields sequentially or at explicit offsets and zeroes the padding', () => {
    // struct { __u8 proto; /* 3 bytes pad */ __be32 addr; __be16 port; /* 2 bytes pad */ }
    const key = struct({ proto: u8, addr: { offset: 4, codec: ipv4 }, port: be16 }, 12);
    const buf = Buffer.alloc(12, 0xee);
    key.encode({ proto: 6, addr: '10.96.0.10', port: 53 }, buf, 0);
    assert.equal(buf.toString('hex'), '060000000a60000a00350000');
    assert.deepEqual(key.decode(buf, 0), { proto: 6, addr: '10.96.0.10', port: 53 });
  });

  it('encodes a struct at an offset inside a larger buffer without touching its neighbours', () => {
    const s = struct({ a: u16, b: u8 }, 4);
    const buf = Buffer.alloc(8, 0xff);
    s.encode({ a: 1, b: 2 }, buf, 2);
    assert.equal(buf.toString('hex'), 'ffff01000200ffff');
  });

  it('rejects struct fields that overlap or overflow the size', () => {
    assert.throws(() => struct({ a: u32, b: { offset: 2, codec: u16 } }, 8), /overlaps field a/);
    assert.throws(() => struct({ a: u32, b: u64 }, 8), /does not fit in 8 bytes/);
  });

  it('refuses to encode a struct with a missing field', () => {
    const s = struct({ a: u8, b: u8 }, 2);
    assert.throws(() => s.encode({ a: 1 } as unknown as { a: number; b: number }, Buffer.alloc(2), 0), /field b is missing/);
  });

  it('builds LPM trie keys with a host-order prefix length', () => {
    roundTrip(lpmKey(ipv4), { prefixLen: 24, data: '10.244.3.0' }, '180000000af40300');
  });
});
