/**
 * tcx: tc ingress/egress hooks as BPF links (Linux 6.6). libbpf 1.1 has no
 * helper for them, so the link is made with bpf_link_create and the kernel's
 * BPF_TCX_INGRESS/EGRESS attach types.
 */
import { unlinkSync } from 'node:fs';
import { SyscallError } from '../errors/index.js';
import { libbpfError } from './fail.js';
import { closeFd, ffi } from './ffi.js';
import { linkInfoByFd, objPin, type LinkInfo } from './info.js';
import type { Link } from './link.js';
import { notSupported, probeTcx } from './probe.js';
import type { Program } from './program.js';
import { AttachType } from './types.js';
import { EINVAL, ENOENT, ENODEV, ENOLINK } from '../errors/errno.js';

/** Which tc hook: packets arriving at (ingress) or leaving (egress) the device. */
export type TcDirection = 'ingress' | 'egress';

/** A program attached to a device's tc hook through a tcx link. */
export class TcxLink implements Link {
  readonly kind = 'tcx' as const;
  readonly ifindex: number;
  readonly direction: TcDirection;
  readonly id: number;
  private _programId: number;
  private _fd: number;
  private _pinnedPath: string | undefined;

  private constructor(fd: number, info: LinkInfo, pinnedPath?: string) {
    this._fd = fd;
    this.id = info.id;
    this._programId = info.programId;
    this.ifindex = info.ifindex ?? 0;
    this.direction = info.attachType === AttachType.TCX_EGRESS ? 'egress' : 'ingress';
    this._pinnedPath = pinnedPath;
  }

  /** Wraps a tcx link fd (ownership passes to the link). */
  static fromFd(fd: number, info: LinkInfo, pinnedPath?: string): TcxLink {
    return new TcxLink(fd, info, pinnedPath);
  }

  /** See attachTcx(). */
  static attach(prog: Program, ifindex: number, direction: TcDirection, opts: { ifname?: string } = {}): TcxLink {
    const type = direction === 'ingress' ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS;
    const fd = ffi().bpf_link_create(prog.fd, ifindex, type, null);
    if (fd < 0) {
      if (fd === -EINVAL && !probeTcx()) throw notSupported('tcx');
      throw libbpfError(`attach tcx ${direction} to ${device(ifindex, opts.ifname)}: create link`, fd);
    }
    try {
      return new TcxLink(fd, linkInfoByFd(fd));
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** Id of the attached program. */
  get programId(): number {
    return this._programId;
  }

  /** The link fd; -1 after close(). */
  get fd(): number {
    return this._fd;
  }

  get pinnedPath(): string | undefined {
    return this._pinnedPath;
  }

  /** Fresh kernel info (a detached link reports ifindex 0). */
  info(): LinkInfo {
    return linkInfoByFd(this._fd);
  }

  pin(path: string): void {
    objPin(this._fd, path, `tcx ${this.direction} link ${this.id} on ifindex ${this.ifindex}`);
    this._pinnedPath = path;
  }

  unpin(): void {
    unpinPath(this._pinnedPath, `tcx link ${this.id}`);
    this._pinnedPath = undefined;
  }

  /** Swaps in `prog` atomically (BPF_LINK_UPDATE). */
  update(prog: Program): void {
    updateLinkFd(this._fd, prog, `tcx ${this.direction} link ${this.id} on ifindex ${this.ifindex}`);
    this._programId = prog.id;
  }

  /** Detaches from the hook (a link whose device is already gone counts as detached), unpins, closes. */
  detach(): void {
    if (this._fd >= 0) {
      const rc = ffi().bpf_link_detach(this._fd);
      if (rc !== 0 && rc !== -ENOLINK && rc !== -ENOENT && rc !== -ENODEV) {
        throw libbpfError(`detach tcx ${this.direction} link ${this.id} from ifindex ${this.ifindex}`, rc);
      }
    }
    this.unpin();
    this.close();
  }

  close(): void {
    closeFd(this._fd);
    this._fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Attaches `prog` (a sched_cls program) to a device's tc hook as a tcx link;
 * it runs after links already there. Throws NotSupportedError before Linux
 * 6.6, SyscallError otherwise ("attach tcx ingress to ifindex 12: create
 * link: EPERM"). `ifname` only makes messages readable.
 */
export function attachTcx(prog: Program, ifindex: number, direction: TcDirection, opts: { ifname?: string } = {}): TcxLink {
  return TcxLink.attach(prog, ifindex, direction, opts);
}

/** Ids of the programs attached to a device's tcx hook, in run order (BPF_PROG_QUERY). */
export function listTcxPrograms(ifindex: number, direction: TcDirection): number[] {
  const type = direction === 'ingress' ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS;
  const flags = new Uint32Array(1);
  let ids = new Uint32Array(64);
  const count = new Uint32Array(1);
  for (let attempt = 0; attempt < 4; attempt++) {
    count[0] = ids.length;
    const rc = ffi().bpf_prog_query(ifindex, type, 0, flags, ids, count);
    if (rc === 0) return Array.from(ids.subarray(0, count[0]!));
    // ENOSPC: more programs than room; count now says how many there are.
    if (rc === -28 && count[0]! > ids.length) {
      ids = new Uint32Array(count[0]! + 16);
      continue;
    }
    if (rc === -EINVAL && !probeTcx()) throw notSupported('tcx');
    throw libbpfError(`query tcx ${direction} programs of ifindex ${ifindex}`, rc);
  }
  throw new SyscallError(`query tcx ${direction} programs of ifindex ${ifindex}: the list kept growing`, 11);
}

/** BPF_LINK_UPDATE on a link fd. */
export function updateLinkFd(fd: number, prog: Program, what: string): void {
  const rc = ffi().bpf_link_update(fd, prog.fd, null);
  if (rc !== 0) throw libbpfError(`update ${what} to program ${prog.label()}`, rc);
}

/** "veth0 (ifindex 12)" or "ifindex 12". */
export function device(ifindex: number, ifname?: string): string {
  return ifname ? `${ifname} (ifindex ${ifindex})` : `ifindex ${ifindex}`;
}

/** Unlinks a pin path, ignoring one that is already gone. */
export function unpinPath(path: string | undefined, what: string): void {
  if (path === undefined) return;
  try {
    unlinkSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ENOENT') throw new SyscallError(`unpin ${what} from ${path}`, -(e.errno ?? -5), { cause: err });
  }
}
