/**
 * A BPF ELF object in two phases, as libbpf has it. After open() it is a
 * spec: maps and programs can be inspected (mapSpecs, programSpecs) and
 * adjusted (setConstants, setMapMaxEntries, setAutoload). load() creates the
 * maps and loads the programs into the kernel; from then on map() and
 * program() hand out live handles, owned by this object and closed with it
 * (clone() them to keep one longer).
 */
import { mkdirSync } from 'node:fs';
import { PodnetError, SyscallError, VerifierError } from '../errors/index.js';
import { sectionVariables } from './btf.js';
import { libbpfError, nullError } from './fail.js';
import { closeFd, dupFd, ffi, readCString, readMemory, warningMark, writeByte, type ObjectOpenOpts, type Ptr } from './ffi.js';
import { BpfMap } from './map.js';
import { Program } from './program.js';
import { mapTypeName, programTypeName, type MapType, type ProgramType } from './types.js';

/** Options of BpfObject.open / openBuffer. */
export interface ObjectOpenOptions {
  /**
   * Directory for maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)`:
   * such a map is pinned at <pinRoot>/<map name> on load, or reused when a
   * compatible map is already pinned there. libbpf's default is /sys/fs/bpf.
   */
  pinRoot?: string;
  /** Object name override (libbpf prefixes internal map names with it). */
  name?: string;
}

/** A map as declared in the object, before load. */
export interface MapSpec {
  name: string;
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** Where libbpf will pin it on load (pinning by name), if anywhere. */
  pinPath?: string;
  /** True for the maps libbpf makes for global data (.rodata, .data, .bss). */
  internal: boolean;
}

/** A program as declared in the object, before load. */
export interface ProgramSpec {
  /** The C function name. */
  name: string;
  /** ELF section, e.g. "xdp" or "tc". */
  section: string;
  type: ProgramType;
  /** False when load() will skip it. */
  autoload: boolean;
}

/** A value for setConstants: integers and booleans for scalar variables, bytes for anything else. */
export type ConstantValue = number | bigint | boolean | Uint8Array;

// Kernels before 6.4 cap the verifier log at UINT_MAX >> 8 bytes.
const VERIFIER_LOG_SIZE = (1 << 24) - 1;

/** An opened (and after load(), loaded) BPF object. Close it when done, also after a failed load. */
export class BpfObject implements Disposable {
  /** libbpf's object name (file base name unless overridden). */
  readonly name: string;
  private obj: Ptr | null;
  private loaded = false;
  private readonly maps_ = new Map<string, BpfMap>();
  private readonly programs_ = new Map<string, Program>();
  private readonly pinRoot: string | undefined;
  // libbpf may keep pointing into the ELF image it was opened from; hold it as long as the object lives.
  private image: Uint8Array | undefined;

  private constructor(obj: Ptr, pinRoot: string | undefined, image?: Uint8Array) {
    this.obj = obj;
    this.name = ffi().bpf_object__name(obj);
    this.pinRoot = pinRoot;
    this.image = image;
  }

  /** Opens (parses) an ELF object file. Throws SyscallError carrying libbpf's complaint on a bad file. */
  static open(path: string, opts: ObjectOpenOptions = {}): BpfObject {
    const mark = warningMark();
    const obj = ffi().bpf_object__open_file(path, openOpts(opts));
    if (obj === null) throw nullError(`open BPF object ${path}`, mark);
    return new BpfObject(obj, opts.pinRoot);
  }

  /** Opens an ELF object held in memory; `name` names it in messages and map names. */
  static openBuffer(elf: Uint8Array, name: string, opts: { pinRoot?: string } = {}): BpfObject {
    const image = Buffer.from(elf);
    const mark = warningMark();
    const obj = ffi().bpf_object__open_mem(image, image.length, openOpts({ ...opts, name }));
    if (obj === null) throw nullError(`open BPF object ${name}`, mark);
    return new BpfObject(obj, opts.pinRoot, image);
  }

