/**
 * BPF_OBJ_GET_INFO_BY_FD for maps, programs and links, object ids, and
 * bpffs pins. Struct layouts follow linux/bpf.h; the buffers are larger than
 * the structs libbpf 1.1 knows so a newer kernel can fill its newer fields
 * (it checks that bytes it does not know are zero, which they are).
 */
import { readFileSync } from 'node:fs';
import { SyscallError } from '../errors/index.js';
import { libbpfError } from './fail.js';
import { closeFd, ffi } from './ffi.js';
import { linkTypeName, mapTypeName, programTypeName, type LinkType, type MapType, type ProgramType } from './types.js';
import { ENOENT } from '../errors/errno.js';

/** What the kernel reports about a map (struct bpf_map_info). */
export interface MapInfo {
  id: number;
  name: string;
  type: MapType;
  typeId: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
}

/** What the kernel reports about a program (struct bpf_prog_info). */
export interface ProgramInfo {
  id: number;
  /** Kernel name, at most 15 characters. */
  name: string;
  type: ProgramType;
  typeId: number;
  /** Hex of the 8-byte program tag (a hash of the instructions). */
  tag: string;
  /** Nanoseconds since boot at load time. */
  loadTimeNs: bigint;
  xlatedLength: number;
  jitedLength: number;
  btfId: number;
}

/** What the kernel reports about a link (struct bpf_link_info); the per-kind union decoded for the kinds podnet makes. */
export interface LinkInfo {
  id: number;
  type: LinkType;
  typeId: number;
  programId: number;
  /** tcx, netkit and xdp links: the device they hook. */
  ifindex?: number;
  /** tcx and netkit links: BPF_TCX_INGRESS (46) or BPF_TCX_EGRESS (47); cgroup links: their attach type. */
  attachType?: number;
  /** cgroup links: the cgroup's id (the inode number of its cgroup v2 directory); 0 once the cgroup is gone. */
  cgroupId?: bigint;
}

function infoByFd(fd: number, size: number, what: string): Buffer {
  const buf = Buffer.alloc(size);
  const len = new Uint32Array([size]);
  const rc = ffi().bpf_obj_get_info_by_fd(fd, buf, len);
  if (rc < 0) throw libbpfError(`get info of ${what} fd ${fd}`, rc);
  return buf;
}

function cName(buf: Buffer, off: number, max: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 || end > off + max ? off + max : end);
}

/** Reads bpf_map_info for a map fd. Throws SyscallError (EINVAL when the fd is not a map). */
export function mapInfoByFd(fd: number): MapInfo {
  const b = infoByFd(fd, 128, 'map');
  const typeId = b.readUInt32LE(0);
  return {
    typeId,
    type: mapTypeName(typeId),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cName(b, 24, 16),
    btfId: b.readUInt32LE(64),
  };
}

/** Reads bpf_prog_info for a program fd. Throws SyscallError. */
export function programInfoByFd(fd: number): ProgramInfo {
  const b = infoByFd(fd, 256, 'program');
  const typeId = b.readUInt32LE(0);
  return {
    typeId,
    type: programTypeName(typeId),
    id: b.readUInt32LE(4),
    tag: b.toString('hex', 8, 16),
    jitedLength: b.readUInt32LE(16),
    xlatedLength: b.readUInt32LE(20),
    loadTimeNs: b.readBigUInt64LE(40),
    name: cName(b, 64, 16),
    btfId: b.readUInt32LE(128),
  };
}

