/**
 * Temporarily owns the system CNI directories. `ctr run --cni` reads only
 * /etc/cni/net.d and /opt/cni/bin, so a test has to put its conflist and
 * plugins there; this module backs up whatever it displaces and puts it
 * back on `restore()`. A lock directory serialises tests that need these
 * paths at the same time.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { sleep } from './proc.js';

/** The conflist directory containerd's go-cni reads. */
export const SYSTEM_CNI_CONF_DIR = '/etc/cni/net.d';
/** The plugin directory containerd's go-cni execs from. */
export const SYSTEM_CNI_BIN_DIR = '/opt/cni/bin';
/** Lock held while a test owns the system CNI directories. */
export const CNI_PATHS_LOCK = '/run/lock/podnet-cni-paths.lock';

/** What to install. */
export interface CniPathsOptions {
  /** File name -> conflist object (or raw text). */
  readonly conflists?: Readonly<Record<string, object | string>>;
  /** Plugin binaries to copy; the installed name is the source's base name. */
  readonly plugins?: readonly string[];
  /**
   * Move every other file out of the conf dir while installed (default
   * true): go-cni uses the first conflist by name, so a leftover could win.
   */
  readonly exclusiveConfDir?: boolean;
  readonly confDir?: string;
  readonly binDir?: string;
  readonly lockPath?: string;
  /** How long to wait for another holder of the lock (default 120 s). */
  readonly lockTimeoutMs?: number;
}

