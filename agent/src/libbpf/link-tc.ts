/**
 * Legacy tc attachment: a clsact qdisc plus a direct-action cls_bpf filter
 * (bpf_tc_hook_create + bpf_tc_attach), for kernels without tcx.
 *
 * A filter is not a BPF link and cannot be pinned itself. pin() therefore
 * pins a small frozen record map (name "pn_tc_link") holding ifindex,
 * direction, handle and priority; the filter keeps its program alive on its
 * own. openPinnedLink() reads the record back and confirms with
 * bpf_tc_query that the filter is still there.
 */
import { PodnetError, SyscallError } from '../errors/index.js';
import { libbpfError } from './fail.js';
import { ffi } from './ffi.js';
import { mapInfoByFd, objPin } from './info.js';
import type { Link } from './link.js';
import { device, unpinPath, type TcDirection } from './link-tcx.js';
import { BpfMap } from './map.js';
import type { Program } from './program.js';
import { ENOENT, ENODEV, EEXIST, EINVAL } from '../errors/errno.js';

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;
const RECORD_NAME = 'pn_tc_link';
const RECORD_MAGIC = 0x50_4e_54_43; // "PNTC"
const RECORD_SIZE = 24;

/** Options of attachTcLegacy. */
export interface TcLegacyOptions {
  /** Filter priority (1..65535); default 1. */
  priority?: number;
  /** Filter handle; default 1. */
  handle?: number;
  /** Replace a filter already at this handle/priority instead of failing with EEXIST. */
  replace?: boolean;
  /** Device name, only for messages. */
  ifname?: string;
}

/** A direct-action cls_bpf filter on a device's clsact qdisc. */
export class TcLegacyLink implements Link {
  readonly kind = 'tc' as const;
  readonly ifindex: number;
  readonly direction: TcDirection;
  readonly handle: number;
  readonly priority: number;
  readonly id = undefined;
  private _programId: number;
  private _pinnedPath: string | undefined;

  private constructor(ifindex: number, direction: TcDirection, handle: number, priority: number, programId: number, pinnedPath?: string) {
    this.ifindex = ifindex;
    this.direction = direction;
    this.handle = handle;
    this.priority = priority;
    this._programId = programId;
    this._pinnedPath = pinnedPath;
  }

  /** See attachTcLegacy(). */
  static attach(prog: Program, ifindex: number, direction: TcDirection, opts: TcLegacyOptions = {}): TcLegacyLink {
    const what = `attach tc ${direction} to ${device(ifindex, opts.ifname)}`;
    const priority = opts.priority ?? 1;
    const handle = opts.handle ?? 1;
    if (!Number.isInteger(priority) || priority < 1 || priority > 0xffff) throw new RangeError(`${what}: priority ${priority} is not in 1..65535`);
    const n = ffi();
    const hook = tcHook(ifindex, direction);
    const hrc = n.bpf_tc_hook_create(hook);
    if (hrc !== 0 && hrc !== -EEXIST) throw libbpfError(`${what}: create clsact qdisc`, hrc);
    const o = tcOpts(prog.fd, opts.replace ? BPF_TC_F_REPLACE : 0, handle, priority);
    const rc = n.bpf_tc_attach(hook, o);
    if (rc !== 0) throw libbpfError(`${what}: add filter`, rc);
    return new TcLegacyLink(ifindex, direction, o.readUInt32LE(20), o.readUInt32LE(24), o.readUInt32LE(16));
  }

  /** Id of the program the filter runs (as of attach, open or the last update()). */
  get programId(): number {
    return this._programId;
  }

