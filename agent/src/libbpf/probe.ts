/**
 * Feature probes. Each asks the running kernel once, with no lasting side
 * effect, and caches the answer. Callers turn a false answer into
 * NotSupportedError (see requireFeature) instead of surfacing a bare EINVAL.
 */
import { NotSupportedError, SyscallError } from '../errors/index.js';
import { libbpfError } from './fail.js';
import { closeFd, ffi } from './ffi.js';
import { AttachType, mapTypeId, programTypeId, type ProgramType } from './types.js';
import { ENODEV, EINVAL, ENOENT, EOPNOTSUPP, ENOTSUPP } from '../errors/errno.js';

/** The features podnet probes for, with the first Linux release that has each. */
export const FEATURES = {
  tcx: { name: 'tcx links (BPF_TCX_INGRESS/EGRESS)', minKernel: '6.6' },
  xdpLink: { name: 'XDP links (BPF_LINK_TYPE_XDP)', minKernel: '5.9' },
  progTestRun: { name: 'BPF_PROG_TEST_RUN for sched_cls programs', minKernel: '4.12' },
  mapBatch: { name: 'batched map operations (BPF_MAP_*_BATCH)', minKernel: '5.6' },
  ringbuf: { name: 'BPF ring buffer maps', minKernel: '5.8' },
  cgroupLink: { name: 'cgroup BPF links (BPF_LINK_TYPE_CGROUP)', minKernel: '5.7' },
  sockDestroy: { name: 'the bpf_sock_destroy kfunc in socket iterators', minKernel: '6.5' },
  netnsCookie: { name: 'network namespace cookies (SO_NETNS_COOKIE)', minKernel: '5.14' },
} as const;

/** A feature key of FEATURES. */
export type Feature = keyof typeof FEATURES;

const cache = new Map<Feature, boolean>();

function cached(f: Feature, probe: () => boolean): boolean {
  let v = cache.get(f);
  if (v === undefined) {
    v = probe();
    cache.set(f, v);
  }
  return v;
}

/** NotSupportedError naming the feature and its minimum kernel. */
export function notSupported(f: Feature, cause?: unknown): NotSupportedError {
  return new NotSupportedError(FEATURES[f].name, FEATURES[f].minKernel, cause === undefined ? undefined : { cause });
}

let cpus: number | undefined;

/** Number of possible CPUs (libbpf_num_possible_cpus): the count of values in a per-CPU map element. */
export function numPossibleCpus(): number {
  if (cpus === undefined) {
    const n = ffi().libbpf_num_possible_cpus();
    if (n <= 0) throw libbpfError('count possible CPUs', n);
    cpus = n;
  }
  return cpus;
}

/**
 * Loads `r0 = retval; exit` as a program of the given type and returns its
 * fd. Only for probes: no maps, no helpers, nothing the verifier could mind.
 */
export function loadTrivialProgram(type: ProgramType, retval: number, name = 'pn_probe'): number {
  const insns = Buffer.alloc(16);
  insns[0] = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0
  insns.writeInt32LE(retval, 4);
  insns[8] = 0x95; // BPF_JMP | BPF_EXIT
  const fd = ffi().bpf_prog_load(programTypeId(type), name, 'GPL', insns, 2, null);
  if (fd < 0) throw libbpfError(`load probe program (${type})`, fd);
  return fd;
}

/** True when the kernel has tcx links (Linux 6.6). Probed by linking to a device that does not exist: ENODEV means the kernel understood the request. */
export function probeTcx(): boolean {
  return cached('tcx', () => {
    const prog = loadTrivialProgram('sched_cls', -1);
    try {
      const rc = ffi().bpf_link_create(prog, 0x7ffffff0, AttachType.TCX_INGRESS, null);
      if (rc >= 0) {
        closeFd(rc);
        return true;
      }
      if (rc === -ENODEV) return true;
      if (rc === -EINVAL) return false;
      throw libbpfError('probe tcx links', rc);
    } finally {
      closeFd(prog);
    }
  });
}

/**
 * True when the kernel has XDP links (Linux 5.9). Looked up in the kernel's
 * BTF (struct bpf_xdp_link), because a link request to a missing device
 * answers EINVAL whether or not the kernel knows XDP links.
 */
export function probeXdpLink(): boolean {
  return cached('xdpLink', () => kernelHasStruct('bpf_xdp_link'));
}

/** True when the kernel has cgroup BPF links (Linux 5.7), looked up in its BTF (struct bpf_cgroup_link). */
export function probeCgroupLink(): boolean {
  return cached('cgroupLink', () => kernelHasStruct('bpf_cgroup_link'));
}

/** True when the kernel has the bpf_sock_destroy kfunc (Linux 6.5), looked up in its BTF. */
export function probeSockDestroy(): boolean {
  return cached('sockDestroy', () => kernelHasFunc('bpf_sock_destroy'));
}