type Undo = { readonly what: string; readonly run: () => Promise<void> };

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes a mkdir-based lock; a lock whose owner PID is dead is taken over. */
async function acquireLock(path: string, timeoutMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  await mkdir(dirname(path), { recursive: true });
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(join(path, 'pid'), `${process.pid}\n`);
      return async () => {
        await rm(path, { recursive: true, force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number((await readFile(join(path, 'pid'), 'utf8').catch(() => '')).trim());
    // No pid file yet means the owner is between mkdir and writeFile: wait.
    if (owner > 0 && !pidAlive(owner)) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new PodnetError('BUSY', `lock ${path}: held by pid ${owner || 'unknown'} for more than ${timeoutMs} ms`);
    }
    await sleep(100);
  }
}

/** Creates `dir` and its missing parents; returns an undo that removes the ones it created (when empty). */
async function mkdirTracked(dir: string): Promise<Undo[]> {
  const missing: string[] = [];
  for (let d = dir; !(await exists(d)); d = dirname(d)) missing.unshift(d);
  await mkdir(dir, { recursive: true });
  // Outermost first: undos run in reverse, so children go before their parents.
  return missing.map((d) => ({ what: `remove created directory ${d}`, run: () => rmdir(d).catch(ignoreNotEmpty) }));
}

function ignoreNotEmpty(e: unknown): void {
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT') throw e;
}

/** The installed files; `restore()` puts the directories back as they were. */
export class InstalledCniPaths {
  readonly confDir: string;
  readonly binDir: string;
  /** Paths of the installed conflists. */
  readonly conflists: readonly string[];
  readonly #undo: Undo[];
  readonly #unlock: () => Promise<void>;
  #restored = false;

  /** @internal use `installCniPaths` */
  constructor(confDir: string, binDir: string, conflists: string[], undo: Undo[], unlock: () => Promise<void>) {
    this.confDir = confDir;
    this.binDir = binDir;
    this.conflists = conflists;
    this.#undo = undo;
    this.#unlock = unlock;
  }

  /** Removes what was installed, puts back what was displaced, releases the lock. Idempotent. */
  async restore(): Promise<void> {
    if (this.#restored) return;
    this.#restored = true;
    await runUndo(this.#undo, this.#unlock);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.restore();
  }
}

/** Runs undos in reverse, keeps going past failures, always unlocks; rejects with every failure. */
async function runUndo(undo: readonly Undo[], unlock: () => Promise<void>): Promise<void> {
  const failures: string[] = [];
  for (const u of [...undo].reverse()) {
    try {
      await u.run();
    } catch (e) {
      failures.push(`${u.what}: ${(e as Error).message}`);
    }
  }
  await unlock();
  if (failures.length > 0) throw new PodnetError('RESTORE_FAILED', `restore CNI directories: ${failures.join('; ')}`);
}

/**
 * Installs conflists into the conf dir and plugins into the bin dir for the
 * duration of a test. Displaced files go to a backup directory beside each
 * target (`.podnet-backup-*`, outside what go-cni reads); a manifest there
 * says where each came from, should the process die before `restore()`.
 */
export async function installCniPaths(opts: CniPathsOptions): Promise<InstalledCniPaths> {
  const confDir = opts.confDir ?? SYSTEM_CNI_CONF_DIR;
  const binDir = opts.binDir ?? SYSTEM_CNI_BIN_DIR;
  const unlock = await acquireLock(opts.lockPath ?? CNI_PATHS_LOCK, opts.lockTimeoutMs ?? 120_000);
  const undo: Undo[] = [];
  try {
    const backups = new Map<string, string>();
    const manifest: string[] = [];
    const backupDirFor = async (dir: string): Promise<string> => {
      let b = backups.get(dir);
      if (!b) {
        b = await mkdtemp(join(dirname(dir), '.podnet-backup-'));
        const made = b;
        undo.push({ what: `remove backup directory ${made}`, run: () => rm(made, { recursive: true, force: true }) });
        backups.set(dir, b);
      }
      return b;
    };
    // Moves `target` aside (same file system, so a rename) and registers its return.
    const displace = async (target: string): Promise<void> => {
      if (!(await exists(target))) return;
      const dir = dirname(target);
      const backup = join(await backupDirFor(dir), basename(target));
      await rename(target, backup);
      manifest.push(`${backup} -> ${target}`);
      await writeFile(join(dirname(backup), 'MANIFEST'), manifest.join('\n') + '\n');
      undo.push({ what: `put back ${target}`, run: () => rename(backup, target) });
    };
    const place = async (target: string, write: () => Promise<void>): Promise<void> => {
      await displace(target);
      undo.push({ what: `remove installed ${target}`, run: () => rm(target, { force: true }) });
      await write();
    };

    undo.push(...(await mkdirTracked(confDir)));
    undo.push(...(await mkdirTracked(binDir)));

    if (opts.exclusiveConfDir ?? true) {
      for (const name of (await readdir(confDir)).sort()) await displace(join(confDir, name));
    }
    const conflists: string[] = [];
    for (const [name, conf] of Object.entries(opts.conflists ?? {})) {
      if (name.includes('/')) throw new PodnetError('INVALID_ARGUMENT', `install conflist ${name}: not a plain file name`);
      const target = join(confDir, name);
      await place(target, () => writeFile(target, typeof conf === 'string' ? conf : JSON.stringify(conf, null, 2) + '\n', { mode: 0o644 }));
      conflists.push(target);
    }
    for (const src of opts.plugins ?? []) {
      const target = join(binDir, basename(src));
      await place(target, () => copyFile(src, target));
    }
    return new InstalledCniPaths(confDir, binDir, conflists, undo, unlock);
  } catch (e) {
    await runUndo(undo, unlock).catch(() => undefined);
    throw e;
  }
}

/** The system CNI directories as a comparable string: which exist and what they hold (to prove a restore). */
export async function describeCniDirs(): Promise<string> {
  const parts: string[] = [];
  for (const d of ['/etc/cni', SYSTEM_CNI_CONF_DIR, '/opt/cni', SYSTEM_CNI_BIN_DIR]) {
    const entries = await readdir(d).catch(() => undefined);
    parts.push(`${d}: ${entries === undefined ? '(absent)' : entries.sort().join(',')}`);
  }
  return parts.join('\n');
}
