/**
 * Drives CNI network lists through build/cnidriver, a small program linked
 * against libcni (github.com/containernetworking/cni in module mode, the
 * version scripts/harness/versions.env pins), so tests and benchmarks call
 * plugins exactly as a container runtime does, GC and STATUS included.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { cleanEnv, commandError, run, runOk } from './proc.js';
import { harnessEnv } from './harness.js';
import { BUILD_DIR, REPO_ROOT } from './repo.js';

/** Where `make build/cnidriver` (scripts/harness/cnidriver.sh) puts the driver. */
export const DEFAULT_CNIDRIVER = join(BUILD_DIR, 'cnidriver');

/** The driver's verbs; gc and status are libcni's GCNetworkList and GetStatusNetworkList (CNI 1.1.0). */
export type CniVerb = 'add' | 'check' | 'del' | 'gc' | 'status';

/** One container interface named in `cni.dev/valid-attachments`. */
export interface CniAttachment {
  readonly containerID: string;
  readonly ifname: string;
}

/** How to call the driver. */
export interface CniDriverOptions {
  /** Path of the .conflist (or single .conf) file. */
  readonly conflist: string;
  /** Directories searched for plugin binaries (CNI_PATH). */
  readonly cniPath: readonly string[];
  /** libcni's result cache; private to the test so nothing lands in /var/lib/cni. */
  readonly cacheDir: string;
  readonly containerId?: string;
  /** CNI_NETNS, e.g. `/run/netns/<name>`. */
  readonly netns?: string;
  /** CNI_IFNAME (default eth0). */
  readonly ifname?: string;
  /** CNI_ARGS pairs. */
  readonly args?: Readonly<Record<string, string>>;
  /** Runtime capability arguments (portMappings, bandwidth, ...). */
  readonly capabilityArgs?: Readonly<Record<string, unknown>>;
  /** gc only: the attachments to keep. */
  readonly valid?: readonly CniAttachment[];
  /** The driver binary (default `build/cnidriver`). */
  readonly driver?: string;
  /** Upper bound for the call (default 120 s). */
  readonly timeoutMs?: number;
  /** Extra environment for the driver; plugins inherit it, as they inherit a runtime's. */
  readonly env?: Readonly<Record<string, string>>;
}

/** A CNI error object as the spec defines it. */
export interface CniErrorObject {
  readonly code: number;
  readonly msg: string;
  readonly details?: string;
  readonly cniVersion?: string;
}

/** One interface of a CNI result. */
export interface CniInterface {
  readonly name: string;
  readonly mac?: string;
  readonly mtu?: number;
  readonly sandbox?: string;
}

/** One address of a CNI result; `interface` indexes `interfaces`. */
export interface CniIpConfig {
  readonly address: string;
  readonly gateway?: string;
  readonly interface?: number;
}

/** A CNI 1.0 ADD result. */
export interface CniResult {
  readonly cniVersion: string;
  readonly interfaces?: readonly CniInterface[];
  readonly ips?: readonly CniIpConfig[];
  readonly routes?: readonly { readonly dst: string; readonly gw?: string }[];
  readonly dns?: Readonly<Record<string, unknown>>;
}

/** What `gc` prints: the stale cached attachments it deleted, and whether plugins got a GC. */
export interface CniGcSummary {
  readonly staleDeleted: readonly CniAttachment[];
  readonly pluginsGC: boolean;
}

/** What `status` prints: false when the list's version predates STATUS. */
export interface CniStatusSummary {
  readonly pluginsAsked: boolean;
}

interface CniCallBase {
  readonly verb: CniVerb;
  /** Nanoseconds spent inside the libcni call, without the driver's start-up. */
  readonly libcniNs: number | undefined;
  /** Wall time of the whole driver process, in milliseconds. */
  readonly wallMs: number;
  /** Plugin and driver diagnostics (the timing line removed). */
  readonly stderr: string;
}

/** The outcome of one driver call: the printed output, or the CNI error. */
export type CniCall =
  | (CniCallBase & { readonly ok: true; readonly output: unknown })
  | (CniCallBase & { readonly ok: false; readonly error: CniErrorObject });

function driverArgs(verb: CniVerb, o: CniDriverOptions, timeoutMs: number): string[] {
  const a = [verb, '--conflist', o.conflist, '--cache-dir', o.cacheDir, '--timing', '--timeout', `${timeoutMs}ms`];
  if (o.containerId !== undefined) a.push('--container-id', o.containerId);
  if (o.netns !== undefined) a.push('--netns', o.netns);
  if (o.ifname !== undefined) a.push('--ifname', o.ifname);
  if (o.args !== undefined) a.push('--args', Object.entries(o.args).map(([k, v]) => `${k}=${v}`).join(';'));
  if (o.capabilityArgs !== undefined) a.push('--capability-args', JSON.stringify(o.capabilityArgs));
  if (o.valid !== undefined) a.push('--valid', o.valid.map((v) => `${v.containerID}/${v.ifname}`).join(','));
  return a;
}

