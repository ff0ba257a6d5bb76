/**
 * Child processes for tests and benchmarks: every run is bounded in time,
 * every background process is stopped by its own PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { PodnetError } from '../../../agent/src/errors/index.js';

/** PATH for children: system directories only, so results do not depend on the caller's shell. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Options shared by `run` and `startBackground`. */
export interface RunOptions {
  /** Kill the child with SIGKILL after this long (default 60 s). */
  readonly timeoutMs?: number;
  /** The child's whole environment (default: `cleanEnv()`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string | Buffer;
  readonly cwd?: string;
}

/** How a child ended and what it printed. */
export interface RunResult {
  readonly command: string;
  /** Exit status, or null when a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit, in milliseconds. */
  readonly elapsedMs: number;
  /** True when the timeout killed it. */
  readonly timedOut: boolean;
}

/** An environment with only PATH (plus `extra`): none of the caller's variables leak into children. */
export function cleanEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  return { PATH: SYSTEM_PATH, ...extra };
}

function describe(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (/^[\w./:=@%+,-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

function collect(child: ChildProcess, command: string, timeoutMs: number): Promise<RunResult> {
  const started = process.hrtime.bigint();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new PodnetError('SPAWN_FAILED', `run ${command}: ${e.message}`, { cause: e }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        command,
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        elapsedMs: Number(process.hrtime.bigint() - started) / 1e6,
        timedOut,
      });
    });
  });
}

function spawnChild(file: string, args: readonly string[], opts: RunOptions): ChildProcess {
  const child = spawn(file, args, {
    env: opts.env ?? cleanEnv(),
    cwd: opts.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // A child that exits before reading its stdin must not crash the caller with EPIPE.
  child.stdin?.on('error', () => undefined);
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  else child.stdin?.end();
  return child;
}

/** Runs a command to completion; never rejects on a non-zero exit (see `runOk`). */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return collect(spawnChild(file, args, opts), describe(file, args), opts.timeoutMs ?? 60_000);
}

/** The error for a command that failed: "run CMD: exit N: <stderr tail>". */
export function commandError(res: RunResult): PodnetError {
  const how = res.timedOut ? 'timed out' : res.signal ? `killed by ${res.signal}` : `exit ${res.code}`;
  const tail = (res.stderr.trim() || res.stdout.trim()).split('\n').slice(-5).join('\n');
  return new PodnetError('COMMAND_FAILED', `run ${res.command}: ${how}${tail ? `: ${tail}` : ''}`);
}

/** Runs a command and rejects unless it exits 0. */
export async function runOk(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const res = await run(file, args, opts);
  if (res.code !== 0) throw commandError(res);
  return res;
}

/** A long-running child: output is collected, `stop()` ends it by PID. */
export class Background {
  readonly pid: number;
  readonly command: string;
  /** Settles when the child exits, however it ends. */
  readonly exited: Promise<RunResult>;
  readonly #child: ChildProcess;
  readonly #out: Buffer[] = [];
  #done = false;

  /** @internal use `startBackground` */
  constructor(child: ChildProcess, command: string, timeoutMs: number) {
    if (child.pid === undefined) throw new PodnetError('SPAWN_FAILED', `start ${command}: no pid`);
    this.pid = child.pid;
    this.command = command;
    this.#child = child;
    child.stdout?.on('data', (b: Buffer) => this.#out.push(b));
    this.exited = collect(child, command, timeoutMs);
    this.exited.then(
      () => (this.#done = true),
      () => (this.#done = true),
    );
  }

  /** True once the child has exited. */
  get done(): boolean {
    return this.#done;
  }

  /** Everything the child wrote to stdout so far. */
  stdoutSoFar(): string {
    return Buffer.concat(this.#out).toString('utf8');
  }

  /** Resolves when `pattern` appears on stdout; rejects on exit or after `timeoutMs`. */
  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stdoutSoFar().match(pattern);
      if (m) return m;
      if (this.#done) {
        const res = await this.exited;
        throw new PodnetError('COMMAND_FAILED', `wait for ${pattern} from ${this.command}: exited first (${res.code ?? res.signal}): ${res.stderr.trim().slice(-400)}`);
      }
      if (Date.now() > deadline) throw new PodnetError('TIMEOUT', `wait for ${pattern} from ${this.command}: timed out after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Sends `signal` to this child's PID, then SIGKILL after `graceMs`; resolves with its exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<RunResult> {
    if (!this.#done) {
      this.#child.kill(signal);
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
      try {
        return await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Starts a child that keeps running; it is killed after `timeoutMs` (default 10 min) at the latest. */
export function startBackground(file: string, args: readonly string[], opts: RunOptions = {}): Background {
  return new Background(spawnChild(file, args, opts), describe(file, args), opts.timeoutMs ?? 600_000);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a value other than undefined; rejects after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new PodnetError('TIMEOUT', `wait for ${what}: timed out after ${timeoutMs} ms${last instanceof Error ? `: ${last.message}` : ''}`, { cause: last });
    }
    await sleep(intervalMs);
  }
}
