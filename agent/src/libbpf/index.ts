/**
 * podnet's libbpf bindings: Debian's libbpf.so.1 (1.1) called through koffi,
 * shaped after cilium/ebpf. A BpfObject is first a parsed spec (inspect maps
 * and programs, set `volatile const` values, resize maps) and after load() a
 * set of live handles: BpfMap (element, batch and per-CPU operations over
 * Buffers, typed views through codecs, pinning), Program (pinning,
 * BPF_PROG_TEST_RUN) and RingBuffer (timer-driven, never blocks). Programs
 * attach through one module per kind: tcx links (link-tcx.ts), XDP links
 * (link-xdp.ts), legacy clsact filters (link-tc.ts) and cgroup links
 * (link-cgroup.ts); every kind can be pinned and re-adopted with
 * openPinnedLink(). Iterators run with runIterator() (iter.ts). Feature probes run once
 * and turn a kernel's EINVAL into NotSupportedError ("needs Linux >= X").
 * Failing calls throw SyscallError "verb object: ERRNO", a refused program
 * VerifierError with the verifier's full log. libbpf's own messages are
 * captured (warnings are quoted in errors, the rest goes to an optional
 * logger, see setLibbpfLogger) instead of reaching stderr. Only this folder
 * (ffi.ts) touches koffi.
 */
export {
  array,
  be16,
  be32,
  bool,
  bytes,
  cstring,
  paddedString,
  encodeToBuffer,
  i32,
  ipv4,
  lpmKey,
  mac,
  parseIpv4,
  struct,
  u16,
  u32,
  u64,
  u8,
  type Codec,
  type CodecValue,
  type FieldSpec,
  type StructValue,
} from './codec.js';
export { closeFd, mallocTrim, setLibbpfLogger } from './ffi.js';
export {
  linkInfoByFd,
  mapInfoByFd,
  objectKind,
  objGet,
  programInfoByFd,
  type LinkInfo,
  type MapInfo,
  type ObjectKind,
  type ProgramInfo,
} from './info.js';
export { linkInfo, listLinks, openPinnedLink, updateLink, type Link, type LinkKind } from './link.js';
export { attachCgroup, cgroupAttachType, cgroupId, CgroupLink, listCgroupPrograms, type CgroupHook } from './link-cgroup.js';
export { runIterator } from './iter.js';
export { netnsCookie } from './netns-cookie.js';
export { attachTcLegacy, detachTcLegacy, queryTcLegacy, TcLegacyLink, type TcLegacyOptions } from './link-tc.js';
export { attachTcx, listTcxPrograms, TcxLink, type TcDirection } from './link-tcx.js';
export { attachXdp, xdpQuery, XdpLink, type XdpMode } from './link-xdp.js';
export { BpfMap, type MapCreateOptions, type MapSummary } from './map.js';
export { BpfObject, type ConstantValue, type MapSpec, type ObjectOpenOptions, type ProgramSpec } from './object.js';
export {
  FEATURES,
  mapBatchSupported,
  numPossibleCpus,
  probeProgTestRun,
  probeCgroupLink,
  probeRingbuf,
  probeSockDestroy,
  probeTcx,
  probeXdpLink,
  requireFeature,
  type Feature,
} from './probe.js';
export { Program, type TestRunOptions, type TestRunResult } from './program.js';
export { RingBuffer, type RingBufferOptions } from './ring-buffer.js';
export { TypedMap } from './typed-map.js';
export {
  AttachType,
  attachTypeName,
  BPF_ANY,
  BPF_EXIST,
  BPF_F_LOCK,
  BPF_NOEXIST,
  isPerCpuMapType,
  linkTypeName,
  MapFlags,
  mapTypeId,
  mapTypeName,
  programTypeId,
  programTypeName,
  type LinkType,
  type MapType,
  type ProgramType,
} from './types.js';
