/**
 * cgroup attachments as BPF links (Linux 5.7): a cgroup_sock_addr program
 * (connect4, sendmsg4, recvmsg4, getpeername4) on a cgroup v2 directory. A
 * link runs beside other programs on the same hook (multi-attach), can be
 * pinned so it outlives the process, and is swapped atomically with
 * BPF_LINK_UPDATE.
 */
import { closeSync, constants, openSync, statSync } from 'node:fs';
import { SyscallError } from '../errors/index.js';
import { libbpfError } from './fail.js';
import { closeFd, ffi } from './ffi.js';
import { linkInfoByFd, objPin, type LinkInfo } from './info.js';
import type { Link } from './link.js';
import { unpinPath, updateLinkFd } from './link-tcx.js';
import { notSupported, probeCgroupLink } from './probe.js';
import type { Program } from './program.js';
import { AttachType, attachTypeName } from './types.js';
import { EINVAL, ENOENT, ENOLINK } from '../errors/errno.js';

/** The cgroup hooks podnet attaches to, by their libbpf section names. */
export type CgroupHook = 'connect4' | 'sendmsg4' | 'recvmsg4' | 'getpeername4';

const HOOK_ATTACH_TYPES: Readonly<Record<CgroupHook, number>> = Object.freeze({
  connect4: AttachType.CGROUP_INET4_CONNECT,
  sendmsg4: AttachType.CGROUP_UDP4_SENDMSG,
  recvmsg4: AttachType.CGROUP_UDP4_RECVMSG,
  getpeername4: AttachType.CGROUP_INET4_GETPEERNAME,
});

/** The kernel attach type of a cgroup hook. */
export function cgroupAttachType(hook: CgroupHook): number {
  return HOOK_ATTACH_TYPES[hook];
}

/** The cgroup id of a cgroup v2 directory: its inode number. Throws SyscallError when it is missing. */
export function cgroupId(path: string): bigint {
  try {
    return statSync(path, { bigint: true }).ino;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SyscallError(`read cgroup ${path}`, e.errno !== undefined ? -e.errno : ENOENT, { cause: err });
  }
}

/** A program attached to a cgroup hook through a link. ifindex is always 0: it hooks no device. */
export class CgroupLink implements Link {
  readonly kind = 'cgroup' as const;
  readonly ifindex = 0;
  readonly id: number;
  /** The kernel attach type (BPF_CGROUP_INET4_CONNECT, ...). */
  readonly attachType: number;
  /** The cgroup's id as the link reports it (0 once the cgroup is gone). */
  readonly cgroupId: bigint;
  private _programId: number;
  private _fd: number;
  private _pinnedPath: string | undefined;

  private constructor(fd: number, info: LinkInfo, pinnedPath?: string) {
    this._fd = fd;
    this.id = info.id;
    this._programId = info.programId;
    this.attachType = info.attachType ?? 0;
    this.cgroupId = info.cgroupId ?? 0n;
    this._pinnedPath = pinnedPath;
  }

  /** Wraps a cgroup link fd (ownership passes to the link). */
  static fromFd(fd: number, info: LinkInfo, pinnedPath?: string): CgroupLink {
    return new CgroupLink(fd, info, pinnedPath);
  }

  /** See attachCgroup(). */
  static attach(prog: Program, cgroupPath: string, hook: CgroupHook): CgroupLink {
    let cg: number;
    try {
      cg = openSync(cgroupPath, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new SyscallError(`attach cgroup/${hook} to ${cgroupPath}: open the cgroup`, e.errno !== undefined ? -e.errno : ENOENT, { cause: err });
    }
    let fd: number;
    try {
      fd = ffi().bpf_link_create(prog.fd, cg, cgroupAttachType(hook), null);
    } finally {
      closeSync(cg);
    }
    if (fd < 0) {
      if (fd === -EINVAL && !probeCgroupLink()) throw notSupported('cgroupLink');
      throw libbpfError(`attach cgroup/${hook} program ${prog.label()} to ${cgroupPath}: create link`, fd);
    }
    try {
      return new CgroupLink(fd, linkInfoByFd(fd));
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

  /** Fresh kernel info. */
  info(): LinkInfo {
    return linkInfoByFd(this._fd);
  }

  pin(path: string): void {
    objPin(this._fd, path, `${this.label()}`);
    this._pinnedPath = path;
  }

  unpin(): void {
    unpinPath(this._pinnedPath, `cgroup link ${this.id}`);
    this._pinnedPath = undefined;
  }

  /** Swaps in `prog` atomically (BPF_LINK_UPDATE): no connect() sees the hook empty. */
  update(prog: Program): void {
    updateLinkFd(this._fd, prog, this.label());
    this._programId = prog.id;
  }

  /** Detaches from the cgroup (a cgroup already gone counts as detached), unpins, closes. */
  detach(): void {
    if (this._fd >= 0) {
      const rc = ffi().bpf_link_detach(this._fd);
      if (rc !== 0 && rc !== -ENOLINK && rc !== -ENOENT) throw libbpfError(`detach ${this.label()}`, rc);
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

  private label(): string {
    return `cgroup link ${this.id} (${attachTypeName(this.attachType)}) on cgroup ${this.cgroupId}`;
  }
}

/**
 * Attaches a cgroup_sock_addr program to a hook of the cgroup v2 directory
 * `cgroupPath` through a link; it runs for every process in that cgroup and
 * below, beside programs already there. Throws NotSupportedError before
 * Linux 5.7, SyscallError otherwise ("attach cgroup/connect4 program
 * sock_connect4 (id 7) to /sys/fs/cgroup: create link: EINVAL" when the
 * program's expected attach type is another hook).
 */
export function attachCgroup(prog: Program, cgroupPath: string, hook: CgroupHook): CgroupLink {
  return CgroupLink.attach(prog, cgroupPath, hook);
}

/** Ids of the programs attached to a hook of a cgroup (BPF_PROG_QUERY; links and legacy attachments alike). */
export function listCgroupPrograms(cgroupPath: string, hook: CgroupHook): number[] {
  const cg = openSync(cgroupPath, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const flags = new Uint32Array(1);
    const ids = new Uint32Array(256);
    const count = new Uint32Array([ids.length]);
    const rc = ffi().bpf_prog_query(cg, cgroupAttachType(hook), 0, flags, ids, count);
    if (rc !== 0) throw libbpfError(`query cgroup/${hook} programs of ${cgroupPath}`, rc);
    return Array.from(ids.subarray(0, count[0]!));
  } finally {
    closeSync(cg);
  }
}
