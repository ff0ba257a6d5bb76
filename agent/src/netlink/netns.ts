/**
 * Network namespaces as file descriptors, and the one place where the
 * calling thread changes namespace. Namespace switches act on the calling
 * thread only (Node's main thread for synchronous code); libuv's worker
 * threads never move, which is why callbacks here must be synchronous.
 */
import { fstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { errnoName, PodnetError, SyscallError } from '../errors/index.js';
import { EINVAL, ENOENT, ENOTTY } from '../errors/errno.js';
import { CLONE_NEWNET, MNT_DETACH, MS_BIND, MS_REC, MS_SHARED, NS_GET_NSTYPE, O_CLOEXEC, O_CREAT, O_EXCL, O_NONBLOCK, O_RDONLY } from './constants.js';
import { libc } from './libc.js';


/** CLONE_NEW* flags by namespace kind, for messages. */
const NS_TYPES: Record<number, string> = {
  0x00020000: 'mount', 0x02000000: 'cgroup', 0x04000000: 'uts', 0x08000000: 'ipc', 0x10000000: 'user', 0x20000000: 'pid', 0x40000000: 'network', 0x00000080: 'time',
};
const nsTypeName = (t: number): string => NS_TYPES[t] ?? `type 0x${t.toString(16)}`;

/** A path that exists but is not a network namespace. */
export class NotNetnsError extends PodnetError {
  constructor(readonly path: string, what: string) {
    super('NOT_NETNS', `open netns ${path}: ${what}`);
  }
}

/** Where `ip netns` keeps named namespaces. */
export const DEFAULT_NETNS_DIR = '/run/netns';

const THREAD_NETNS = '/proc/thread-self/ns/net';

function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || name.length > 255) {
    throw new PodnetError('INVALID_ARGUMENT', `check netns name "${name}": must be a single path component`);
  }
}

/** An open handle on a network namespace (an nsfs file descriptor). */
export class NetNs implements Disposable {
  readonly path: string;
  readonly name?: string;
  private fdValue: number;

  private constructor(fd: number, path: string, name?: string) {
    this.fdValue = fd;
    this.path = path;
    if (name !== undefined) this.name = name;
  }

  /** The namespace file descriptor; -1 once closed. */
  get fd(): number {
    return this.fdValue;
  }