  /** Maps declared in the object, with their sizes (usable before and after load). */
  mapSpecs(): MapSpec[] {
    const n = ffi();
    return this.rawMaps().map((m) => {
      const spec: MapSpec = {
        name: n.bpf_map__name(m),
        type: mapTypeName(n.bpf_map__type(m)),
        keySize: n.bpf_map__key_size(m),
        valueSize: n.bpf_map__value_size(m),
        maxEntries: n.bpf_map__max_entries(m),
        flags: n.bpf_map__map_flags(m),
        internal: n.bpf_map__is_internal(m),
      };
      const pin = n.bpf_map__pin_path(m);
      if (pin) spec.pinPath = pin;
      return spec;
    });
  }

  /** Programs declared in the object (usable before and after load). */
  programSpecs(): ProgramSpec[] {
    const n = ffi();
    return this.rawPrograms().map((p) => ({
      name: n.bpf_program__name(p),
      section: n.bpf_program__section_name(p),
      type: programTypeName(n.bpf_program__type(p)),
      autoload: n.bpf_program__autoload(p),
    }));
  }

  /**
   * Sets `volatile const` globals (.rodata) by BTF variable name, between
   * open and load. Integers are written in host order at the variable's size;
   * booleans as 0/1; byte arrays must match the size exactly. Throws
   * PodnetError naming the variable when it is unknown or the value does not
   * fit; nothing is written unless every value is valid.
   */
  setConstants(values: Record<string, ConstantValue>): void {
    const obj = this.requireOpen('set constants of');
    if (Object.keys(values).length === 0) return;
    if (this.loaded) throw new PodnetError('INVALID_ARGUMENT', `set constants of object ${this.name}: already loaded`);
    const n = ffi();
    const btf = n.bpf_object__btf(obj);
    const vars = btf === null ? [] : sectionVariables(btf, '.rodata');
    const map = this.rawMaps().find((m) => n.bpf_map__is_internal(m) && n.bpf_map__name(m).endsWith('.rodata'));
    const available = vars.map((v) => v.name).sort();
    const unknown = Object.keys(values).filter((k) => !available.includes(k));
    if (unknown.length || map === undefined) {
      throw new PodnetError('INVALID_ARGUMENT', `set constants of object ${this.name}: unknown constant ${unknown.join(', ')} (the object's .rodata has: ${available.join(', ') || 'nothing'})`);
    }
    const size = new BigUint64Array(1);
    const ptr = n.bpf_map__initial_value(map, size);
    if (ptr === null) throw new PodnetError('INVALID_ARGUMENT', `set constants of object ${this.name}: .rodata has no initial value`);
    const data = readMemory(ptr, Number(size[0]));
    for (const [name, value] of Object.entries(values)) {
      const v = vars.find((x) => x.name === name)!;
      encodeConstant(this.name, name, value, data, v.offset, v.size);
    }
    const rc = n.bpf_map__set_initial_value(map, data, data.length);
    if (rc !== 0) throw libbpfError(`set constants of object ${this.name}`, rc);
  }

  /** Resizes a map before load (e.g. a conntrack table sized per node). Throws on an unknown map or after load. */
  setMapMaxEntries(mapName: string, maxEntries: number): void {
    const m = this.rawMap(mapName, 'resize map');
    const rc = ffi().bpf_map__set_max_entries(m, maxEntries);
    if (rc !== 0) throw libbpfError(`resize map ${mapName} of object ${this.name} to ${maxEntries}`, rc);
  }

  /** Chooses whether load() loads a program (default true). Throws on an unknown program or after load. */
  setAutoload(programName: string, autoload: boolean): void {
    const p = this.rawProgram(programName, 'set autoload of');
    const rc = ffi().bpf_program__set_autoload(p, autoload);
    if (rc !== 0) throw libbpfError(`set autoload of program ${programName} in object ${this.name}`, rc);
  }