/** True when BPF_PROG_TEST_RUN works for sched_cls programs. */
export function probeProgTestRun(): boolean {
  return cached('progTestRun', () => {
    const prog = loadTrivialProgram('sched_cls', 0);
    try {
      const data = Buffer.alloc(64);
      const opts = { sz: 80, data_in: data, data_out: null, data_size_in: data.length, data_size_out: 0, ctx_in: null, ctx_out: null, ctx_size_in: 0, ctx_size_out: 0, retval: 0, repeat: 1, duration: 0, flags: 0, cpu: 0, batch_size: 0 };
      const rc = ffi().bpf_prog_test_run_opts(prog, opts);
      if (rc === 0) return true;
      if (rc === -EINVAL || rc === -ENOTSUPP || rc === -EOPNOTSUPP) return false;
      throw libbpfError('probe BPF_PROG_TEST_RUN', rc);
    } finally {
      closeFd(prog);
    }
  });
}

/** True when the kernel has BPF_MAP_*_BATCH (Linux 5.6): a batch lookup on an empty hash map answers ENOENT. */
export function mapBatchSupported(): boolean {
  return cached('mapBatch', () => {
    const fd = ffi().bpf_map_create(mapTypeId('hash'), 'pn_probe', 4, 4, 1, null);
    if (fd < 0) throw libbpfError('probe map batch operations: create map', fd);
    try {
      const keys = Buffer.alloc(4);
      const vals = Buffer.alloc(4);
      const token = Buffer.alloc(8);
      const count = new Uint32Array([1]);
      const opts = Buffer.alloc(24);
      opts.writeBigUInt64LE(24n, 0);
      const rc = ffi().bpf_map_lookup_batch(fd, null, token, keys, vals, count, opts);
      if (rc === 0 || rc === -ENOENT) return true;
      if (rc === -EINVAL) return false;
      throw libbpfError('probe map batch operations', rc);
    } finally {
      closeFd(fd);
    }
  });
}

/** True when the kernel has ring buffer maps (Linux 5.8). */
export function probeRingbuf(): boolean {
  return cached('ringbuf', () => {
    const fd = ffi().bpf_map_create(mapTypeId('ringbuf'), 'pn_probe', 0, 0, 4096, null);
    if (fd >= 0) {
      closeFd(fd);
      return true;
    }
    if (fd === -EINVAL) return false;
    throw libbpfError('probe ring buffer maps', fd);
  });
}

/** Throws NotSupportedError when `f` is missing; `cause` is attached (typically the EINVAL that prompted the check). */
export function requireFeature(f: Feature, cause?: unknown): void {
  const probes: Record<Feature, () => boolean> = {
    tcx: probeTcx,
    xdpLink: probeXdpLink,
    progTestRun: probeProgTestRun,
    mapBatch: mapBatchSupported,
    ringbuf: probeRingbuf,
    cgroupLink: probeCgroupLink,
    sockDestroy: probeSockDestroy,
    netnsCookie: () => true, // asked by netnsCookie() itself: ENOPROTOOPT
  };
  if (!probes[f]()) throw notSupported(f, cause);
}

let vmlinuxTypes: ((name: string) => boolean) | undefined;

function kernelHasStruct(name: string): boolean {
  vmlinuxTypes ??= loadVmlinuxLookup();
  return vmlinuxTypes(`struct ${name}`);
}

function kernelHasFunc(name: string): boolean {
  vmlinuxTypes ??= loadVmlinuxLookup();
  return vmlinuxTypes(`func ${name}`);
}

function loadVmlinuxLookup(): (name: string) => boolean {
  const n = ffi();
  const btf = n.btf__load_vmlinux_btf();
  if (btf === null) throw new SyscallError('load kernel BTF (/sys/kernel/btf/vmlinux) to probe features', 2);
  const BTF_KIND_STRUCT = 4;
  const BTF_KIND_FUNC = 12;
  const seen = new Map<string, boolean>();
  // Answer every later question from a small cache, then free the big BTF.
  for (const s of ['bpf_xdp_link', 'tcx_link', 'bpf_cgroup_link']) seen.set(`struct ${s}`, n.btf__find_by_name_kind(btf, s, BTF_KIND_STRUCT) > 0);
  for (const f of ['bpf_sock_destroy']) seen.set(`func ${f}`, n.btf__find_by_name_kind(btf, f, BTF_KIND_FUNC) > 0);
  n.btf__free(btf);
  return (s) => {
    const v = seen.get(s);
    if (v === undefined) throw new Error(`probe kernel BTF: ${s} was not looked up`);
    return v;
  };
}

/** Forgets cached probe answers (tests only). */
export function resetProbeCache(): void {
  cache.clear();
}
