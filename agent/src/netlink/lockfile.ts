/**
 * An exclusive advisory lock on a file (flock(2)), held for the life of the
 * process that took it: the kernel drops it when the descriptor closes,
 * also when the process is killed, so a crashed agent never leaves a stale
 * lock. It lives beside the other libc bindings of this layer.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { PodnetError, SyscallError } from '../errors/index.js';
import { EAGAIN } from '../errors/errno.js';
import { LOCK_EX, LOCK_NB, O_CLOEXEC, O_CREAT } from './constants.js';
import { libc } from './libc.js';

const O_RDWR = 2;

/** Another process holds the lock. */
export class LockHeldError extends PodnetError {
  constructor(readonly path: string, readonly holder: number | undefined) {
    super('LOCKED', `lock ${path}: held by ${holder ? `process ${holder}` : 'another process'} (another podnet agent uses this state dir)`);
  }
}

/** A held lock; `release()` (or process exit) frees it. */
export class FileLock implements Disposable {
  private constructor(readonly path: string, private fd: number) {}

  /**
   * Takes the lock on `path` without waiting, creating the file (mode 0600),
   * and writes this process's PID into it for people and for the error of
   * the next taker.
   * @throws LockHeldError when another process holds it; SyscallError otherwise.
   */
  static acquire(path: string): FileLock {
    const c = libc();
    const fd = c.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
    if (fd < 0) throw new SyscallError(`lock ${path}: open`, c.errno());
    if (c.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      const errno = c.errno();
      c.close(fd);
      if (errno === EAGAIN) throw new LockHeldError(path, readHolder(path));
      throw new SyscallError(`lock ${path}: flock`, errno);
    }
    writeFileSync(path, `${process.pid}\n`);
    return new FileLock(path, fd);
  }

  /** True when some process holds the lock on `path` (a missing file is unlocked). */
  static isHeld(path: string): boolean {
    const c = libc();
    const fd = c.open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return false;
    try {
      // EWOULDBLOCK is EAGAIN on Linux. Closing the fd drops a lock taken here again.
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return false;
      return c.errno() === EAGAIN;
    } finally {
      c.close(fd);
    }
  }

  /** Frees the lock. Safe to call twice. */
  release(): void {
    if (this.fd < 0) return;
    libc().close(this.fd);
    this.fd = -1;
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
