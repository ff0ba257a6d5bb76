/**
 * Destroying the host's sockets that still talk to a removed backend. A
 * connected UDP socket (a resolver's socket to CoreDNS, a metrics agent's
 * statsd socket) keeps the backend connect4 picked for as long as it lives;
 * once that backend is gone its datagrams go nowhere. The destroyer runs the
 * socket iterators of bpf/sock_destroy.bpf.c, which call the bpf_sock_destroy
 * kfunc (Linux >= 6.5) on every socket of the agent's network namespace (the
 * host's) whose peer is a removed backend: the application's next receive
 * fails with ECONNABORTED (a send on the now unconnected socket with
 * EDESTADDRREQ), it reconnects, and connect4 picks a live backend.
 */
import { compileBpf } from './compile.js';
import { NotSupportedError, PodnetError } from '../errors/index.js';
import { errnoName } from '../errors/errno.js';
import { BpfObject, FEATURES, probeSockDestroy, runIterator, u8, type Program, type TypedMap } from '../libbpf/index.js';
import { sockDestroyed, sockTarget } from '../maps/index.js';
import { IP_PROTO } from '../maps/services.js';

/** A removed backend: peer address, port and IP protocol (IP_PROTO.UDP or IP_PROTO.TCP). */
export interface SocketTarget {
  addr: string;
  port: number;
  proto: number;
}

/** One socket the destroyer found connected to a target. */
export interface DestroyedSocket {
  cookie: bigint;
  addr: string;
  port: number;
  proto: number;
  /** 0 when destroyed; else the errno name bpf_sock_destroy gave. */
  error?: string;
}

/** Options of {@link SocketDestroyer.open}. */
export interface SocketDestroyerOptions {
  cacheDir: string;
  bpfDir?: string;
}

/** Room in pn_sd_targets (bpf/sock_destroy.bpf.c); longer lists run in rounds. */
const MAX_TARGETS = 4096;

/** The loaded destroyer programs. Not pinned: nothing of it outlives the agent. */
export class SocketDestroyer implements Disposable {
  private constructor(
    private readonly obj: BpfObject,
    private readonly targets: TypedMap<{ addr: string; port: number; proto: number; pad: number }, number>,
    private readonly udp: Program,
    private readonly tcp: Program,
  ) {}

  /**
   * Compiles (cached) and loads bpf/sock_destroy.bpf.c.
   * @throws NotSupportedError before Linux 6.5 (no bpf_sock_destroy kfunc); PodnetError/VerifierError/SyscallError otherwise.
   */
  static async open(o: SocketDestroyerOptions): Promise<SocketDestroyer> {
    if (!probeSockDestroy()) throw new NotSupportedError(FEATURES.sockDestroy.name, FEATURES.sockDestroy.minKernel);
    const compiled = await compileBpf('sock_destroy', { cacheDir: o.cacheDir, ...(o.bpfDir ? { srcDir: o.bpfDir } : {}) });
    const obj = BpfObject.open(compiled.path);
    try {
      obj.load();
      return new SocketDestroyer(obj, obj.map('pn_sd_targets').typed(sockTarget, u8), obj.program('sd_udp'), obj.program('sd_tcp'));
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /**
   * Destroys every socket of the caller's network namespace whose peer is
   * one of `targets` (TCP sockets in any state but listen, time-wait and
   * request; UDP sockets only when connected). Returns what it found, with
   * the sockets it could not destroy marked.
   * @throws PodnetError INVALID_ARGUMENT for a protocol other than TCP or UDP; SyscallError when an iterator fails.
   */
  destroy(targets: readonly SocketTarget[]): DestroyedSocket[] {
    for (const t of targets) {
      if (t.proto !== IP_PROTO.UDP && t.proto !== IP_PROTO.TCP) {
        throw new PodnetError('INVALID_ARGUMENT', `destroy sockets to ${t.addr}:${t.port}: protocol ${t.proto} is neither TCP (6) nor UDP (17)`);
      }
    }
    const out: DestroyedSocket[] = [];
    for (let i = 0; i < targets.length; i += MAX_TARGETS) {
      const round = targets.slice(i, i + MAX_TARGETS);
      try {
        for (const t of round) this.targets.set({ addr: t.addr, port: t.port, proto: t.proto, pad: 0 }, 1);
        if (round.some((t) => t.proto === IP_PROTO.UDP)) out.push(...decode(runIterator(this.udp)));
        if (round.some((t) => t.proto === IP_PROTO.TCP)) out.push(...decode(runIterator(this.tcp)));
      } finally {
        for (const t of round) this.targets.delete({ addr: t.addr, port: t.port, proto: t.proto, pad: 0 });
      }
    }
    return out;
  }

  /** destroy() for one backend. */
  destroySocketsTo(addr: string, port: number, proto: number): DestroyedSocket[] {
    return this.destroy([{ addr, port, proto }]);
  }

  close(): void {
    this.obj.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function decode(buf: Buffer): DestroyedSocket[] {
  const out: DestroyedSocket[] = [];
  for (let off = 0; off + sockDestroyed.size <= buf.length; off += sockDestroyed.size) {
    const r = sockDestroyed.decode(buf, off);
    const s: DestroyedSocket = { cookie: r.cookie, addr: r.addr, port: r.port, proto: r.proto };
    if (r.err !== 0) s.error = errnoName(-r.err);
    out.push(s);
  }
  return out;
}