  /** Re-adopts a filter from a pinned record map fd (the fd stays the caller's). */
  static fromRecord(fd: number, path: string): TcLegacyLink {
    const rec = Buffer.alloc(RECORD_SIZE);
    const rc = ffi().bpf_map_lookup_elem(fd, Buffer.alloc(4), rec);
    if (rc !== 0) throw libbpfError(`open pinned link ${path}: read tc record`, rc);
    if (rec.readUInt32LE(0) !== RECORD_MAGIC) throw new PodnetError('INVALID_ARGUMENT', `open pinned link ${path}: the tc record is not podnet's`);
    const ifindex = rec.readUInt32LE(4);
    const direction: TcDirection = rec.readUInt32LE(8) === BPF_TC_EGRESS ? 'egress' : 'ingress';
    const handle = rec.readUInt32LE(12);
    const priority = rec.readUInt32LE(16);
    const progId = queryFilter(ifindex, direction, handle, priority);
    if (progId === undefined) {
      throw new SyscallError(`open pinned link ${path}: tc ${direction} filter handle ${handle} priority ${priority} on ifindex ${ifindex} is gone`, ENOENT);
    }
    return new TcLegacyLink(ifindex, direction, handle, priority, progId, path);
  }

  /** Wraps an existing filter found some other way (e.g. after a restart, from known handle/priority). Throws ENOENT when it is not there. */
  static open(ifindex: number, direction: TcDirection, handle: number, priority: number): TcLegacyLink {
    const progId = queryFilter(ifindex, direction, handle, priority);
    if (progId === undefined) throw new SyscallError(`open tc ${direction} filter handle ${handle} priority ${priority} on ifindex ${ifindex}`, ENOENT);
    return new TcLegacyLink(ifindex, direction, handle, priority, progId);
  }

  get pinnedPath(): string | undefined {
    return this._pinnedPath;
  }

  /** Id of the program the filter runs now, or undefined when the filter is gone (bpf_tc_query). */
  query(): number | undefined {
    return queryFilter(this.ifindex, this.direction, this.handle, this.priority);
  }

  /** Replaces the filter's program in place (same handle and priority, BPF_TC_F_REPLACE). */
  update(prog: Program): void {
    const o = tcOpts(prog.fd, BPF_TC_F_REPLACE, this.handle, this.priority);
    const rc = ffi().bpf_tc_attach(tcHook(this.ifindex, this.direction), o);
    if (rc !== 0) throw libbpfError(`update tc ${this.direction} filter handle ${this.handle} priority ${this.priority} on ifindex ${this.ifindex} to program ${prog.label()}`, rc);
    this._programId = o.readUInt32LE(16);
  }

  /** Pins a frozen record of this filter at `path` (see the file comment). Throws SyscallError (EEXIST when the path is taken). */
  pin(path: string): void {
    const rec = Buffer.alloc(RECORD_SIZE);
    rec.writeUInt32LE(RECORD_MAGIC, 0);
    rec.writeUInt32LE(this.ifindex, 4);
    rec.writeUInt32LE(this.direction === 'egress' ? BPF_TC_EGRESS : BPF_TC_INGRESS, 8);
    rec.writeUInt32LE(this.handle, 12);
    rec.writeUInt32LE(this.priority, 16);
    rec.writeUInt32LE(this.programId, 20);
    using map = BpfMap.create({ type: 'array', name: RECORD_NAME, keySize: 4, valueSize: RECORD_SIZE, maxEntries: 1 });
    map.update(Buffer.alloc(4), rec);
    const rc = ffi().bpf_map_freeze(map.fd);
    if (rc !== 0) throw libbpfError(`pin tc filter record at ${path}: freeze`, rc);
    objPin(map.fd, path, `tc ${this.direction} filter record for ifindex ${this.ifindex}`);
    this._pinnedPath = path;
  }

  unpin(): void {
    unpinPath(this._pinnedPath, `tc filter record`);
    this._pinnedPath = undefined;
  }

  /** Deletes the filter (one already gone, or whose device is gone, counts as deleted) and unpins. The clsact qdisc stays. */
  detach(): void {
    detachTcLegacy(this.ifindex, this.direction, { handle: this.handle, priority: this.priority });
    this.unpin();
  }

