/**
 * The one place that talks to koffi: libbpf.so.1 and the few libc calls the
 * bindings need, declared once on first use. Everything else in this folder
 * calls these typed wrappers and never sees koffi itself.
 *
 * Conventions of the C side (libbpf 1.1): integer-returning calls give 0 or
 * a non-negative fd on success and -errno on failure; pointer-returning calls
 * give NULL (null here) and set errno. Native pointers are bigints.
 */
import { endianness } from 'node:os';
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import type { Logger } from '../log/index.js';

/** A native pointer as koffi hands it over. */
export type Ptr = bigint;

/** Typed view of the native functions used by this folder. */
export interface Native {
  // bpf.h: raw syscall wrappers
  bpf_map_create(type: number, name: string | null, keySize: number, valueSize: number, maxEntries: number, opts: Buffer | null): number;
  bpf_map_update_elem(fd: number, key: Uint8Array, value: Uint8Array, flags: bigint | number): number;
  bpf_map_lookup_elem(fd: number, key: Uint8Array, value: Uint8Array): number;
  bpf_map_delete_elem(fd: number, key: Uint8Array): number;
  bpf_map_get_next_key(fd: number, key: Uint8Array | null, next: Uint8Array): number;
  bpf_map_update_batch(fd: number, keys: Uint8Array, values: Uint8Array, count: Uint32Array, opts: Buffer): number;
  bpf_map_delete_batch(fd: number, keys: Uint8Array, count: Uint32Array, opts: Buffer): number;
  bpf_map_lookup_batch(fd: number, inBatch: Uint8Array | null, outBatch: Uint8Array, keys: Uint8Array, values: Uint8Array, count: Uint32Array, opts: Buffer): number;
  bpf_map_freeze(fd: number): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get(path: string): number;
  bpf_map_get_next_id(start: number, next: Uint32Array): number;
  bpf_prog_get_next_id(start: number, next: Uint32Array): number;
  bpf_link_get_next_id(start: number, next: Uint32Array): number;
  bpf_map_get_fd_by_id(id: number): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_link_get_fd_by_id(id: number): number;
  bpf_obj_get_info_by_fd(fd: number, info: Uint8Array, len: Uint32Array): number;
  bpf_prog_query(target: number, type: number, queryFlags: number, attachFlags: Uint32Array, ids: Uint32Array, count: Uint32Array): number;
  bpf_link_create(progFd: number, target: number, attachType: number, opts: Buffer | null): number;
  bpf_link_detach(linkFd: number): number;
  bpf_link_update(linkFd: number, newProgFd: number, opts: Buffer | null): number;
  bpf_iter_create(linkFd: number): number;
  bpf_prog_load(type: number, name: string, license: string, insns: Uint8Array, insnCount: number, opts: Buffer | null): number;
  bpf_prog_test_run_opts(fd: number, opts: TestRunOpts): number;
  // libbpf.h: objects, programs, maps
  bpf_object__open_file(path: string, opts: ObjectOpenOpts): Ptr | null;
  bpf_object__open_mem(buf: Uint8Array, size: number, opts: ObjectOpenOpts): Ptr | null;
  bpf_object__load(obj: Ptr): number;
  bpf_object__close(obj: Ptr): void;
  bpf_object__name(obj: Ptr): string;
  bpf_object__btf(obj: Ptr): Ptr | null;
  bpf_object__next_program(obj: Ptr, prev: Ptr | null): Ptr | null;
  bpf_object__next_map(obj: Ptr, prev: Ptr | null): Ptr | null;
  bpf_program__name(prog: Ptr): string;
  bpf_program__section_name(prog: Ptr): string;
  bpf_program__fd(prog: Ptr): number;
  bpf_program__type(prog: Ptr): number;
  bpf_program__autoload(prog: Ptr): boolean;
  bpf_program__set_autoload(prog: Ptr, autoload: boolean): number;
  bpf_program__set_log_buf(prog: Ptr, buf: Ptr | null, size: number): number;
  bpf_map__name(map: Ptr): string;
  bpf_map__fd(map: Ptr): number;
  bpf_map__type(map: Ptr): number;
  bpf_map__key_size(map: Ptr): number;
  bpf_map__value_size(map: Ptr): number;
  bpf_map__max_entries(map: Ptr): number;
  bpf_map__set_max_entries(map: Ptr, n: number): number;
  bpf_map__map_flags(map: Ptr): number;
  bpf_map__is_internal(map: Ptr): boolean;
  bpf_map__pin_path(map: Ptr): string | null;
  bpf_map__set_pin_path(map: Ptr, path: string | null): number;
  bpf_map__is_pinned(map: Ptr): boolean;
  bpf_map__initial_value(map: Ptr, size: BigUint64Array): Ptr | null;
  bpf_map__set_initial_value(map: Ptr, data: Uint8Array, size: number): number;
  btf__find_by_name_kind(btf: Ptr, name: string, kind: number): number;
  btf__type_by_id(btf: Ptr, id: number): Ptr | null;
  btf__name_by_offset(btf: Ptr, off: number): string | null;
  btf__load_vmlinux_btf(): Ptr | null;
  btf__free(btf: Ptr): void;
  libbpf_num_possible_cpus(): number;
  libbpf_strerror(err: number, buf: Buffer, size: number): number;
  // tc, xdp
  bpf_tc_hook_create(hook: Buffer): number;
  bpf_tc_hook_destroy(hook: Buffer): number;
  bpf_tc_attach(hook: Buffer, opts: Buffer): number;
  bpf_tc_detach(hook: Buffer, opts: Buffer): number;
  bpf_tc_query(hook: Buffer, opts: Buffer): number;
  bpf_xdp_query(ifindex: number, flags: number, opts: Buffer): number;
  // ring buffer
  ring_buffer__new(mapFd: number, cb: Ptr, ctx: Ptr | null, opts: Buffer | null): Ptr | null;
  ring_buffer__consume(rb: Ptr): number;
  ring_buffer__free(rb: Ptr): void;
  // libc
  close(fd: number): number;
  socket(domain: number, type: number, protocol: number): number;
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, len: Uint32Array): number;
  malloc(size: number): Ptr | null;
  free(ptr: Ptr): void;
}

