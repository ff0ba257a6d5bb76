/**
 * The NETLINK_ROUTE socket and the request/reply protocol over it: sequence
 * numbers, port-id checks, acknowledgements, multi-part dumps and their
 * retry when the kernel flags them interrupted.
 */
import { NetlinkError, PodnetError, SyscallError } from '../errors/index.js';
import { EINTR, EAGAIN, ENOPROTOOPT, EMSGSIZE, EPROTO, ETIMEDOUT, EBADF, ENOBUFS } from '../errors/errno.js';
import { decodeDone, decodeError, decodeMessages, type NetlinkMessage } from './codec.js';
import {
  AF_NETLINK,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_GET_STRICT_CHK,
  NETLINK_ROUTE,
  MSG_TRUNC,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  SO_RCVBUF,
  SO_RCVTIMEO,
  SO_SNDBUF,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
} from './constants.js';
import { libc } from './libc.js';

/**
 * Moves datagrams between a NetlinkConn and the kernel. Methods return a
 * length or a negative errno instead of throwing, so the connection can name
 * the operation in its errors; unit tests replace the socket with a fake.
 */
export interface NetlinkTransport {
  /** Port id the kernel addresses replies to. */
  readonly portId: number;
  /** Sends one datagram; returns the bytes sent or -errno. */
  send(msg: Buffer): number;
  /** Receives one datagram from the kernel into `buf`; returns its full length (which may exceed `buf`) or -errno. */
  recv(buf: Buffer): number;
  /** Like send, but off the event loop's thread (optional: fakes need not have it). */
  sendAsync?(msg: Buffer): Promise<number>;
  close(): void;
}

/** Options of a netlink socket. */
export interface NetlinkSocketOptions {
  /** SO_RCVBUF in bytes; the kernel caps it at net.core.rmem_max. Default 1 MiB. */
  rcvbuf?: number;
  /** How long a receive may wait for the kernel before failing with ETIMEDOUT. Default 5000 ms. */
  timeoutMs?: number;
}

function setIntOpt(fd: number, level: number, name: number, value: number, what: string, optional: boolean): void {
  const c = libc();
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  if (c.setsockopt(fd, level, name, v, 4) === 0) return;
  const errno = c.errno();
  // Older kernels lack some netlink options; they only cost features, not correctness.
  if (optional && errno === ENOPROTOOPT) return;
  throw new SyscallError(`set ${what} on netlink socket`, errno);
}

/** A bound AF_NETLINK/NETLINK_ROUTE socket with extended acks, capped acks and strict dump checking. */
export class NetlinkSocket implements NetlinkTransport, Disposable {
  readonly portId: number;
  private fdValue: number;
  private readonly from = Buffer.alloc(12);
  private readonly fromLen = new Uint32Array(1);

  private constructor(fd: number, portId: number) {
    this.fdValue = fd;
    this.portId = portId;
  }

  /** The socket's file descriptor; -1 once closed. */
  get fd(): number {
    return this.fdValue;
  }

