/** Turning libbpf's -errno returns into podnet errors, off the fast path. */
import { SyscallError } from '../errors/index.js';
import { lastErrno, libbpfStrerror, warningsSince } from './ffi.js';

/**
 * A SyscallError for `op` from a libbpf return code (-errno). When `mark`
 * is given, libbpf warnings printed since then are added as detail, so the
 * message says which map or section libbpf choked on.
 */
export function libbpfError(op: string, rc: number, mark?: number): SyscallError {
  const errno = rc < 0 ? -rc : rc > 0 ? rc : lastErrno() || 5; // 5 = EIO: a failure with no errno at all
  const details: string[] = [];
  const own = libbpfStrerror(errno);
  if (own) details.push(own);
  if (mark !== undefined) details.push(...warningsSince(mark));
  return new SyscallError(op, errno, details.length ? { detail: details.join('; ') } : undefined);
}

/** A SyscallError for a pointer-returning call that gave NULL (errno holds the cause). */
export function nullError(op: string, mark?: number): SyscallError {
  return libbpfError(op, -(lastErrno() || 5), mark);
}
