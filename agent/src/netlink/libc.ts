/**
 * The few libc calls the netlink and netns layers make, bound through koffi
 * on first use (nothing is loaded at import time). Every function returns the
 * raw libc result; read `errno()` right after a call that returned -1.
 */
import koffi from 'koffi';

/** libc functions as podnet calls them; buffers are passed as pointers to their bytes. */
export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, addrLen: number): number;
  getsockname(fd: number, addr: Buffer, addrLen: Uint32Array): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, valueLen: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrLen: number): number;
  /**
   * sendto(fd, buf, len, 0, NULL, 0) on koffi's worker thread: resolves with
   * the bytes sent or -errno. For requests the kernel is slow to process
   * (netlink runs them inside sendmsg), so the event loop keeps running.
   */
  sendAsync(fd: number, buf: Buffer, len: number): Promise<number>;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrLen: Uint32Array | null): number;
  close(fd: number): number;
  setns(fd: number, nstype: number): number;
  unshare(flags: number): number;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: null): number;
  umount2(target: string, flags: number): number;
  open(path: string, flags: number, mode: number): number;
  /** ioctl(fd, request) with no argument (e.g. NS_GET_NSTYPE). */
  ioctl0(fd: number, request: number): number;
  flock(fd: number, op: number): number;
  unlink(path: string): number;
  getpid(): number;
  gettid(): number;
  /** errno left by the last call on this thread. */
  errno(): number;
}

let bound: Libc | undefined;

/** The libc bindings, loaded once per process on first use. */
export function libc(): Libc {
  if (bound) return bound;
  const lib = koffi.load('libc.so.6');
  const open = lib.func('int open(const char *path, int flags, ...)');
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)');
  const sendto = lib.func('intptr_t sendto(int fd, const void *buf, uintptr_t len, int flags, const void *addr, uint32_t addrlen)');
  bound = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    getsockname: lib.func('int getsockname(int fd, void *addr, void *len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
    sendto,
    recvfrom: lib.func('intptr_t recvfrom(int fd, void *buf, uintptr_t len, int flags, void *addr, void *addrlen)'),
    close: lib.func('int close(int fd)'),
    setns: lib.func('int setns(int fd, int nstype)'),
    unshare: lib.func('int unshare(int flags)'),
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    // open(2) is variadic; the mode must travel as a variadic argument.
    open: (path: string, flags: number, mode: number): number => open(path, flags, 'uint32_t', mode) as number,
    ioctl0: (fd: number, request: number): number => ioctl(fd, request) as number,
    flock: lib.func('int flock(int fd, int op)'),
    unlink: lib.func('int unlink(const char *path)'),
    getpid: lib.func('int getpid(void)'),
    gettid: lib.func('int gettid(void)'),
    errno: () => koffi.errno(),
    sendAsync: (fd, buf, len) =>
      new Promise<number>((resolve, reject) => {
        // `buf` stays referenced by this closure until the call returns.
        sendto.async(fd, buf, len, 0, null, 0, (err: unknown, n: number) => {
          if (err) reject(err instanceof Error ? err : new Error(String(err)));
          else resolve(n < 0 ? -koffi.errno() : n);
        });
      }),
  };
  return bound;
}