  /** Opens and binds a socket in the calling thread's network namespace; throws SyscallError. */
  static open(opts: NetlinkSocketOptions = {}): NetlinkSocket {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw new SyscallError('open netlink socket', c.errno());
    try {
      setIntOpt(fd, SOL_SOCKET, SO_SNDBUF, 32768, 'SO_SNDBUF', false);
      setIntOpt(fd, SOL_SOCKET, SO_RCVBUF, opts.rcvbuf ?? 1 << 20, 'SO_RCVBUF', false);
      setIntOpt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1, 'NETLINK_EXT_ACK', true);
      // Errors then echo only the request header, not the whole request.
      setIntOpt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1, 'NETLINK_CAP_ACK', true);
      setIntOpt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1, 'NETLINK_GET_STRICT_CHK', true);
      const timeoutMs = opts.timeoutMs ?? 5000;
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
      tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
      if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) !== 0) throw new SyscallError('set SO_RCVTIMEO on netlink socket', c.errno());
      const sa = Buffer.alloc(12);
      sa.writeUInt16LE(AF_NETLINK, 0);
      if (c.bind(fd, sa, 12) !== 0) throw new SyscallError('bind netlink socket', c.errno());
      const len = new Uint32Array([12]);
      if (c.getsockname(fd, sa, len) !== 0) throw new SyscallError('read netlink socket address', c.errno());
      return new NetlinkSocket(fd, sa.readUInt32LE(4));
    } catch (err) {
      c.close(fd);
      throw err;
    }
  }

  /** Sends one datagram to the kernel; returns bytes sent or -errno. */
  send(msg: Buffer): number {
    if (this.fdValue < 0) return -EBADF;
    const c = libc();
    const n = c.sendto(this.fdValue, msg, msg.length, 0, null, 0);
    return n < 0 ? -c.errno() : n;
  }

  /** Sends one datagram from koffi's worker thread; resolves with bytes sent or -errno. */
  sendAsync(msg: Buffer): Promise<number> {
    if (this.fdValue < 0) return Promise.resolve(-EBADF);
    return libc().sendAsync(this.fdValue, msg, msg.length);
  }

  /** Receives one datagram from the kernel (other senders are dropped); returns its full length or -errno. */
  recv(buf: Buffer): number {
    if (this.fdValue < 0) return -EBADF;
    const c = libc();
    // Only the kernel (port 0) may talk to this unicast socket; anything else is dropped, a bounded number of times.
    for (let i = 0; i < 64; i++) {
      this.fromLen[0] = 12;
      const n = c.recvfrom(this.fdValue, buf, buf.length, MSG_TRUNC, this.from, this.fromLen);
      if (n < 0) return -c.errno();
      if (this.from.readUInt32LE(4) === 0) return n;
    }
    return -EPROTO;
  }

  /** Closes the socket; later calls fail with EBADF. Safe to call twice. */
  close(): void {
    if (this.fdValue < 0) return;
    libc().close(this.fdValue);
    this.fdValue = -1;
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** An operation's description for error messages, computed only when an error needs it. */
export type OpName = string | (() => string);

/** The text of an operation's description. */
export function opText(op: OpName): string {
  return typeof op === 'function' ? op() : op;
}

/** Tuning of a NetlinkConn. */
export interface NetlinkConnOptions {
  /** How many times a dump is restarted when the kernel flags it NLM_F_DUMP_INTR. Default 10. */
  dumpAttempts?: number;
  /** Receive buffer size; 64 KiB holds any datagram rtnetlink sends. */
  bufferSize?: number;
}

/** Receive at most this many datagrams for one request before giving up. */
const MAX_DATAGRAMS = 100_000;
/** Retry a receive interrupted by a signal at most this many times in a row. */
const MAX_EINTR = 100;

/**
 * One request at a time over a transport: stamps the sequence number, checks
 * that every reply carries our port id, skips replies to earlier requests,
 * turns NLMSG_ERROR into NetlinkError (with the extended-ack message) and
 * collects multi-part dumps. The receive buffer is reused; messages handed to
 * `parse` are views into it and must not be kept.
 */
export class NetlinkConn implements Disposable {
  private seq = 0;
  private readonly rbuf: Buffer;
  private readonly dumpAttempts: number;
  /** Set after a transport or protocol failure: the reply stream may be out of step. */
  broken = false;

  constructor(
    private readonly transport: NetlinkTransport,
    opts: NetlinkConnOptions = {},
  ) {
    this.rbuf = Buffer.alloc(opts.bufferSize ?? 65536);
    this.dumpAttempts = opts.dumpAttempts ?? 10;
  }

  /** Port id of the underlying transport. */
  get portId(): number {
    return this.transport.portId;
  }

  /**
   * Sends a request (which must ask for an ACK) and waits for the ACK; returns
   * what `parse` made of any messages before it (a GET's answer).
   * Throws NetlinkError when the kernel refuses, SyscallError on transport failure.
   */
  request<T>(op: OpName, msg: Buffer, parse?: (m: NetlinkMessage) => T | undefined): T[] {
    const seq = this.send(op, msg);
    const out: T[] = [];
    for (let i = 0; i < MAX_DATAGRAMS; i++) {
      for (const m of this.receive(op)) {
        if (!this.ours(op, m, seq)) continue;
        if (m.type === NLMSG_ERROR) {
          const status = decodeError(m);
          if (status.errno !== 0) throw new NetlinkError(opText(op), status.errno, status.extAck);
          this.broken = false;
          return out;
        }
        if (m.type === NLMSG_DONE || m.type === NLMSG_NOOP) continue;
        if (m.type === NLMSG_OVERRUN) throw this.fail(op, ENOBUFS, 'kernel reported NLMSG_OVERRUN');
        if (parse) {
          const v = parse(m);
          if (v !== undefined) out.push(v);
        }
      }
    }
    throw this.fail(op, EPROTO, `no acknowledgement after ${MAX_DATAGRAMS} datagrams`);
  }

  /**
   * Like request() without a GET answer, but the kernel processes the request
   * on a worker thread: for requests it is slow to carry out (deleting a
   * veth waits for an RCU barrier inside sendmsg). The ACK is read once the
   * send returns. One at a time per connection: callers must not mix it with
   * other requests on the same connection while it is pending.
   */
  async requestAsync(op: OpName, msg: Buffer): Promise<void> {
    const send = this.transport.sendAsync?.bind(this.transport);
    if (!send) {
      this.request(op, msg);
      return;
    }
    this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1;
    msg.writeUInt32LE(this.seq, 8);
    const seq = this.seq;
    const n = await send(msg);
    if (n < 0) throw this.fail(op, -n, 'send request');
    if (n !== msg.length) throw this.fail(op, EMSGSIZE, `sent ${n} of ${msg.length} bytes`);
    for (let i = 0; i < MAX_DATAGRAMS; i++) {
      for (const m of this.receive(op)) {
        if (!this.ours(op, m, seq) || m.type !== NLMSG_ERROR) continue;
        const status = decodeError(m);
        if (status.errno !== 0) throw new NetlinkError(opText(op), status.errno, status.extAck);
        this.broken = false;
        return;
      }
    }
    throw this.fail(op, EPROTO, `no acknowledgement after ${MAX_DATAGRAMS} datagrams`);
  }

  /**
   * Sends a dump request and collects what `parse` makes of every message up
   * to NLMSG_DONE. A dump the kernel flags NLM_F_DUMP_INTR (the table changed
   * while it was read) is thrown away and started again, a bounded number of times.
   */
  dump<T>(op: OpName, msg: Buffer, parse: (m: NetlinkMessage) => T | undefined): T[] {
    for (let attempt = 1; attempt <= this.dumpAttempts; attempt++) {
      const seq = this.send(op, msg);
      const out: T[] = [];
      let interrupted = false;
      let done = false;
      for (let i = 0; i < MAX_DATAGRAMS && !done; i++) {
        for (const m of this.receive(op)) {
          if (!this.ours(op, m, seq)) continue;
          if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
          if (m.type === NLMSG_DONE) {
            const status = decodeDone(m);
            if (status.errno !== 0) throw new NetlinkError(opText(op), status.errno, status.extAck);
            done = true;
            break;
          }
          if (m.type === NLMSG_ERROR) {
            const status = decodeError(m);
            if (status.errno !== 0) throw new NetlinkError(opText(op), status.errno, status.extAck);
            continue;
          }
          if (m.type === NLMSG_NOOP) continue;
          if (m.type === NLMSG_OVERRUN) throw this.fail(op, ENOBUFS, 'kernel reported NLMSG_OVERRUN');
          const v = parse(m);
          if (v !== undefined) out.push(v);
        }
      }
      if (!done) throw this.fail(op, EPROTO, `no NLMSG_DONE after ${MAX_DATAGRAMS} datagrams`);
      if (!interrupted) {
        this.broken = false;
        return out;
      }
    }
    throw new NetlinkError(`${opText(op)} (dump interrupted ${this.dumpAttempts} times in a row)`, EINTR);
  }

  /** Closes the transport. */
  close(): void {
    this.transport.close();
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }

  private send(op: OpName, msg: Buffer): number {
    this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1;
    msg.writeUInt32LE(this.seq, 8);
    const n = this.transport.send(msg);
    if (n < 0) throw this.fail(op, -n, 'send request');
    if (n !== msg.length) throw this.fail(op, EMSGSIZE, `sent ${n} of ${msg.length} bytes`);
    return this.seq;
  }

  private receive(op: OpName): NetlinkMessage[] {
    for (let i = 0; ; i++) {
      const n = this.transport.recv(this.rbuf);
      if (n === -EINTR && i < MAX_EINTR) continue;
      if (n === -EAGAIN) throw this.fail(op, ETIMEDOUT, 'no reply from the kernel in time');
      if (n < 0) throw this.fail(op, -n, 'receive reply');
      if (n > this.rbuf.length) throw this.fail(op, EMSGSIZE, `reply of ${n} bytes truncated to ${this.rbuf.length}`);
      try {
        return decodeMessages(this.rbuf.subarray(0, n));
      } catch (err) {
        this.broken = true;
        throw err;
      }
    }
  }

  /** True for a reply to request `seq`; false for a late reply to an earlier request; throws for another port. */
  private ours(op: OpName, m: NetlinkMessage, seq: number): boolean {
    if (m.pid !== this.transport.portId) throw this.fail(op, EPROTO, `reply addressed to port ${m.pid}, this socket is port ${this.transport.portId}`);
    return m.seq === seq;
  }

  private fail(op: OpName, errno: number, detail: string): PodnetError {
    this.broken = true;
    return new SyscallError(opText(op), errno, { detail });
  }
}
