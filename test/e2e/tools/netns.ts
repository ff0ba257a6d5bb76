/**
 * Network namespaces for tests and benchmarks, made and removed with
 * iproute2 (`ip netns add/del`). Tests may shell out to `ip`; podnet's own
 * library code may not.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { run, runOk, startBackground, type Background, type RunOptions, type RunResult } from './proc.js';

/** Where iproute2 bind-mounts named namespaces. */
export const NETNS_DIR = '/run/netns';

/** A short random hex suffix for names that must not collide with concurrent runs. */
export function randomSuffix(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

/** A named network namespace this process created; `close()` deletes it. */
export class Netns {
  readonly name: string;
  /** The bind mount a CNI runtime passes as CNI_NETNS. */
  readonly path: string;
  #closed = false;

  private constructor(name: string) {
    this.name = name;
    this.path = `${NETNS_DIR}/${name}`;
  }

  /** `ip netns add <prefix>-<random>` and `ip link set lo up` inside it. */
  static async create(prefix = 'pn'): Promise<Netns> {
    const ns = new Netns(`${prefix}-${randomSuffix(4)}`);
    await runOk('ip', ['netns', 'add', ns.name], { timeoutMs: 10_000 });
    try {
      await ns.execOk('ip', ['link', 'set', 'lo', 'up']);
    } catch (e) {
      await ns.close();
      throw e;
    }
    return ns;
  }

  /** Runs a command inside the namespace (`ip netns exec`). */
  exec(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.name, file, ...args], { timeoutMs: 30_000, ...opts });
  }

  /** Like `exec`, but rejects unless the command exits 0. */
  execOk(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return runOk('ip', ['netns', 'exec', this.name, file, ...args], { timeoutMs: 30_000, ...opts });
  }

  /**
   * Starts a long-running command inside the namespace. `ip netns exec`
   * execs the command in place, so the returned PID is the command's own.
   */
  spawn(file: string, args: readonly string[], opts: RunOptions = {}): Background {
    return startBackground('ip', ['netns', 'exec', this.name, file, ...args], opts);
  }

  /** The IPv4 address (without prefix length) on `dev`, or undefined. */
  async ipv4(dev: string): Promise<string | undefined> {
    const res = await this.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', dev]);
    return res.stdout.match(/\binet (\d+\.\d+\.\d+\.\d+)\//)?.[1];
  }

  /** Deletes the namespace; succeeds when it is already gone. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const res = await run('ip', ['netns', 'del', this.name], { timeoutMs: 10_000 });
    if (res.code !== 0 && (await listNetns()).includes(this.name)) {
      throw new PodnetError('COMMAND_FAILED', `delete netns ${this.name}: ${res.stderr.trim()}`);
    }
    this.#closed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Runs `fn` with a fresh namespace and deletes it afterwards, also when `fn` throws. */
export async function withTempNetns<T>(fn: (ns: Netns) => Promise<T>, prefix = 'pn'): Promise<T> {
  const ns = await Netns.create(prefix);
  try {
    return await fn(ns);
  } finally {
    await ns.close();
  }
}

/** Names of all named namespaces under /run/netns. */
export async function listNetns(): Promise<string[]> {
  try {
    return (await readdir(NETNS_DIR)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Interface names in this process's (the host's) namespace. */
export async function hostLinks(): Promise<Set<string>> {
  const res = await runOk('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 });
  const names = new Set<string>();
  for (const line of res.stdout.split('\n')) {
    // "12: veth1234@if3: <...>": the part before "@" is the name.
    const m = line.match(/^\d+:\s+([^:@\s]+)[@:]/);
    if (m?.[1]) names.add(m[1]);
  }
  return names;
}

/**
 * Picks a /24 under `base` (e.g. "10.250") that no host route or address
 * touches yet, so a test's pod addresses cannot shadow anything on the host.
 * Random rather than first-free to keep concurrent runs apart.
 */
export async function freeSubnet24(base = '10.250'): Promise<{ subnet: string; prefix: string }> {
  const res = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all'], { timeoutMs: 10_000 });
  const addrs = await runOk('ip', ['-4', '-o', 'addr', 'show'], { timeoutMs: 10_000 });
  const used = new Set<number>();
  const re = new RegExp(`\\b${base.replaceAll('.', '\\.')}\\.(\\d+)\\.`, 'g');
  for (const m of (res.stdout + addrs.stdout).matchAll(re)) used.add(Number(m[1]));
  const free = [...Array(254).keys()].map((i) => i + 1).filter((i) => !used.has(i));
  if (free.length === 0) throw new PodnetError('BUSY', `pick a free /24 under ${base}.0.0/16: all in use`);
  const third = free[Math.floor(Math.random() * free.length)];
  return { subnet: `${base}.${third}.0/24`, prefix: `${base}.${third}` };
}

/**
 * Creates a veth pair with one end in each namespace (`ip link add A netns
 * NSA type veth peer name B netns NSB`), addresses them and brings them up.
 * Deleting either namespace removes the pair.
 */
export async function vethBetween(
  a: Netns,
  b: Netns,
  opts: { aName: string; bName: string; aAddr: string; bAddr: string; mtu?: number },
): Promise<void> {
  const mtu = opts.mtu === undefined ? [] : ['mtu', String(opts.mtu)];
  await runOk('ip', ['link', 'add', opts.aName, ...mtu, 'netns', a.name, 'type', 'veth', 'peer', 'name', opts.bName, ...mtu, 'netns', b.name], { timeoutMs: 10_000 });
  await a.execOk('ip', ['addr', 'add', opts.aAddr, 'dev', opts.aName]);
  await b.execOk('ip', ['addr', 'add', opts.bAddr, 'dev', opts.bName]);
  await a.execOk('ip', ['link', 'set', opts.aName, 'up']);
  await b.execOk('ip', ['link', 'set', opts.bName, 'up']);
}
