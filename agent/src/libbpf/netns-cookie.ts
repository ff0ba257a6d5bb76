/** The cookie bpf_get_netns_cookie() returns for a network namespace, read from user space. */
import { libbpfError } from './fail.js';
import { closeFd, ffi, lastErrno } from './ffi.js';
import { notSupported } from './probe.js';
import { ENOPROTOOPT } from '../errors/errno.js';

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

/**
 * The netns cookie of the calling thread's network namespace (getsockopt
 * SO_NETNS_COOKIE on a fresh socket): what bpf_get_netns_cookie() gives a
 * BPF program for a socket of that namespace. Throws NotSupportedError
 * before Linux 5.14, SyscallError otherwise.
 */
export function netnsCookie(): bigint {
  const n = ffi();
  const fd = n.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw libbpfError('read netns cookie: create socket', -lastErrno());
  try {
    const value = new Uint8Array(8);
    const len = new Uint32Array([8]);
    if (n.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, value, len) !== 0) {
      const errno = lastErrno();
      if (errno === ENOPROTOOPT) throw notSupported('netnsCookie');
      throw libbpfError('read netns cookie: getsockopt SO_NETNS_COOKIE', -errno);
    }
    return Buffer.from(value).readBigUInt64LE(0);
  } finally {
    closeFd(fd);
  }
}