/** struct bpf_test_run_opts as koffi marshals it (pointer members take Buffers). */
export interface TestRunOpts {
  sz: number;
  data_in: Uint8Array | null;
  data_out: Uint8Array | null;
  data_size_in: number;
  data_size_out: number;
  ctx_in: Uint8Array | null;
  ctx_out: Uint8Array | null;
  ctx_size_in: number;
  ctx_size_out: number;
  retval: number;
  repeat: number;
  duration: number;
  flags: number;
  cpu: number;
  batch_size: number;
}

/** struct bpf_object_open_opts as koffi marshals it; strings live only for the call, which is all libbpf needs. */
export interface ObjectOpenOpts {
  sz: number;
  object_name: string | null;
  relaxed_maps: boolean;
  pin_root_path: string | null;
  kconfig: string | null;
  btf_custom_path: string | null;
  kernel_log_buf: Ptr | null;
  kernel_log_size: number;
  kernel_log_level: number;
}

let native: Native | undefined;
let fcntlFn: ((fd: number, cmd: number, ...rest: unknown[]) => number) | undefined;
let vsnprintfFn: ((buf: Buffer, n: number, fmt: Ptr, ap: Ptr) => number) | undefined;
let printSlot: Ptr | undefined;

/** The bound native functions; loads libbpf.so.1 on first use. Throws when the library is missing. */
export function ffi(): Native {
  return native ?? bind();
}