  /** Nothing to release: a filter holds no fd in this process. */
  close(): void {}

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Attaches `prog` as a direct-action cls_bpf filter on the device's clsact
 * qdisc, creating the qdisc when missing (EEXIST from that is normal).
 * Throws SyscallError ("attach tc ingress to ifindex 12: add filter: EEXIST").
 */
export function attachTcLegacy(prog: Program, ifindex: number, direction: TcDirection, opts: TcLegacyOptions = {}): TcLegacyLink {
  return TcLegacyLink.attach(prog, ifindex, direction, opts);
}

/**
 * Deletes the cls_bpf filter at handle/priority (default 1/1) from a
 * device's clsact hook (bpf_tc_detach). Returns false when it was already
 * gone, or the device is. Throws SyscallError on other failures.
 */
export function detachTcLegacy(ifindex: number, direction: TcDirection, opts: { handle?: number; priority?: number } = {}): boolean {
  const { handle, priority } = filterId(opts, `detach tc ${direction} filter from ifindex ${ifindex}`);
  const rc = ffi().bpf_tc_detach(tcHook(ifindex, direction), tcOpts(0, 0, handle, priority));
  if (rc === 0) return true;
  if (isAbsent(rc)) return false;
  throw libbpfError(`detach tc ${direction} filter handle ${handle} priority ${priority} from ifindex ${ifindex}`, rc);
}

/** Id of the program the cls_bpf filter at handle/priority (default 1/1) runs, or undefined when there is none (bpf_tc_query). */
export function queryTcLegacy(ifindex: number, direction: TcDirection, opts: { handle?: number; priority?: number } = {}): number | undefined {
  const { handle, priority } = filterId(opts, `query tc ${direction} filter on ifindex ${ifindex}`);
  return queryFilter(ifindex, direction, handle, priority);
}

// bpf_tc_detach/query need both set; libbpf's EINVAL for a zero would read as "no filter".
function filterId(opts: { handle?: number; priority?: number }, what: string): { handle: number; priority: number } {
  const handle = opts.handle ?? 1;
  const priority = opts.priority ?? 1;
  if (!Number.isInteger(handle) || handle < 1 || handle > 0xffffffff) throw new RangeError(`${what}: handle ${handle} is not in 1..2^32-1`);
  if (!Number.isInteger(priority) || priority < 1 || priority > 0xffff) throw new RangeError(`${what}: priority ${priority} is not in 1..65535`);
  return { handle, priority };
}

/** True when a pinned map fd is a tc filter record written by TcLegacyLink.pin(). */
export function isTcLinkRecord(fd: number): boolean {
  const info = mapInfoByFd(fd);
  return info.name === RECORD_NAME && info.keySize === 4 && info.valueSize === RECORD_SIZE && info.type === 'array';
}

// struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; } : 24 bytes
function tcHook(ifindex: number, direction: TcDirection): Buffer {
  const h = Buffer.alloc(24);
  h.writeBigUInt64LE(24n, 0);
  h.writeInt32LE(ifindex, 8);
  h.writeUInt32LE(direction === 'egress' ? BPF_TC_EGRESS : BPF_TC_INGRESS, 12);
  return h;
}

// struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; } : 32 bytes
function tcOpts(progFd: number, flags: number, handle: number, priority: number): Buffer {
  const o = Buffer.alloc(32);
  o.writeBigUInt64LE(32n, 0);
  o.writeInt32LE(progFd, 8);
  o.writeUInt32LE(flags, 12);
  o.writeUInt32LE(handle >>> 0, 20);
  o.writeUInt32LE(priority, 24);
  return o;
}

function queryFilter(ifindex: number, direction: TcDirection, handle: number, priority: number): number | undefined {
  const o = tcOpts(0, 0, handle, priority);
  const rc = ffi().bpf_tc_query(tcHook(ifindex, direction), o);
  if (rc === 0) return o.readUInt32LE(16);
  if (isAbsent(rc)) return undefined;
  throw libbpfError(`query tc ${direction} filter handle ${handle} priority ${priority} on ifindex ${ifindex}`, rc);
}

/**
 * Errors that mean "no such filter". Besides ENOENT (no filter at that
 * priority) and ENODEV (no device), the kernel answers EINVAL when the
 * device has no clsact qdisc or the hook never had a filter (no chain 0);
 * the requests built here are otherwise always well-formed.
 */
function isAbsent(rc: number): boolean {
  return rc === -ENOENT || rc === -ENODEV || rc === -EINVAL;
}