  /**
   * Creates the maps (pinning/reusing per pinRoot) and loads the programs.
   * A program the verifier refuses throws VerifierError with the verifier's
   * whole log; any other failure throws SyscallError with libbpf's warnings.
   * The object stays open after a failure: close it.
   */
  load(): void {
    const obj = this.requireOpen('load');
    if (this.loaded) throw new PodnetError('INVALID_ARGUMENT', `load object ${this.name}: already loaded`);
    const n = ffi();
    const pinned = this.mapSpecs().filter((m) => m.pinPath !== undefined);
    if (pinned.length > 0) {
      // libbpf's default would pin them at /sys/fs/bpf, outside any instance's directory.
      if (this.pinRoot === undefined) {
        throw new PodnetError('INVALID_ARGUMENT', `load object ${this.name}: maps ${pinned.map((m) => m.name).join(', ')} are pinned by name; open it with a pinRoot`);
      }
      mkdirSync(this.pinRoot, { recursive: true });
    }
    // One log buffer per program: libbpf loads with logging off and only on a
    // failure retries with log level 1 into the buffer, so successful loads
    // never touch (or commit memory for) it.
    const logs = new Map<Ptr, Ptr>();
    try {
      for (const p of this.rawPrograms()) {
        if (!n.bpf_program__autoload(p)) continue;
        const buf = n.malloc(VERIFIER_LOG_SIZE + 1);
        if (buf === null) throw new SyscallError(`load object ${this.name}: allocate verifier log`, 12);
        writeByte(buf, 0, 0);
        logs.set(p, buf);
        n.bpf_program__set_log_buf(p, buf, VERIFIER_LOG_SIZE);
      }
      const mark = warningMark();
      const rc = n.bpf_object__load(obj);
      // libbpf marks the object loaded even when loading failed: it cannot be retried.
      this.loaded = true;
      if (rc !== 0) {
        for (const [p, buf] of logs) {
          if (n.bpf_program__fd(p) >= 0) continue;
          const log = readCString(buf);
          if (log.length > 0) throw new VerifierError(n.bpf_program__name(p), -rc, log);
        }
        throw libbpfError(`load object ${this.name}`, rc, mark);
      }
    } finally {
      for (const [p, buf] of logs) {
        n.bpf_program__set_log_buf(p, null, 0);
        n.free(buf);
      }
    }
  }

  /** The loaded program whose C function is `name`. Throws naming the object and the programs it has. */
  program(name: string): Program {
    this.requireLoaded('get program', name);
    let prog = this.programs_.get(name);
    if (prog === undefined) {
      const p = this.rawProgram(name, 'get program');
      const fd = ffi().bpf_program__fd(p);
      if (fd < 0) throw new PodnetError('NOT_FOUND', `get program ${name} of object ${this.name}: not loaded (autoload is off)`);
      prog = Program.fromFd(this.dup(fd, `program ${name}`), { name });
      this.programs_.set(name, prog);
    }
    return prog;
  }

  /** The map named `name` (libbpf's name). Throws naming the object and the maps it has. */
  map(name: string): BpfMap {
    this.requireLoaded('get map', name);
    let map = this.maps_.get(name);
    if (map === undefined) {
      const m = this.rawMap(name, 'get map');
      const n = ffi();
      const fd = n.bpf_map__fd(m);
      if (fd < 0) throw new PodnetError('NOT_FOUND', `get map ${name} of object ${this.name}: not created`);
      const pin = n.bpf_map__is_pinned(m) ? n.bpf_map__pin_path(m) ?? undefined : undefined;
      map = BpfMap.fromFd(this.dup(fd, `map ${name}`), pin === undefined ? { name } : { name, pinnedPath: pin });
      this.maps_.set(name, map);
    }
    return map;
  }

  /** Every loaded program. */
  programs(): Program[] {
    const n = ffi();
    return this.rawPrograms().filter((p) => n.bpf_program__fd(p) >= 0).map((p) => this.program(n.bpf_program__name(p)));
  }

  /** Every created map, internal ones (.rodata, .bss, ...) included. */
  maps(): BpfMap[] {
    const n = ffi();
    return this.rawMaps().filter((m) => n.bpf_map__fd(m) >= 0).map((m) => this.map(n.bpf_map__name(m)));
  }