function bind(): Native {
  // Kernel info structs and BTF are decoded little-endian throughout this folder.
  if (endianness() !== 'LE') throw new Error('load libbpf.so.1: big-endian hosts are not supported');
  let bpf: LibraryHandle;
  let libc: LibraryHandle;
  try {
    bpf = koffi.load('libbpf.so.1');
    libc = koffi.load('libc.so.6');
  } catch (err) {
    throw new Error(`load libbpf.so.1: ${(err as Error).message} (install the libbpf1 package)`, { cause: err });
  }
  // Named types (koffi marshals objects only into named struct pointers); the
  // names are process-global, hence the prefix.
  const testRunOpts = koffi.struct('pn_libbpf_test_run_opts', {
    sz: 'size_t',
    data_in: 'void *',
    data_out: 'void *',
    data_size_in: 'uint32_t',
    data_size_out: 'uint32_t',
    ctx_in: 'void *',
    ctx_out: 'void *',
    ctx_size_in: 'uint32_t',
    ctx_size_out: 'uint32_t',
    retval: 'uint32_t',
    repeat: 'int',
    duration: 'uint32_t',
    flags: 'uint32_t',
    cpu: 'uint32_t',
    batch_size: 'uint32_t',
  });
  const openOpts = koffi.struct('pn_libbpf_object_open_opts', {
    sz: 'size_t',
    object_name: 'const char *',
    relaxed_maps: 'bool',
    pin_root_path: 'const char *',
    _stub: 'uint32_t',
    kconfig: 'const char *',
    btf_custom_path: 'const char *',
    kernel_log_buf: 'void *',
    kernel_log_size: 'size_t',
    kernel_log_level: 'uint32_t',
  });
  if (koffi.sizeof(testRunOpts) !== 80 || koffi.sizeof(openOpts) !== 80) {
    throw new Error('load libbpf.so.1: unexpected option struct layout on this platform');
  }
  // One pointer type object each: registered callbacks must carry the very type the function takes.
  const sampleFn = koffi.pointer(koffi.proto('int pn_libbpf_sample_fn(void *ctx, void *data, size_t size)'));
  const printFn = koffi.pointer(koffi.proto('int pn_libbpf_print_fn(int level, void *fmt, void *va_list)'));
  const f = (decl: string) => bpf.func(decl);
  const n: Native = {
    bpf_map_create: f('int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)'),
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
    bpf_map_update_batch: f('int bpf_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count, const void *opts)'),
    bpf_map_delete_batch: f('int bpf_map_delete_batch(int fd, const void *keys, uint32_t *count, const void *opts)'),
    bpf_map_lookup_batch: f('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, uint32_t *count, const void *opts)'),
    bpf_map_freeze: f('int bpf_map_freeze(int fd)'),
    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *pathname)'),
    bpf_obj_get: f('int bpf_obj_get(const char *pathname)'),
    bpf_map_get_next_id: f('int bpf_map_get_next_id(uint32_t start_id, uint32_t *next_id)'),
    bpf_prog_get_next_id: f('int bpf_prog_get_next_id(uint32_t start_id, uint32_t *next_id)'),
    bpf_link_get_next_id: f('int bpf_link_get_next_id(uint32_t start_id, uint32_t *next_id)'),
    bpf_map_get_fd_by_id: f('int bpf_map_get_fd_by_id(uint32_t id)'),
    bpf_prog_get_fd_by_id: f('int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_link_get_fd_by_id: f('int bpf_link_get_fd_by_id(uint32_t id)'),
    bpf_obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, void *info, uint32_t *info_len)'),
    bpf_prog_query: f('int bpf_prog_query(int target_fd, int type, uint32_t query_flags, uint32_t *attach_flags, uint32_t *prog_ids, uint32_t *prog_cnt)'),
    bpf_link_create: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
    bpf_link_detach: f('int bpf_link_detach(int link_fd)'),
    bpf_link_update: f('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    bpf_iter_create: f('int bpf_iter_create(int link_fd)'),
    bpf_prog_load: f('int bpf_prog_load(int type, const char *name, const char *license, const void *insns, size_t insn_cnt, const void *opts)'),
    bpf_prog_test_run_opts: bpf.func('bpf_prog_test_run_opts', 'int', ['int', koffi.inout(koffi.pointer(testRunOpts))]),
    bpf_object__open_file: bpf.func('bpf_object__open_file', 'void *', ['const char *', koffi.pointer(openOpts)]),
    bpf_object__open_mem: bpf.func('bpf_object__open_mem', 'void *', ['const void *', 'size_t', koffi.pointer(openOpts)]),
    bpf_object__load: f('int bpf_object__load(void *obj)'),
    bpf_object__close: f('void bpf_object__close(void *obj)'),
    bpf_object__name: f('const char *bpf_object__name(void *obj)'),
    bpf_object__btf: f('void *bpf_object__btf(void *obj)'),
    bpf_object__next_program: f('void *bpf_object__next_program(void *obj, void *prog)'),
    bpf_object__next_map: f('void *bpf_object__next_map(void *obj, void *map)'),
    bpf_program__name: f('const char *bpf_program__name(void *prog)'),
    bpf_program__section_name: f('const char *bpf_program__section_name(void *prog)'),
    bpf_program__fd: f('int bpf_program__fd(void *prog)'),
    bpf_program__type: f('int bpf_program__type(void *prog)'),
    bpf_program__autoload: f('bool bpf_program__autoload(void *prog)'),
    bpf_program__set_autoload: f('int bpf_program__set_autoload(void *prog, bool autoload)'),
    bpf_program__set_log_buf: f('int bpf_program__set_log_buf(void *prog, void *log_buf, size_t log_size)'),
    bpf_map__name: f('const char *bpf_map__name(void *map)'),
    bpf_map__fd: f('int bpf_map__fd(void *map)'),
    bpf_map__type: f('int bpf_map__type(void *map)'),
    bpf_map__key_size: f('uint32_t bpf_map__key_size(void *map)'),
    bpf_map__value_size: f('uint32_t bpf_map__value_size(void *map)'),
    bpf_map__max_entries: f('uint32_t bpf_map__max_entries(void *map)'),
    bpf_map__set_max_entries: f('int bpf_map__set_max_entries(void *map, uint32_t max_entries)'),
    bpf_map__map_flags: f('uint32_t bpf_map__map_flags(void *map)'),
    bpf_map__is_internal: f('bool bpf_map__is_internal(void *map)'),
    bpf_map__pin_path: f('const char *bpf_map__pin_path(void *map)'),
    bpf_map__set_pin_path: f('int bpf_map__set_pin_path(void *map, const char *path)'),
    bpf_map__is_pinned: f('bool bpf_map__is_pinned(void *map)'),
    bpf_map__initial_value: f('void *bpf_map__initial_value(void *map, void *psize)'),
    bpf_map__set_initial_value: f('int bpf_map__set_initial_value(void *map, const void *data, size_t size)'),
    btf__find_by_name_kind: f('int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
    btf__type_by_id: f('void *btf__type_by_id(void *btf, uint32_t id)'),
    btf__name_by_offset: f('const char *btf__name_by_offset(void *btf, uint32_t offset)'),
    btf__load_vmlinux_btf: f('void *btf__load_vmlinux_btf()'),
    btf__free: f('void btf__free(void *btf)'),
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus()'),
    libbpf_strerror: f('int libbpf_strerror(int err, void *buf, size_t size)'),
    bpf_tc_hook_create: f('int bpf_tc_hook_create(void *hook)'),
    bpf_tc_hook_destroy: f('int bpf_tc_hook_destroy(void *hook)'),
    bpf_tc_attach: f('int bpf_tc_attach(const void *hook, void *opts)'),
    bpf_tc_detach: f('int bpf_tc_detach(const void *hook, const void *opts)'),
    bpf_tc_query: f('int bpf_tc_query(const void *hook, void *opts)'),
    bpf_xdp_query: f('int bpf_xdp_query(int ifindex, int flags, void *opts)'),
    ring_buffer__new: bpf.func('ring_buffer__new', 'void *', ['int', sampleFn, 'void *', 'const void *']),
    ring_buffer__consume: f('int ring_buffer__consume(void *rb)'),
    ring_buffer__free: f('void ring_buffer__free(void *rb)'),
    close: libc.func('int close(int fd)'),
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *value, uint32_t *len)'),
    malloc: libc.func('void *malloc(size_t size)'),
    free: libc.func('void free(void *ptr)'),
  } as Native;
  fcntlFn = libc.func('int fcntl(int fd, int cmd, ...)');
  vsnprintfFn = libc.func('int vsnprintf(void *buf, size_t size, void *fmt, void *ap)');
  native = n;
  samplePtrType = sampleFn;
  installPrint(bpf, printFn);
  return n;
}

