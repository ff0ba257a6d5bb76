/**
 * The generic netlink wire format, pure TypeScript over Buffers: nlmsghdr,
 * rtattr (nested too), NLMSG_ERROR with extended-ack TLVs, and NLMSG_DONE.
 * Everything is host byte order except where an attribute says otherwise;
 * podnet only runs on little-endian hosts (x86-64, arm64).
 */
import { PodnetError } from '../errors/index.js';
import {
  NLA_HDRLEN,
  NLA_TYPE_MASK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
} from './constants.js';

/** Rounds a length up to netlink's 4-byte alignment (NLMSG_ALIGN / RTA_ALIGN). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * Builds one netlink message into a growable buffer that is reused from one
 * message to the next, so a steady stream of requests allocates nothing.
 * `finish()` returns a view that stays valid until the next `begin()`.
 */
export class MessageWriter {
  private buf: Buffer;
  private len = 0;

  /** @param capacity initial size in bytes; the buffer doubles when a message needs more. */
  constructor(capacity = 1024) {
    this.buf = Buffer.alloc(capacity);
  }

  /** Starts a message: writes an nlmsghdr whose length `finish()` fills in. */
  begin(type: number, flags: number, seq = 0, pid = 0): this {
    this.len = 0;
    this.reserve(NLMSG_HDRLEN);
    this.buf.fill(0, 0, NLMSG_HDRLEN);
    this.buf.writeUInt16LE(type, 4);
    this.buf.writeUInt16LE(flags, 6);
    this.buf.writeUInt32LE(seq >>> 0, 8);
    this.buf.writeUInt32LE(pid >>> 0, 12);
    this.len = NLMSG_HDRLEN;
    return this;
  }

