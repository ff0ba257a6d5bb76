/**
 * podnet's error hierarchy. Every error has a stable string `code` that
 * callers, logs and the CLI can match on, and an optional `cause`.
 * Messages read "verb object: cause", with the identifying context.
 */
import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // Several names share a value (EAGAIN/EWOULDBLOCK, EDEADLK/EDEADLOCK):
  // the first one listed by libuv is the conventional one, keep it.
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** The symbolic name of a positive errno value, e.g. 1 -> "EPERM"; "E<n>" when unknown. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  // ENOTSUPP (524) is kernel-internal but leaks out of the bpf() syscall.
  if (n === 524) return 'ENOTSUPP';
  return errnoNames.get(n) ?? `E${n}`;
}

/** The errno value of a symbolic name, e.g. "ENOENT" -> 2. */
export function errnoValue(name: string): number | undefined {
  if (name === 'ENOTSUPP') return 524;
  return (constants.errno as Record<string, number>)[name];
}

/** Base class: a stable `code`, a readable message, and the error that caused it. */
export class PodnetError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A system call failed; `errno` is positive and `errnoName` is its symbol. */
export class SyscallError extends PodnetError {
  readonly errno: number;
  readonly errnoName: string;
  /** @param op what was being done, e.g. "update map pn_counters" */
  constructor(op: string, errno: number, options?: { cause?: unknown; detail?: string }) {
    const name = errnoName(errno);
    super('ESYSCALL', `${op}: ${name}${options?.detail ? ` (${options.detail})` : ''}`, options);
    this.errno = Math.abs(errno);
    this.errnoName = name;
  }
  /** True when this error carries the given errno name (e.g. "ENOENT"). */
  is(name: string): boolean {
    return this.errnoName === name;
  }
}

/** A kernel feature this host lacks; says which feature and the minimum kernel that has it. */
export class NotSupportedError extends PodnetError {
  readonly feature: string;
  readonly minKernel: string;
  constructor(feature: string, minKernel: string, options?: { cause?: unknown }) {
    super('ENOTSUP', `${feature} is not supported by this kernel: needs Linux >= ${minKernel}`, options);
    this.feature = feature;
    this.minKernel = minKernel;
  }
}

/** The verifier refused a program. `log` holds the whole verifier log; the message its tail. */
export class VerifierError extends PodnetError {
  readonly program: string;
  readonly log: string;
  readonly errno: number;
  constructor(program: string, errno: number, log: string, options?: { cause?: unknown }) {
    const tail = log.trimEnd().split('\n').slice(-8).join('\n');
    super('EVERIFIER', `load program ${program}: verifier rejected it (${errnoName(errno)})${tail ? `:\n${tail}` : ''}`, options);
    this.program = program;
    this.log = log;
    this.errno = Math.abs(errno);
  }
}

/** A netlink request failed; carries errno and the kernel's extended ack message if any. */
export class NetlinkError extends SyscallError {
  readonly extAck: string | undefined;
  constructor(op: string, errno: number, extAck?: string, options?: { cause?: unknown }) {
    super(op, errno, { ...options, ...(extAck ? { detail: extAck } : {}) });
    this.extAck = extAck;
  }
}

/** Configuration was invalid; `field` names the offending setting. */
export class ConfigError extends PodnetError {
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('ECONFIG', `invalid config ${field}: ${message}`, options);
    this.field = field;
  }
}
