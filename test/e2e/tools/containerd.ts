/**
 * A private containerd for end-to-end tests: own config, root, state and
 * gRPC socket under a temporary directory, CRI disabled, no systemd. Tests
 * drive it with `ctr`, the way `ctr run --cni` exercises go-cni, the CNI
 * library containerd's CRI uses for kubelet.
 */
import { mkdtemp, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { randomSuffix } from './netns.js';
import { cleanEnv, run, runOk, startBackground, waitFor, type Background, type RunOptions, type RunResult } from './proc.js';

/** Directories outside the instance's own that containerd's shims and runc create; removed on stop when the instance made them. */
const SHARED_RUNTIME_DIRS = ['/run/containerd', '/run/containerd/s', '/run/containerd/fifo', '/run/containerd/runc'];

/** How to start the instance. */
export interface ContainerdOptions {
  /** Parent of the instance's directory (default: the system temp dir). */
  readonly parentDir?: string;
  /** containerd namespace used by `ctr` (default `podnet-<random>`). */
  readonly namespace?: string;
  /** How long to wait for the socket to answer (default 15 s). */
  readonly readyTimeoutMs?: number;
}

/** What `runArgs` builds a `ctr run` for. */
export interface CtrRunSpec {
  readonly image: string;
  readonly id: string;
  /** `--cni`: go-cni sets up networking from /etc/cni/net.d and /opt/cni/bin. */
  readonly cni?: boolean;
  /** `--rm` (default true); only a foreground `ctr run --rm` calls CNI DEL on exit. */
  readonly rm?: boolean;
  readonly command: readonly string[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Mount points at or below `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(`${dir}/`)));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Removes a cgroup directory tree with rmdir only (cgroupfs refuses anything else), children first. */
async function removeCgroupTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(join(dir, e.name));
  await rmdir(dir).catch(() => undefined);
}

/** PIDs of containerd shims serving `namespace`: they outlive containerd if a task was left behind. */
async function shimPids(namespace: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (!argv[0]?.endsWith('containerd-shim-runc-v2')) continue;
    const i = argv.indexOf('-namespace');
    if (i >= 0 && argv[i + 1] === namespace) pids.push(Number(name));
  }
  return pids;
}

/** A containerd process this test started, with everything it needs under `dir`. */
export class PrivateContainerd {
  /** The instance's directory: config, root, state, socket, runc root, fifos. */
  readonly dir: string;
  readonly socket: string;
  readonly namespace: string;
  readonly #process: Background;
  readonly #sharedDirsBefore: ReadonlySet<string>;
  #stopped = false;

  private constructor(dir: string, namespace: string, proc: Background, sharedDirsBefore: ReadonlySet<string>) {
    this.dir = dir;
    this.socket = join(dir, 'containerd.sock');
    this.namespace = namespace;
    this.#process = proc;
    this.#sharedDirsBefore = sharedDirsBefore;
  }

  /** containerd's PID. */
  get pid(): number {
    return this.#process.pid;
  }

  /**
   * Writes a config, starts containerd and waits until `ctr version`
   * answers. Stops and removes everything again if that fails.
   */
  static async start(opts: ContainerdOptions = {}): Promise<PrivateContainerd> {
    const sharedDirsBefore = new Set<string>();
    for (const d of SHARED_RUNTIME_DIRS) if (await exists(d)) sharedDirsBefore.add(d);
    const dir = await mkdtemp(join(opts.parentDir ?? tmpdir(), 'podnet-ctd-'));
    const namespace = opts.namespace ?? `podnet-${randomSuffix(4)}`;
    const config = join(dir, 'config.toml');
    // Only what a ctr-driven test needs: no CRI (it would want its own CNI
    // setup), no snapshotters this host lacks, no tracing exporters.
    await writeFile(
      config,
      [
        'version = 2',
        `root = ${JSON.stringify(join(dir, 'root'))}`,
        `state = ${JSON.stringify(join(dir, 'state'))}`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
        '[grpc]',
        `  address = ${JSON.stringify(join(dir, 'containerd.sock'))}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(join(dir, 'containerd.sock.ttrpc'))}`,
        '[debug]',
        '  address = ""',
        '  level = "warn"',
        '[metrics]',
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = ${JSON.stringify(join(dir, 'opt'))}`,
        '',
      ].join('\n'),
    );
    const proc = startBackground('containerd', ['--config', config], { env: cleanEnv(), timeoutMs: 3_600_000 });
    const ctd = new PrivateContainerd(dir, namespace, proc, sharedDirsBefore);
    try {
      await waitFor(
        `containerd on ${ctd.socket}`,
        async () => {
          if (proc.done) {
            const res = await proc.exited;
            throw new PodnetError('COMMAND_FAILED', `start containerd: exited ${res.code ?? res.signal}: ${res.stderr.trim().slice(-600)}`);
          }
          const v = await run('ctr', ['-a', ctd.socket, 'version'], { timeoutMs: 5_000 });
          return v.code === 0 ? true : undefined;
        },
        opts.readyTimeoutMs ?? 15_000,
        100,
      );
    } catch (e) {
      await ctd.stop().catch(() => undefined);
      throw e;
    }
    return ctd;
  }

  /** Runs `ctr -a <socket> -n <namespace> ...args`. */
  ctr(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run('ctr', ['-a', this.socket, '-n', this.namespace, ...args], { timeoutMs: 60_000, ...opts });
  }

  /** Like `ctr`, but rejects unless it exits 0. */
  ctrOk(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return runOk('ctr', ['-a', this.socket, '-n', this.namespace, ...args], { timeoutMs: 60_000, ...opts });
  }

  /** Starts a long-running `ctr` (e.g. a foreground `ctr run`); stop it by its PID. */
  spawnCtr(args: readonly string[], opts: RunOptions = {}): Background {
    return startBackground('ctr', ['-a', this.socket, '-n', this.namespace, ...args], { timeoutMs: 600_000, ...opts });
  }

  /** `ctr images import`; resolves with the image names now present. */
  async importImage(tarPath: string): Promise<string[]> {
    await this.ctrOk(['images', 'import', tarPath], { timeoutMs: 120_000 });
    const res = await this.ctrOk(['images', 'ls', '-q']);
    return res.stdout.split('\n').filter((l) => l !== '');
  }

  /**
   * Arguments for `ctr run` that keep runc's state and the I/O fifos inside
   * this instance's directory instead of /run/containerd.
   */
  runArgs(spec: CtrRunSpec): string[] {
    const a = ['run', '--runc-root', join(this.dir, 'runc'), '--fifo-dir', join(this.dir, 'fifo')];
    if (spec.rm ?? true) a.push('--rm');
    if (spec.cni) a.push('--cni');
    return [...a, spec.image, spec.id, ...spec.command];
  }

  /** Kills every task of the namespace (SIGKILL) and deletes every container. Does not call CNI DEL. */
  async removeAllContainers(): Promise<void> {
    const tasks = (await this.ctr(['tasks', 'ls', '-q'])).stdout.split('\n').filter((l) => l !== '');
    for (const id of tasks) await this.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    for (const id of tasks) {
      await waitFor(`task ${id} to stop`, async () => {
        const res = await this.ctr(['tasks', 'rm', '-f', id]);
        return res.code === 0 || /not found/.test(res.stderr) ? true : undefined;
      }, 10_000, 100).catch(() => undefined);
    }
    const containers = (await this.ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter((l) => l !== '');
    for (const id of containers) await this.ctr(['containers', 'rm', id]);
  }

  /**
   * Removes leftover containers, stops containerd by PID (SIGTERM, then
   * SIGKILL), kills shims of this namespace that survived, unmounts and
   * removes the directory, the namespace's cgroups and the shared runtime
   * directories this instance created. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const failures: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        failures.push(`${what}: ${(e as Error).message}`);
      }
    };

    if (!this.#process.done) await attempt('remove containers', () => this.removeAllContainers());
    await attempt('stop containerd', async () => {
      await this.#process.stop('SIGTERM', 5_000);
    });
    await attempt('kill leftover shims', async () => {
      for (const pid of await shimPids(this.namespace)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await waitFor('shims to exit', async () => ((await shimPids(this.namespace)).length === 0 ? true : undefined), 5_000, 50);
    });
    await attempt('unmount', async () => {
      for (const m of await mountsUnder(this.dir)) await run('umount', ['-l', m], { timeoutMs: 10_000 });
      const left = await mountsUnder(this.dir);
      if (left.length > 0) throw new PodnetError('BUSY', `still mounted: ${left.join(', ')}`);
      await rm(this.dir, { recursive: true, force: true });
    });
    await attempt('remove cgroups', async () => {
      // runc puts a container's cgroup at /<namespace>/<id> in each hierarchy.
      const top = '/sys/fs/cgroup';
      await removeCgroupTree(join(top, this.namespace));
      for (const e of await readdir(top, { withFileTypes: true }).catch(() => [])) {
        if (e.isDirectory()) await removeCgroupTree(join(top, e.name, this.namespace));
      }
    });
    await attempt('remove runtime directories', async () => {
      for (const d of [...SHARED_RUNTIME_DIRS].reverse()) {
        if (!this.#sharedDirsBefore.has(d)) await rmdir(d).catch(() => undefined);
      }
    });
    if (failures.length > 0) throw new PodnetError('CLEANUP_FAILED', `stop containerd ${this.dir}: ${failures.join('; ')}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