  /**
   * Opens the namespace behind `path` (a bind-mounted netns file or
   * /proc/PID/ns/net) and checks that it is one.
   * @throws SyscallError when it cannot be opened; NotNetnsError when `path`
   *   is a regular file, a directory or another kind of namespace.
   */
  static open(path: string, name?: string): NetNs {
    const c = libc();
    const fd = c.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0) throw new SyscallError(`open netns ${path}`, c.errno());
    const type = c.ioctl0(fd, NS_GET_NSTYPE);
    if (type !== CLONE_NEWNET) {
      // ENOTTY: not an nsfs file at all (regular file, directory, device).
      const what = type < 0 ? (c.errno() === ENOTTY ? 'not a namespace file' : `NS_GET_NSTYPE: ${errnoName(c.errno())}`) : `a ${nsTypeName(type)} namespace, not a network namespace`;
      c.close(fd);
      throw new NotNetnsError(path, what);
    }
    return new NetNs(fd, path, name);
  }

  /** Opens the calling thread's current network namespace; `path` names the thread by pid and tid. */
  static current(): NetNs {
    const c = libc();
    const fd = c.open(THREAD_NETNS, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError(`open netns ${THREAD_NETNS}`, c.errno());
    // thread-self means another thread elsewhere; the explicit path stays meaningful in messages.
    return new NetNs(fd, `/proc/${c.getpid()}/task/${c.gettid()}/ns/net`);
  }

  /**
   * Creates a named namespace like `ip netns add NAME`: makes `dir` a shared
   * mount point, creates `dir/NAME`, unshares a fresh namespace on this thread,
   * bind-mounts it onto the file and returns the thread to its namespace.
   * Throws SyscallError (EEXIST when the name is taken).
   */
  static create(name: string, dir: string = DEFAULT_NETNS_DIR): NetNs {
    checkName(name);
    const c = libc();
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    makeSharedMountPoint(dir);
    const path = join(dir, name);
    const fd = c.open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError(`create netns ${name}: create ${path}`, c.errno());
    c.close(fd);
    try {
      switchNetns(
        `create netns ${name}`,
        () => {
          if (c.unshare(CLONE_NEWNET) !== 0) throw new SyscallError(`create netns ${name}: unshare`, c.errno());
        },
        () => {
          if (c.mount(THREAD_NETNS, path, 'none', MS_BIND, null) !== 0) {
            throw new SyscallError(`create netns ${name}: bind mount onto ${path}`, c.errno());
          }
        },
      );
    } catch (err) {
      c.unlink(path);
      throw err;
    }
    return NetNs.open(path, name);
  }

  /** Removes a named namespace like `ip netns del NAME` (lazy unmount, then unlink); a missing one is fine. */
  static remove(name: string, dir: string = DEFAULT_NETNS_DIR): void {
    checkName(name);
    const c = libc();
    const path = join(dir, name);
    if (c.umount2(path, MNT_DETACH) !== 0) {
      const errno = c.errno();
      // EINVAL: not a mount point (half-created); ENOENT: already gone.
      if (errno !== EINVAL && errno !== ENOENT) throw new SyscallError(`remove netns ${name}: unmount ${path}`, errno);
    }
    if (c.unlink(path) !== 0) {
      const errno = c.errno();
      if (errno !== ENOENT) throw new SyscallError(`remove netns ${name}: unlink ${path}`, errno);
    }
  }

  /** True when both handles refer to the same namespace (same nsfs device and inode). */
  sameAs(other: NetNs): boolean {
    const a = fstatSync(this.fd, { bigint: true });
    const b = fstatSync(other.fd, { bigint: true });
    return a.dev === b.dev && a.ino === b.ino;
  }

  /** The namespace's inode number, as `ls -iL /proc/self/ns/net` shows it. */
  inode(): bigint {
    return fstatSync(this.fd, { bigint: true }).ino;
  }

  /** Closes the descriptor (the namespace lives on while mounted or used). Safe to call twice. */
  close(): void {
    if (this.fdValue < 0) return;
    libc().close(this.fdValue);
    this.fdValue = -1;
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Makes `dir` a shared mount point, bind-mounting it onto itself first if it is not a mount point, as iproute2 does. */
function makeSharedMountPoint(dir: string): void {
  const c = libc();
  for (let attempt = 0; attempt < 2; attempt++) {
    if (c.mount('none', dir, null, MS_SHARED | MS_REC, null) === 0) return;
    const errno = c.errno();
    if (errno !== EINVAL || attempt > 0) throw new SyscallError(`create netns dir ${dir}: make it a shared mount`, errno);
    if (c.mount(dir, dir, 'none', MS_BIND | MS_REC, null) !== 0) {
      throw new SyscallError(`create netns dir ${dir}: bind mount it onto itself`, c.errno());
    }
  }
}

function isThenable(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs `fn` after `enter` moved this thread to another network namespace and
 * always moves it back, even when `fn` throws. The only code that changes the
 * thread's namespace. If moving back fails the thread is stranded, which is
 * reported over any error from `fn` (kept as its cause).
 */
function switchNetns<T>(what: string, enter: () => void, fn: () => T): T {
  const c = libc();
  const home = NetNs.current();
  try {
    enter();
    let failed = false;
    let failure: unknown;
    try {
      const result = fn();
      if (isThenable(result)) {
        // The async part would run after the switch back, in the wrong namespace.
        (result as Promise<unknown>).then(undefined, () => undefined);
        throw new PodnetError('INVALID_ARGUMENT', `${what}: callback returned a promise; only synchronous work runs inside the namespace`);
      }
      return result;
    } catch (err) {
      failed = true;
      failure = err;
      throw err;
    } finally {
      if (c.setns(home.fd, CLONE_NEWNET) !== 0) {
        const errno = c.errno();
        // Throwing from finally is deliberate: a thread left in a foreign namespace must not go unnoticed.
        throw new SyscallError(`${what}: return thread ${c.gettid()} to its network namespace`, errno, failed ? { cause: failure } : {});
      }
    }
  } finally {
    home.close();
  }
}

/**
 * Runs `fn` with the calling thread inside `ns` and always returns the thread
 * to its own namespace, also when `fn` throws. `fn` must be synchronous: a
 * returned promise is refused. Sockets opened inside stay bound to `ns`.
 * Throws SyscallError when entering or leaving fails.
 */
export function withNetns<T>(ns: NetNs, fn: () => T): T {
  const c = libc();
  return switchNetns(
    `enter netns ${ns.path}`,
    () => {
      if (c.setns(ns.fd, CLONE_NEWNET) !== 0) throw new SyscallError(`enter netns ${ns.path}`, c.errno());
    },
    fn,
  );
}
