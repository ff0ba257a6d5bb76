/** A loaded BPF program held by an fd: identity, pinning and BPF_PROG_TEST_RUN. */
import { unlinkSync } from 'node:fs';
import { SyscallError } from '../errors/index.js';
import { libbpfError } from './fail.js';
import { closeFd, dupFd, ffi } from './ffi.js';
import { fdByIdOrThrow, listObjects, objGet, objPin, programInfoByFd, type ProgramInfo } from './info.js';
import { notSupported, probeProgTestRun } from './probe.js';
import type { ProgramType } from './types.js';
import { EINVAL, ENOSPC, EOPNOTSUPP, ENOTSUPP } from '../errors/errno.js';

/** Input of Program.testRun. */
export interface TestRunOptions {
  /** The packet (from the Ethernet header on) or other input data. At least 14 bytes for tc and XDP programs. */
  data: Uint8Array;
  /** Runs the program this many times; durationNs is the mean. Default 1. */
  repeat?: number;
  /** Room for the output packet; default data.length + 512 (programs may grow the packet). */
  dataSizeOut?: number;
  /** Context to start from (struct __sk_buff for tc, struct xdp_md for XDP); the output context is returned with the same size. */
  ctxIn?: Uint8Array;
}

/** Result of Program.testRun. */
export interface TestRunResult {
  /** The program's return value, as a signed 32-bit number (TC_ACT_UNSPEC is -1). */
  retval: number;
  /** The packet as the program left it. */
  dataOut: Buffer;
  /** Mean run time per repetition in nanoseconds. */
  durationNs: number;
  /** The context as the program left it, when ctxIn was given. */
  ctxOut?: Buffer;
}

/** A BPF program held by an fd. Close it (or `using` it) when done; pins and attachments outlive the fd. */
export class Program implements Disposable {
  /** The C function name for programs of a BpfObject; the kernel's 15-character name otherwise. */
  readonly name: string;
  readonly type: ProgramType;
  /** Kernel id, as bpftool shows it. */
  readonly id: number;
  /** Hex program tag (hash of the instructions), as bpftool shows it. */
  readonly tag: string;

  private _fd: number;
  private _pinnedPath: string | undefined;

  private constructor(fd: number, info: ProgramInfo, name?: string, pinnedPath?: string) {
    this._fd = fd;
    this.name = name ?? info.name;
    this.type = info.type;
    this.id = info.id;
    this.tag = info.tag;
    this._pinnedPath = pinnedPath;
  }

  /** The program's fd; -1 after close(). */
  get fd(): number {
    return this._fd;
  }

  /** bpffs path this program was pinned at or opened from, if any. */
  get pinnedPath(): string | undefined {
    return this._pinnedPath;
  }

  /** Opens a program pinned in bpffs. Throws SyscallError (ENOENT when nothing is pinned there). */
  static openPinned(path: string): Program {
    return Program.fromFd(objGet(path), { pinnedPath: path, what: `pinned program ${path}` });
  }

  /** Opens a program by kernel id. Throws SyscallError (ENOENT when no such program). */
  static fromId(id: number): Program {
    return Program.fromFd(fdByIdOrThrow('program', id));
  }

  /** Wraps a program fd and takes ownership of it (closed again if it is not a program). */
  static fromFd(fd: number, opts?: { name?: string; pinnedPath?: string; what?: string }): Program {
    let info: ProgramInfo;
    try {
      info = programInfoByFd(fd);
    } catch (err) {
      closeFd(fd);
      if (err instanceof SyscallError && opts?.what) throw new SyscallError(`open ${opts.what}: not a program`, err.errno, { cause: err });
      throw err;
    }
    return new Program(fd, info, opts?.name, opts?.pinnedPath);
  }

  /** Every program in the kernel (walks BPF_PROG_GET_NEXT_ID); programs freed during the walk are skipped. */
  static list(): ProgramInfo[] {
    return listObjects('program', programInfoByFd);
  }

  /** Fresh kernel info (load time, sizes, ...). */
  info(): ProgramInfo {
    return programInfoByFd(this._fd);
  }

  /** A second handle on the same program with its own fd. */
  clone(): Program {
    const fd = dupFd(this._fd);
    if (fd < 0) throw libbpfError(`duplicate fd of program ${this.label()}`, fd);
    return new Program(fd, programInfoByFd(fd), this.name, this._pinnedPath);
  }

  /** Pins the program at a bpffs path. Throws SyscallError (EEXIST when the path is taken). */
  pin(path: string): void {
    objPin(this._fd, path, `program ${this.label()}`);
    this._pinnedPath = path;
  }

  /** Removes the pin this handle knows about (a no-op when there is none or it is already gone). */
  unpin(): void {
    if (this._pinnedPath === undefined) return;
    try {
      unlinkSync(this._pinnedPath);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') throw new SyscallError(`unpin program ${this.label()} from ${this._pinnedPath}`, -(e.errno ?? -5), { cause: err });
    }
    this._pinnedPath = undefined;
  }

  /**
   * Runs the program on `data` in the kernel without attaching it
   * (BPF_PROG_TEST_RUN). Throws NotSupportedError when the kernel cannot
   * test-run this program type, SyscallError otherwise.
   */
  testRun(opts: TestRunOptions): TestRunResult {
    const out = Buffer.alloc(opts.dataSizeOut ?? opts.data.length + 512);
    const ctxOut = opts.ctxIn ? Buffer.alloc(opts.ctxIn.length) : null;
    const o = {
      sz: 80,
      data_in: opts.data,
      data_out: out,
      data_size_in: opts.data.length,
      data_size_out: out.length,
      ctx_in: opts.ctxIn ?? null,
      ctx_out: ctxOut,
      ctx_size_in: opts.ctxIn?.length ?? 0,
      ctx_size_out: ctxOut?.length ?? 0,
      retval: 0,
      repeat: opts.repeat ?? 1,
      duration: 0,
      flags: 0,
      cpu: 0,
      batch_size: 0,
    };
    const rc = ffi().bpf_prog_test_run_opts(this._fd, o);
    if (rc !== 0) {
      if ((rc === -ENOTSUPP || rc === -EOPNOTSUPP || rc === -EINVAL) && !probeProgTestRun()) throw notSupported('progTestRun');
      const detail = rc === -ENOSPC ? ` (output larger than ${out.length} bytes: raise dataSizeOut)` : '';
      throw libbpfError(`test-run program ${this.label()}${detail}`, rc);
    }
    const result: TestRunResult = {
      retval: o.retval | 0,
      dataOut: out.subarray(0, o.data_size_out),
      durationNs: o.duration,
    };
    if (ctxOut) result.ctxOut = ctxOut.subarray(0, o.ctx_size_out);
    return result;
  }

  /** Closes the fd (idempotent). */
  close(): void {
    closeFd(this._fd);
    this._fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** "name (id N)", for messages. */
  label(): string {
    return `${this.name} (id ${this.id})`;
  }
}