  /** Closes the handed-out handles and the object (idempotent). Pinned maps and attached programs stay in the kernel. */
  close(): void {
    for (const m of this.maps_.values()) m.close();
    for (const p of this.programs_.values()) p.close();
    this.maps_.clear();
    this.programs_.clear();
    if (this.obj !== null) ffi().bpf_object__close(this.obj);
    this.obj = null;
    this.image = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private requireOpen(verb: string): Ptr {
    if (this.obj === null) throw new PodnetError('CLOSED', `${verb} object ${this.name}: it is closed`);
    return this.obj;
  }

  private requireLoaded(verb: string, what: string): void {
    this.requireOpen(verb);
    if (!this.loaded) throw new PodnetError('INVALID_ARGUMENT', `${verb} ${what} of object ${this.name}: load() it first`);
  }

  private dup(fd: number, what: string): number {
    const d = dupFd(fd);
    if (d < 0) throw libbpfError(`duplicate fd of ${what} in object ${this.name}`, d);
    return d;
  }

  private rawPrograms(): Ptr[] {
    const obj = this.requireOpen('list programs of');
    const n = ffi();
    const out: Ptr[] = [];
    for (let p = n.bpf_object__next_program(obj, null); p !== null; p = n.bpf_object__next_program(obj, p)) out.push(p);
    return out;
  }

  private rawMaps(): Ptr[] {
    const obj = this.requireOpen('list maps of');
    const n = ffi();
    const out: Ptr[] = [];
    for (let m = n.bpf_object__next_map(obj, null); m !== null; m = n.bpf_object__next_map(obj, m)) out.push(m);
    return out;
  }

  private rawProgram(name: string, verb: string): Ptr {
    const n = ffi();
    const all = this.rawPrograms();
    const p = all.find((x) => n.bpf_program__name(x) === name);
    if (p === undefined) {
      const names = all.map((x) => n.bpf_program__name(x)).sort();
      throw new PodnetError('NOT_FOUND', `${verb} ${name}: object ${this.name} has no such program (it has: ${names.join(', ') || 'none'})`);
    }
    return p;
  }

  private rawMap(name: string, verb: string): Ptr {
    const n = ffi();
    const all = this.rawMaps();
    const m = all.find((x) => n.bpf_map__name(x) === name);
    if (m === undefined) {
      const names = all.map((x) => n.bpf_map__name(x)).sort();
      throw new PodnetError('NOT_FOUND', `${verb} ${name}: object ${this.name} has no such map (it has: ${names.join(', ') || 'none'})`);
    }
    return m;
  }
}

function openOpts(opts: ObjectOpenOptions): ObjectOpenOpts {
  return {
    sz: 80,
    object_name: opts.name ?? null,
    relaxed_maps: false,
    pin_root_path: opts.pinRoot ?? null,
    kconfig: null,
    btf_custom_path: null,
    kernel_log_buf: null,
    kernel_log_size: 0,
    kernel_log_level: 0,
  };
}

function encodeConstant(obj: string, name: string, value: ConstantValue, data: Buffer, off: number, size: number): void {
  const fail = (why: string): never => {
    throw new PodnetError('INVALID_ARGUMENT', `set constant ${name} of object ${obj}: ${why}`);
  };
  if (value instanceof Uint8Array) {
    if (value.length !== size) fail(`got ${value.length} bytes, the variable has ${size}`);
    data.set(value, off);
    return;
  }
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) fail(`a ${size}-byte variable takes a Uint8Array, not a ${typeof value}`);
  let v: bigint;
  if (typeof value === 'boolean') v = value ? 1n : 0n;
  else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) fail(`${value} is not a safe integer`);
    v = BigInt(value);
  } else v = value;
  const bits = BigInt(size * 8);
  // Accept both the signed and the unsigned reading of the variable's width.
  if (v < -(1n << (bits - 1n)) || v >= 1n << bits) fail(`${v} does not fit in ${size} bytes`);
  let u = BigInt.asUintN(size * 8, v);
  // Host byte order, which ffi.ts guarantees is little-endian.
  for (let i = 0; i < size; i++) {
    data[off + i] = Number(u & 0xffn);
    u >>= 8n;
  }
}
