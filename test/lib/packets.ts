/**
 * Ethernet + IPv4 + TCP/UDP/ICMP frames for BPF_PROG_TEST_RUN fixtures,
 * built with correct checksums, and a parser that reads a program's output
 * frame back and checks every checksum in it from scratch.
 */

export const TCP = 6, UDP = 17, ICMP = 1;
export const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;

export const macBytes = (s: string): Buffer => Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
export const ipBytes = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const ipStr = (b: Buffer, o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const macStr = (b: Buffer, o: number): string => [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** The Internet checksum (RFC 1071) of `parts`, as the 16-bit value to store. */
export function inetChecksum(...parts: Buffer[]): number {
  const b = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function pseudo(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  const p = Buffer.alloc(12);
  src.copy(p, 0); dst.copy(p, 4); p[9] = proto; p.writeUInt16BE(len, 10);
  return p;
}

/** What a fixture frame carries. */
export interface FrameSpec {
  src: string;
  dst: string;
  proto: number;
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  /** TCP flags (default SYN). */
  flags?: number;
  payload?: Buffer;
  /** UDP: send checksum 0 ("none"). */
  noUdpChecksum?: boolean;
  srcMac?: string;
  dstMac?: string;
  ttl?: number;
}

/** A frame with valid IPv4 and L4 checksums. */
export function frame(s: FrameSpec): Buffer {
  const payload = s.payload ?? Buffer.alloc(0);
  const src = ipBytes(s.src), dst = ipBytes(s.dst);
  let l4: Buffer;
  if (s.proto === TCP) {
    l4 = Buffer.alloc(20);
    l4.writeUInt16BE(s.sport ?? 40000, 0); l4.writeUInt16BE(s.dport ?? 80, 2);
    l4.writeUInt32BE(s.seq ?? 1000, 4); l4.writeUInt32BE(s.ack ?? 0, 8);
    l4[12] = 5 << 4; l4[13] = s.flags ?? SYN; l4.writeUInt16BE(65535, 14);
    l4 = Buffer.concat([l4, payload]);
    l4.writeUInt16BE(inetChecksum(pseudo(src, dst, TCP, l4.length), l4), 16);
  } else if (s.proto === UDP) {
    l4 = Buffer.concat([Buffer.alloc(8), payload]);
    l4.writeUInt16BE(s.sport ?? 40000, 0); l4.writeUInt16BE(s.dport ?? 53, 2); l4.writeUInt16BE(l4.length, 4);
    if (!s.noUdpChecksum) l4.writeUInt16BE(inetChecksum(pseudo(src, dst, UDP, l4.length), l4) || 0xffff, 6);
  } else {
    l4 = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 1, 0, 1]), payload]); // echo request
    l4.writeUInt16BE(inetChecksum(l4), 2);
  }
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip.writeUInt16BE(20 + l4.length, 2); ip.writeUInt16BE(0x4000, 6); ip[8] = s.ttl ?? 64; ip[9] = s.proto;
  src.copy(ip, 12); dst.copy(ip, 16);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  const eth = Buffer.concat([macBytes(s.dstMac ?? '02:00:00:00:00:02'), macBytes(s.srcMac ?? '02:00:00:00:00:01'), Buffer.from([0x08, 0x00])]);
  return Buffer.concat([eth, ip, l4]);
}

/** A frame as read back: headers decoded, checksums recomputed. */
export interface Parsed {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  proto: number;
  ttl: number;
  totLen: number;
  ipChecksumOk: boolean;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  /** The L4 checksum field as sent. */
  l4Checksum: number;
  /** True when the L4 checksum verifies (or is a UDP "none"). */
  l4ChecksumOk: boolean;
  icmpType: number;
  icmpCode: number;
  /** ICMP errors: the quoted bytes after the 8-byte ICMP header. */
  quoted: Buffer;
  payload: Buffer;
}

/** Parses an Ethernet + IPv4 frame (IHL 5) with its TCP, UDP or ICMP header. */
export function parse(b: Buffer): Parsed {
  const ip = b.subarray(14, 34);
  const totLen = ip.readUInt16BE(2);
  const l4 = b.subarray(34, 14 + totLen);
  const src = ip.subarray(12, 16), dst = ip.subarray(16, 20);
  const out: Parsed = {
    dstMac: macStr(b, 0), srcMac: macStr(b, 6), src: ipStr(b, 26), dst: ipStr(b, 30), proto: ip[9]!, ttl: ip[8]!, totLen,
    ipChecksumOk: inetChecksum(ip) === 0, sport: 0, dport: 0, seq: 0, ack: 0, flags: 0, l4Checksum: 0, l4ChecksumOk: false,
    icmpType: -1, icmpCode: -1, quoted: Buffer.alloc(0), payload: Buffer.alloc(0),
  };
  if (out.proto === TCP) {
    Object.assign(out, { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), seq: l4.readUInt32BE(4), ack: l4.readUInt32BE(8), flags: l4[13]!, l4Checksum: l4.readUInt16BE(16) });
    out.l4ChecksumOk = inetChecksum(pseudo(src, dst, TCP, l4.length), l4) === 0;
    out.payload = l4.subarray((l4[12]! >> 4) * 4);
  } else if (out.proto === UDP) {
    Object.assign(out, { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), l4Checksum: l4.readUInt16BE(6) });
    out.l4ChecksumOk = out.l4Checksum === 0 || inetChecksum(pseudo(src, dst, UDP, l4.length), l4) === 0;
    out.payload = l4.subarray(8);
  } else if (out.proto === ICMP) {
    Object.assign(out, { icmpType: l4[0]!, icmpCode: l4[1]!, l4Checksum: l4.readUInt16BE(2) });
    out.l4ChecksumOk = inetChecksum(l4) === 0;
    out.quoted = l4.subarray(8);
  }
  return out;
}

/** An ICMP error (default destination unreachable, port unreachable) from src to dst quoting `quoted` (an IPv4 header and 8 bytes). */
export function icmpErrorFrame(o: { src: string; dst: string; quoted: Buffer; type?: number; code?: number }): Buffer {
  const icmp = Buffer.concat([Buffer.from([o.type ?? 3, o.code ?? 3, 0, 0, 0, 0, 0, 0]), o.quoted]);
  icmp.writeUInt16BE(inetChecksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip.writeUInt16BE(20 + icmp.length, 2); ip[8] = 64; ip[9] = ICMP;
  ipBytes(o.src).copy(ip, 12); ipBytes(o.dst).copy(ip, 16);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  return Buffer.concat([macBytes('02:00:00:00:00:02'), macBytes('02:00:00:00:00:01'), Buffer.from([0x08, 0x00]), ip, icmp]);
}