/** Splits the driver's timing line out of its stderr. */
function parseTiming(stderr: string): { libcniNs: number | undefined; rest: string } {
  const lines = stderr.split('\n');
  let libcniNs: number | undefined;
  const rest: string[] = [];
  for (const line of lines) {
    if (line.startsWith('{"cnidriverTiming"')) {
      try {
        const t = (JSON.parse(line) as { cnidriverTiming?: { ns?: unknown } }).cnidriverTiming;
        if (typeof t?.ns === 'number') {
          libcniNs = t.ns;
          continue;
        }
      } catch {
        // A plugin line that merely looks like ours: keep it.
      }
    }
    rest.push(line);
  }
  return { libcniNs, rest: rest.join('\n') };
}

/**
 * Runs one verb through the driver. Resolves with the CNI error object when
 * the plugin chain fails (exit 1); rejects only when the driver itself could
 * not run (bad usage, crash, timeout).
 */
export async function cniDriver(verb: CniVerb, opts: CniDriverOptions): Promise<CniCall> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const res = await run(opts.driver ?? DEFAULT_CNIDRIVER, driverArgs(verb, opts, timeoutMs), {
    env: cleanEnv({ ...opts.env, CNI_PATH: opts.cniPath.join(':') }),
    // The driver bounds itself; this only catches a wedged driver.
    timeoutMs: timeoutMs + 10_000,
  });
  const { libcniNs, rest } = parseTiming(res.stderr);
  const base = { verb, libcniNs, wallMs: res.elapsedMs, stderr: rest };
  if (res.code === 0) {
    const text = res.stdout.trim();
    return { ...base, ok: true, output: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }
  if (res.code === 1) {
    let error: CniErrorObject | undefined;
    try {
      const parsed = JSON.parse(res.stdout) as Partial<CniErrorObject>;
      if (typeof parsed.code === 'number' && typeof parsed.msg === 'string') error = parsed as CniErrorObject;
    } catch {
      // fall through: not a CNI error object
    }
    if (error) return { ...base, ok: false, error };
  }
  throw commandError(res);
}

/** Describes a failed call: "cni add c1: code 7: msg (details)". */
function callError(call: CniCall & { ok: false }, what: string): PodnetError {
  const e = call.error;
  return new PodnetError('CNI', `cni ${call.verb} ${what}: code ${e.code}: ${e.msg}${e.details ? ` (${e.details})` : ''}`, { cause: e });
}

/** ADD that must succeed; resolves with the result and the libcni time. */
export async function cniAdd(opts: CniDriverOptions): Promise<{ result: CniResult; call: CniCall }> {
  const call = await cniDriver('add', opts);
  if (!call.ok) throw callError(call, opts.containerId ?? '');
  if (!isCniResult(call.output)) throw new PodnetError('CNI', `cni add ${opts.containerId ?? ''}: output is not a CNI result`);
  return { result: call.output, call };
}

/** A verb without a result (check, del) that must succeed. */
export async function cniMustSucceed(verb: 'check' | 'del', opts: CniDriverOptions): Promise<CniCall> {
  const call = await cniDriver(verb, opts);
  if (!call.ok) throw callError(call, opts.containerId ?? '');
  return call;
}

function isCniResult(v: unknown): v is CniResult {
  return typeof v === 'object' && v !== null && typeof (v as { cniVersion?: unknown }).cniVersion === 'string';
}

/** The first IPv4 address of a result, without its prefix length. */
export function resultIPv4(result: CniResult): string {
  const addr = result.ips?.find((ip) => /^\d+\.\d+\.\d+\.\d+\//.test(ip.address))?.address;
  if (!addr) throw new PodnetError('CNI', `read pod address: result has no IPv4 address: ${JSON.stringify(result)}`);
  return addr.slice(0, addr.indexOf('/'));
}

/** Writes a network configuration list as `<dir>/<name>.conflist` and returns its path. */
export async function writeConflist(dir: string, conflist: { readonly name: string } & Record<string, unknown>): Promise<string> {
  const path = join(dir, `${conflist.name}.conflist`);
  await writeFile(path, JSON.stringify(conflist, null, 2) + '\n');
  return path;
}

/**
 * Builds the driver with `scripts/harness/cnidriver.sh` into the harness
 * cache (a no-op when built) and copies it to `out`; resolves with `out`.
 */
export async function buildCniDriver(out: string = DEFAULT_CNIDRIVER): Promise<string> {
  await runOk('bash', [join(REPO_ROOT, 'scripts', 'harness', 'cnidriver.sh'), out], { env: harnessEnv(), timeoutMs: 600_000 });
  return out;
}