let samplePtrType: TypeObject | undefined;

// ---------------------------------------------------------------------------
// libbpf's own messages

/** One libbpf message kept for error reports. */
interface Warning {
  seq: number;
  text: string;
}

const WARN_KEEP = 64;
const warnings: Warning[] = [];
let warnSeq = 0;
let printLogger: Logger | undefined;
const printBuf = Buffer.alloc(8192);

/**
 * Routes libbpf's messages: warnings are kept (the last 64) so errors can
 * quote them and also go to the logger when one is set; info and debug go to
 * the logger's debug level or are dropped without being formatted.
 *
 * libbpf hands a va_list to its print callback. On x86-64 and arm64 a
 * va_list argument travels as a pointer, so it can be handed straight to
 * libc's vsnprintf. Elsewhere that is not safe and libbpf is silenced.
 */
function installPrint(bpf: LibraryHandle, printFnPtr: TypeObject): void {
  const setPrint = bpf.func('libbpf_set_print', 'void *', [printFnPtr]);
  if (process.arch !== 'x64' && process.arch !== 'arm64') {
    setPrint(null);
    return;
  }
  printSlot = koffi.register((level: number, fmt: Ptr, ap: Ptr): number => {
    try {
      if (level !== 0 && !printLogger?.isLevelEnabled('debug')) return 0;
      const n = vsnprintfFn!(printBuf, printBuf.length, fmt, ap);
      if (n <= 0) return 0;
      const text = printBuf.toString('utf8', 0, Math.min(n, printBuf.length - 1)).trimEnd();
      if (level === 0) {
        warnings.push({ seq: ++warnSeq, text });
        if (warnings.length > WARN_KEEP) warnings.shift();
        printLogger?.warn({ libbpf: text }, 'libbpf warning');
      } else {
        printLogger?.debug({ libbpf: text }, 'libbpf');
      }
    } catch {
      // A throwing print callback would unwind through C; drop the message instead.
    }
    return 0;
  }, printFnPtr);
  setPrint(printSlot);
}

