/**
 * podnet's error hierarchy. Every error has a stable string `code` from the
 * registry in codes.ts that callers, logs and the CLI can match on, and an
 * optional `cause`; errno values and names come from errno.ts.
 * Messages read "verb object: cause", with the identifying context.
 */
import { errnoName } from './errno.js';
import { PodnetError } from './base.js';

export { PodnetError } from './base.js';
export { ERROR_CODES, type ErrorCode } from './codes.js';
export { errnoName, errnoValue } from './errno.js';

/** A system call failed; `errno` is positive and `errnoName` is its symbol. */
export class SyscallError extends PodnetError {
  readonly errno: number;
  readonly errnoName: string;
  /** @param op what was being done, e.g. "update map pn_counters" */
  constructor(op: string, errno: number, options?: { cause?: unknown; detail?: string }) {
    const name = errnoName(errno);
    super('SYSCALL', `${op}: ${name}${options?.detail ? ` (${options.detail})` : ''}`, options);
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
    super('NOT_SUPPORTED', `${feature} is not supported by this kernel: needs Linux >= ${minKernel}`, options);
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
    super('VERIFIER_REJECTED', `load program ${program}: verifier rejected it (${errnoName(errno)})${tail ? `:\n${tail}` : ''}`, options);
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
    super('INVALID_CONFIG', `invalid config ${field}: ${message}`, options);
    this.field = field;
  }
}
