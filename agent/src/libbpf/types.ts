/**
 * Kernel enum values (BPF_MAP_TYPE_*, BPF_PROG_TYPE_*, BPF_LINK_TYPE_*,
 * attach types) and the lower-case names podnet uses for them. The numbers
 * are UAPI and never change; the tables carry the kernel's newer values too,
 * because libbpf 1.1's headers stop at Linux 6.1.
 */

const MAP_TYPES = [
  'unspec', 'hash', 'array', 'prog_array', 'perf_event_array', 'percpu_hash', 'percpu_array',
  'stack_trace', 'cgroup_array', 'lru_hash', 'lru_percpu_hash', 'lpm_trie', 'array_of_maps',
  'hash_of_maps', 'devmap', 'sockmap', 'cpumap', 'xskmap', 'sockhash', 'cgroup_storage',
  'reuseport_sockarray', 'percpu_cgroup_storage', 'queue', 'stack', 'sk_storage', 'devmap_hash',
  'struct_ops', 'ringbuf', 'inode_storage', 'task_storage', 'bloom_filter', 'user_ringbuf',
  'cgrp_storage', 'arena',
] as const;

/** A BPF map type by name (BPF_MAP_TYPE_HASH is 'hash'); 'unknown' for numbers newer than this table. */
export type MapType = (typeof MAP_TYPES)[number] | 'unknown';

/** BPF_MAP_TYPE_* number of a map type name. Throws on 'unknown' or a misspelt name. */
export function mapTypeId(type: MapType): number {
  const i = (MAP_TYPES as readonly string[]).indexOf(type);
  if (i < 0) throw new TypeError(`map type ${JSON.stringify(type)} is not a known BPF map type`);
  return i;
}

/** Name of a BPF_MAP_TYPE_* number; 'unknown' when the kernel is newer than this table. */
export function mapTypeName(id: number): MapType {
  return MAP_TYPES[id] ?? 'unknown';
}

/** Map types whose values are stored once per possible CPU. */
export function isPerCpuMapType(type: MapType): boolean {
  return type === 'percpu_hash' || type === 'percpu_array' || type === 'lru_percpu_hash' || type === 'percpu_cgroup_storage';
}

const PROG_TYPES = [
  'unspec', 'socket_filter', 'kprobe', 'sched_cls', 'sched_act', 'tracepoint', 'xdp', 'perf_event',
  'cgroup_skb', 'cgroup_sock', 'lwt_in', 'lwt_out', 'lwt_xmit', 'sock_ops', 'sk_skb',
  'cgroup_device', 'sk_msg', 'raw_tracepoint', 'cgroup_sock_addr', 'lwt_seg6local', 'lirc_mode2',
  'sk_reuseport', 'flow_dissector', 'cgroup_sysctl', 'raw_tracepoint_writable', 'cgroup_sockopt',
  'tracing', 'struct_ops', 'ext', 'lsm', 'sk_lookup', 'syscall', 'netfilter',
] as const;

/** A BPF program type by name (BPF_PROG_TYPE_SCHED_CLS is 'sched_cls'). */
export type ProgramType = (typeof PROG_TYPES)[number] | 'unknown';

/** Name of a BPF_PROG_TYPE_* number; 'unknown' when the kernel is newer than this table. */
export function programTypeName(id: number): ProgramType {
  return PROG_TYPES[id] ?? 'unknown';
}

/** BPF_PROG_TYPE_* number of a program type name. Throws on 'unknown' or a misspelt name. */
export function programTypeId(type: ProgramType): number {
  const i = (PROG_TYPES as readonly string[]).indexOf(type);
  if (i < 0) throw new TypeError(`program type ${JSON.stringify(type)} is not a known BPF program type`);
  return i;
}

const LINK_TYPES = [
  'unspec', 'raw_tracepoint', 'tracing', 'cgroup', 'iter', 'netns', 'xdp', 'perf_event',
  'kprobe_multi', 'struct_ops', 'netfilter', 'tcx', 'uprobe_multi', 'netkit', 'sockmap',
] as const;

/** A BPF link type by name (BPF_LINK_TYPE_TCX is 'tcx'). */
export type LinkType = (typeof LINK_TYPES)[number] | 'unknown';

/** Name of a BPF_LINK_TYPE_* number; 'unknown' when the kernel is newer than this table. */
export function linkTypeName(id: number): LinkType {
  return LINK_TYPES[id] ?? 'unknown';
}

/** The attach types podnet uses (enum bpf_attach_type). */
export const AttachType = {
  CGROUP_INET4_CONNECT: 10,
  CGROUP_UDP4_SENDMSG: 14,
  CGROUP_UDP4_RECVMSG: 19,
  TRACE_ITER: 28,
  CGROUP_INET4_GETPEERNAME: 29,
  XDP: 37,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
} as const;

/** Name of an attach type this folder knows; `attach_type <n>` otherwise. */
export function attachTypeName(id: number): string {
  switch (id) {
    case AttachType.CGROUP_INET4_CONNECT: return 'cgroup_inet4_connect';
    case AttachType.CGROUP_UDP4_SENDMSG: return 'cgroup_udp4_sendmsg';
    case AttachType.CGROUP_UDP4_RECVMSG: return 'cgroup_udp4_recvmsg';
    case AttachType.TRACE_ITER: return 'trace_iter';
    case AttachType.CGROUP_INET4_GETPEERNAME: return 'cgroup_inet4_getpeername';
    case AttachType.XDP: return 'xdp';
    case AttachType.TCX_INGRESS: return 'tcx_ingress';
    case AttachType.TCX_EGRESS: return 'tcx_egress';
    default: return `attach_type ${id}`;
  }
}

/** Update flag: create or replace. */
export const BPF_ANY = 0n;
/** Update flag: create only; EEXIST when the key is present. */
export const BPF_NOEXIST = 1n;
/** Update flag: replace only; ENOENT when the key is absent. */
export const BPF_EXIST = 2n;
/** Update flag: take the element's spin lock while writing. */
export const BPF_F_LOCK = 4n;

/** Map creation flags (map_flags) that callers commonly need. */
export const MapFlags = {
  /** Hash maps: allocate elements on demand instead of up front. */
  NO_PREALLOC: 1,
  /** LRU maps: one LRU list per CPU. */
  NO_COMMON_LRU: 2,
  /** Read-only from user space. */
  RDONLY: 1 << 3,
  /** Write-only from user space. */
  WRONLY: 1 << 4,
  /** Read-only from BPF programs. */
  RDONLY_PROG: 1 << 7,
  /** Write-only from BPF programs. */
  WRONLY_PROG: 1 << 8,
  /** Array maps: allow mmap() of the values. */
  MMAPABLE: 1 << 10,
} as const;