  /** Appends a u8. */
  u8(v: number): this {
    this.reserve(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
    return this;
  }

  /** Appends a host-order u16. */
  u16(v: number): this {
    this.reserve(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
    return this;
  }

  /** Appends a host-order u32. */
  u32(v: number): this {
    this.reserve(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  /** Appends a host-order s32. */
  i32(v: number): this {
    this.reserve(4);
    this.buf.writeInt32LE(v, this.len);
    this.len += 4;
    return this;
  }

  /** Appends raw bytes. */
  bytes(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** Appends an attribute with a raw payload, padded to 4 bytes. */
  attr(type: number, payload: Uint8Array): this {
    const total = NLA_HDRLEN + payload.length;
    this.reserve(align4(total));
    this.buf.writeUInt16LE(total, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.set(payload, this.len + NLA_HDRLEN);
    this.buf.fill(0, this.len + total, this.len + align4(total));
    this.len += align4(total);
    return this;
  }

  /** Appends a u8 attribute (padded to 4 bytes). */
  attrU8(type: number, v: number): this {
    this.reserve(8);
    this.buf.writeUInt16LE(NLA_HDRLEN + 1, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.writeUInt32LE(v & 0xff, this.len + 4);
    this.len += 8;
    return this;
  }

  /** Appends a host-order u32 attribute. */
  attrU32(type: number, v: number): this {
    this.reserve(8);
    this.buf.writeUInt16LE(NLA_HDRLEN + 4, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.writeUInt32LE(v >>> 0, this.len + 4);
    this.len += 8;
    return this;
  }

  /** Appends a string attribute; `nul` adds the terminating NUL the kernel's NLA_NUL_STRING wants. */
  attrString(type: number, s: string, nul = true): this {
    const n = Buffer.byteLength(s);
    const total = NLA_HDRLEN + n + (nul ? 1 : 0);
    this.reserve(align4(total));
    this.buf.writeUInt16LE(total, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.write(s, this.len + NLA_HDRLEN, 'utf8');
    this.buf.fill(0, this.len + NLA_HDRLEN + n, this.len + align4(total));
    this.len += align4(total);
    return this;
  }

  /** Opens a nested attribute; pass the returned offset to `endNest`. */
  nest(type: number): number {
    const at = this.len;
    this.reserve(NLA_HDRLEN);
    this.buf.writeUInt16LE(0, at);
    this.buf.writeUInt16LE(type, at + 2);
    this.len += NLA_HDRLEN;
    return at;
  }

  /** Closes a nested attribute opened at `at`. */
  endNest(at: number): this {
    this.buf.writeUInt16LE(this.len - at, at);
    return this;
  }

  /** Writes nlmsg_len and returns the message; the view is valid until the next `begin()`. */
  finish(): Buffer {
    this.buf.writeUInt32LE(this.len, 0);
    return this.buf.subarray(0, this.len);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
}

/** One decoded nlmsghdr; `payload` is a view into the buffer it was decoded from. */
export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Bytes after the header, up to nlmsg_len (not a copy). */
  payload: Buffer;
}

/** Splits a datagram into its messages; throws PodnetError EBADMSG on a malformed length. */
export function decodeMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new PodnetError('BAD_MESSAGE', `decode netlink message at offset ${off}: length ${len} does not fit ${buf.length - off} remaining bytes`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (flags masked off; the last one wins); values are views, not copies. */
export type Attrs = Map<number, Buffer>;

/** Decodes a run of attributes starting at `offset`; stops quietly at a truncated tail as the kernel does. */
export function decodeAttrs(buf: Buffer, offset = 0): Attrs {
  const attrs: Attrs = new Map();
  let off = offset;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > buf.length) break;
    attrs.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return attrs;
}

/** A u8 attribute, or undefined when absent or short. */
export function getU8(attrs: Attrs, type: number): number | undefined {
  const v = attrs.get(type);
  return v && v.length >= 1 ? v.readUInt8(0) : undefined;
}

/** A host-order u32 attribute, or undefined when absent or short. */
export function getU32(attrs: Attrs, type: number): number | undefined {
  const v = attrs.get(type);
  return v && v.length >= 4 ? v.readUInt32LE(0) : undefined;
}

/** A host-order s32 attribute, or undefined when absent or short. */
export function getI32(attrs: Attrs, type: number): number | undefined {
  const v = attrs.get(type);
  return v && v.length >= 4 ? v.readInt32LE(0) : undefined;
}

/** A string attribute up to its first NUL, or undefined when absent. */
export function getString(attrs: Attrs, type: number): string | undefined {
  const v = attrs.get(type);
  if (!v) return undefined;
  const nul = v.indexOf(0);
  return v.toString('utf8', 0, nul === -1 ? v.length : nul);
}

/** What an NLMSG_ERROR or NLMSG_DONE carries. */
export interface NetlinkStatus {
  /** Positive errno; 0 is an acknowledgement. */
  errno: number;
  /** The kernel's extended-ack message (NLMSGERR_ATTR_MSG). */
  extAck?: string;
  /** Offset of the offending attribute in the request (NLMSGERR_ATTR_OFFS). */
  extAckOffset?: number;
  /** Type and sequence number of the request the error answers (NLMSG_ERROR only). */
  request?: { type: number; seq: number };
}

function decodeExtAck(buf: Buffer, offset: number, status: NetlinkStatus): NetlinkStatus {
  const tlvs = decodeAttrs(buf, offset);
  const msg = getString(tlvs, NLMSGERR_ATTR_MSG);
  if (msg) status.extAck = msg;
  const offs = getU32(tlvs, NLMSGERR_ATTR_OFFS);
  if (offs !== undefined) status.extAckOffset = offs;
  return status;
}

/**
 * Decodes the payload of an NLMSG_ERROR: struct nlmsgerr (int error + the
 * request's header, plus its payload unless NLM_F_CAPPED) then, with
 * NLM_F_ACK_TLVS, the extended-ack attributes.
 */
export function decodeError(msg: NetlinkMessage): NetlinkStatus {
  const p = msg.payload;
  if (p.length < 4) throw new PodnetError('BAD_MESSAGE', `decode netlink error: payload of ${p.length} bytes is shorter than an errno`);
  const status: NetlinkStatus = { errno: -p.readInt32LE(0) };
  if (p.length < 4 + NLMSG_HDRLEN) return status;
  const origLen = p.readUInt32LE(4);
  status.request = { type: p.readUInt16LE(8), seq: p.readUInt32LE(12) };
  if (!(msg.flags & NLM_F_ACK_TLVS)) return status;
  const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(origLen);
  return decodeExtAck(p, 4 + echoed, status);
}

/** Decodes the payload of an NLMSG_DONE: an int error (0 on success) then, with NLM_F_ACK_TLVS, extended-ack attributes. */
export function decodeDone(msg: NetlinkMessage): NetlinkStatus {
  const p = msg.payload;
  // Some kernels end old-style dumps with an empty DONE.
  if (p.length < 4) return { errno: 0 };
  const status: NetlinkStatus = { errno: -p.readInt32LE(0) };
  if (!(msg.flags & NLM_F_ACK_TLVS)) return status;
  return decodeExtAck(p, 4, status);
}