/** Sends libbpf's warnings (and with debug enabled, its info/debug lines) to a logger; undefined stops that. */
export function setLibbpfLogger(logger: Logger | undefined): void {
  printLogger = logger;
}

/** A marker to pass to warningsSince() after a failed call. */
export function warningMark(): number {
  ffi();
  return warnSeq;
}

/** libbpf warnings printed after `mark`, oldest first. */
export function warningsSince(mark: number): string[] {
  return warnings.filter((w) => w.seq > mark).map((w) => w.text.replace(/^libbpf: /, ''));
}

/** libbpf's text for its own error codes (4000 and up); undefined for plain errno values. */
export function libbpfStrerror(errno: number): string | undefined {
  const e = Math.abs(errno);
  if (e < 4000 || e > 4100) return undefined;
  const buf = Buffer.alloc(128);
  ffi().libbpf_strerror(e, buf, buf.length);
  const s = buf.toString('utf8', 0, buf.indexOf(0) >= 0 ? buf.indexOf(0) : buf.length);
  return s || undefined;
}

// ---------------------------------------------------------------------------
// Small helpers over raw memory and fds

/** errno of the last failed native call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Duplicates an fd with O_CLOEXEC; -errno on failure. */
export function dupFd(fd: number): number {
  ffi();
  const F_DUPFD_CLOEXEC = 1030;
  const r = fcntlFn!(fd, F_DUPFD_CLOEXEC, 'int', 0);
  return r < 0 ? -koffi.errno() : r;
}

/** Closes an fd, ignoring errors (an fd is gone after close() whatever it returns). */
export function closeFd(fd: number): void {
  if (fd >= 0) ffi().close(fd);
}

let mallocTrimFn: ((pad: number) => number) | null | undefined;

/**
 * Gives the C heap's free memory back to the system (glibc's malloc_trim):
 * after batch map writes of 100,000 elements the allocator otherwise keeps
 * tens of MB it no longer uses. False where the C library has no
 * malloc_trim (musl).
 */
export function mallocTrim(): boolean {
  if (mallocTrimFn === undefined) {
    try {
      mallocTrimFn = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    } catch {
      mallocTrimFn = null;
    }
  }
  if (!mallocTrimFn) return false;
  mallocTrimFn(0);
  return true;
}

/** Copies `len` bytes of native memory into a new Buffer. */
export function readMemory(ptr: Ptr, len: number): Buffer {
  if (len === 0) return Buffer.alloc(0);
  return Buffer.from(new Uint8Array(koffi.view(ptr, len)));
}

/** Reads a NUL-terminated string at `ptr`. */
export function readCString(ptr: Ptr): string {
  return koffi.decode.string(ptr);
}

/** Writes one byte at ptr + offset. */
export function writeByte(ptr: Ptr, offset: number, value: number): void {
  koffi.encode(ptr, offset, 'uint8_t', value);
}

/** Registers a ring buffer sample callback; keep the returned pointer until unregisterCallback(). */
export function registerSampleCallback(fn: (ctx: Ptr | null, data: Ptr, size: number | bigint) => number): Ptr {
  ffi();
  return koffi.register(fn, samplePtrType!);
}

/** Releases a callback slot from registerSampleCallback(). */
export function unregisterCallback(ptr: Ptr): void {
  koffi.unregister(ptr);
}

/** True when the print callback is installed (so libbpf warnings can be quoted in errors). */
export function libbpfPrintCaptured(): boolean {
  ffi();
  return printSlot !== undefined;
}
