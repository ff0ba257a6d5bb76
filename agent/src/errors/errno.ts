/**
 * Linux errno values and names: the one place podnet spells them. FFI and
 * netlink code compare raw return values against these constants; messages
 * show the names (errnoName). The values are Linux's generic ones (x86_64,
 * arm64), which is every architecture podnet runs on.
 */
import { constants } from 'node:os';

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const ENOTTY = 25;
export const EINVAL = 22;
export const EMFILE = 24;
export const ENOSPC = 28;
export const ERANGE = 34;
export const ENAMETOOLONG = 36;
export const ENOSYS = 38;
export const ENOTEMPTY = 39;
export const ELOOP = 40;
export const ENODATA = 61;
export const ENOLINK = 67;
export const EPROTO = 71;
export const EBADMSG = 74;
export const EOVERFLOW = 75;
export const EMSGSIZE = 90;
export const ENOPROTOOPT = 92;
export const EOPNOTSUPP = 95;
export const EAFNOSUPPORT = 97;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENOBUFS = 105;
export const ETIMEDOUT = 110;
export const ECONNREFUSED = 111;
/** Kernel-internal "not supported" that leaks out of the bpf() syscall; not in libc's tables. */
export const ENOTSUPP = 524;

const NAMES: Readonly<Record<string, number>> = {
  EPERM, ENOENT, ESRCH, EINTR, EIO, ENXIO, E2BIG, EBADF, EAGAIN, ENOMEM, EACCES, EFAULT, EBUSY, EEXIST, ENODEV, ENOTDIR,
  EISDIR, EINVAL, EMFILE, ENOSPC, ERANGE, ENAMETOOLONG, ENOSYS, ENOTEMPTY, ELOOP, ENODATA, ENOLINK, EPROTO, EBADMSG,
  EOVERFLOW, EMSGSIZE, ENOPROTOOPT, EOPNOTSUPP, EAFNOSUPPORT, EADDRINUSE, EADDRNOTAVAIL, ENOBUFS, ETIMEDOUT, ECONNREFUSED, ENOTSUPP,
};
const BY_VALUE = new Map<number, string>(Object.entries(NAMES).map(([k, v]) => [v, k]));
// Names not listed above come from libuv's table; where several names share a
// value (EWOULDBLOCK/EAGAIN) the first listed, conventional one wins.
for (const [name, value] of Object.entries(constants.errno)) if (!BY_VALUE.has(value)) BY_VALUE.set(value, name);

/** The symbolic name of an errno value of either sign, e.g. 1 or -1 -> "EPERM"; "E<n>" when unknown. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  return BY_VALUE.get(n) ?? `E${n}`;
}

/** The errno value of a symbolic name, e.g. "ENOENT" -> 2; undefined for names not listed here. */
export function errnoValue(name: string): number | undefined {
  return NAMES[name] ?? (constants.errno as Record<string, number>)[name];
}