/** Reads bpf_link_info for a link fd. Throws SyscallError. */
export function linkInfoByFd(fd: number): LinkInfo {
  const b = infoByFd(fd, 256, 'link');
  const typeId = b.readUInt32LE(0);
  const type = linkTypeName(typeId);
  const info: LinkInfo = { typeId, type, id: b.readUInt32LE(4), programId: b.readUInt32LE(8) };
  // The union starts at offset 16 (it holds 64-bit members).
  if (type === 'xdp') info.ifindex = b.readUInt32LE(16);
  if (type === 'cgroup') {
    info.cgroupId = b.readBigUInt64LE(16);
    info.attachType = b.readUInt32LE(24);
  }
  if (type === 'tcx' || type === 'netkit') {
    info.ifindex = b.readUInt32LE(16);
    info.attachType = b.readUInt32LE(20);
  }
  return info;
}

/** The kind of BPF object behind an fd, read from /proc/self/fdinfo. */
export type ObjectKind = 'map' | 'program' | 'link' | 'btf' | 'unknown';

/** Tells maps, programs and links apart (each bpf fd's fdinfo names its own type field). */
export function objectKind(fd: number): ObjectKind {
  let text: string;
  try {
    text = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    return 'unknown';
  }
  if (/^link_type:/m.test(text)) return 'link';
  if (/^prog_type:/m.test(text)) return 'program';
  if (/^map_type:/m.test(text)) return 'map';
  if (/^btf_id:/m.test(text)) return 'btf';
  return 'unknown';
}

/** Opens a pinned BPF object (bpf_obj_get) and returns its fd; the caller owns it. Throws SyscallError. */
export function objGet(path: string): number {
  const fd = ffi().bpf_obj_get(path);
  if (fd < 0) throw libbpfError(`open pinned object ${path}`, fd);
  return fd;
}

/** Pins an fd at a bpffs path (bpf_obj_pin). Throws SyscallError. */
export function objPin(fd: number, path: string, what: string): void {
  const rc = ffi().bpf_obj_pin(fd, path);
  if (rc < 0) throw libbpfError(`pin ${what} at ${path}`, rc);
}

type NextId = (start: number, next: Uint32Array) => number;

/** Walks the kernel's ids of one object kind. Stops at ENOENT; throws SyscallError on other errors. */
export function* walkIds(kind: 'map' | 'program' | 'link'): Generator<number> {
  const n = ffi();
  const next: NextId = kind === 'map' ? n.bpf_map_get_next_id : kind === 'program' ? n.bpf_prog_get_next_id : n.bpf_link_get_next_id;
  const out = new Uint32Array(1);
  let id = 0;
  for (;;) {
    const rc = next(id, out);
    if (rc < 0) {
      if (rc === -ENOENT) return;
      throw libbpfError(`list ${kind} ids after ${id}`, rc);
    }
    id = out[0]!;
    yield id;
  }
}

/** An fd for an object id, or undefined when the id is gone (ENOENT: it was freed meanwhile). */
export function fdById(kind: 'map' | 'program' | 'link', id: number): number | undefined {
  const n = ffi();
  const fd = kind === 'map' ? n.bpf_map_get_fd_by_id(id) : kind === 'program' ? n.bpf_prog_get_fd_by_id(id) : n.bpf_link_get_fd_by_id(id);
  if (fd >= 0) return fd;
  if (fd === -ENOENT) return undefined;
  throw libbpfError(`open ${kind} id ${id}`, fd);
}

/**
 * Reads `read(fd)` for every object of a kind in the kernel (walks
 * BPF_*_GET_NEXT_ID); objects freed during the walk are skipped.
 */
export function listObjects<T>(kind: 'map' | 'program' | 'link', read: (fd: number) => T): T[] {
  const out: T[] = [];
  for (const id of walkIds(kind)) {
    const fd = fdById(kind, id);
    if (fd === undefined) continue;
    try {
      out.push(read(fd));
    } finally {
      closeFd(fd);
    }
  }
  return out;
}

/** Like fdById but an absent id is an ENOENT SyscallError. */
export function fdByIdOrThrow(kind: 'map' | 'program' | 'link', id: number): number {
  const fd = fdById(kind, id);
  if (fd === undefined) throw new SyscallError(`open ${kind} id ${id}`, 2);
  return fd;
}
