/**
 * Validation of a CNI invocation: the CNI_* environment and the network
 * config on stdin. Everything here runs before any side effect and throws
 * `CniError` with the spec's code and a message naming the offending
 * variable or field.
 */
import {
  CniError,
  ErrorCode,
  SUPPORTED_VERSIONS,
  isCniCommand,
  isSupportedVersion,
  normaliseResult,
  type CniCommand,
  type CniVersion,
  type Result,
} from './spec.js';

/** Where the agent listens when the config has no `agentSocket`. */
export const DEFAULT_AGENT_SOCKET = '/run/podnet/agent.sock';

/** Where the DEL queue lives when the config has no `stateDir`. */
export const DEFAULT_STATE_DIR = '/var/lib/podnet';

/** The conf's `type`: the name of this executable. */
export const PLUGIN_TYPE = 'podnet';

/** Longest interface name Linux accepts (IFNAMSIZ minus the NUL). */
const MAX_IFNAME = 15;

/** sun_path holds 108 bytes including the NUL. */
const MAX_SOCKET_PATH = 107;

/** The CNI_* variables a verb cannot run without, as the reference skel requires them. */
const REQUIRED_ENV: Readonly<Record<CniCommand, readonly string[]>> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
  VERSION: [],
};

/** The CNI_* environment after validation. Empty strings where a verb does not need a variable. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS parsed into key/value pairs. */
  args: Readonly<Record<string, string>>;
  path: string;
}

/** One `cni.dev/valid-attachments` item. */
export interface Attachment {
  containerId: string;
  ifName: string;
}

/** The network config after validation, frozen. */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: typeof PLUGIN_TYPE;
  /** Agent's unix socket (default `/run/podnet/agent.sock`). */
  agentSocket: string;
  /** Root of podnet's on-disk state; the DEL queue is `<stateDir>/del-queue` (default `/var/lib/podnet`). */
  stateDir: string;
  /** MTU of the pod interface, 68..65535, when set. */
  mtu?: number;
  /** The previous plugin's result, normalised to 1.x shape. */
  prevResult?: Result;
  /** Capability arguments from the runtime, passed through untouched. */
  runtimeConfig?: Readonly<Record<string, unknown>>;
  /** GC's `cni.dev/valid-attachments`, when present. */
  validAttachments?: readonly Attachment[];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const ARG_KEY_RE = /^[A-Za-z0-9_]+$/;

/**
 * Checks a container id as the spec defines it: not empty, starts with an
 * alphanumeric, then alphanumerics, `_`, `.` or `-`.
 * @throws CniError 4 naming `what` (CNI_CONTAINERID by default)
 */
export function validateContainerId(id: string, what = 'CNI_CONTAINERID', code: number = ErrorCode.InvalidEnvironment): void {
  if (id === '') throw new CniError(code, `validate ${what}: empty`);
  if (!ID_RE.test(id)) {
    throw new CniError(code, `validate ${what}: ${JSON.stringify(id)} must start with a letter or digit and contain only letters, digits, '_', '.' and '-'`);
  }
}

/**
 * Checks an interface name as Linux and the spec accept it: 1..15 bytes, no
 * `/`, `:` or whitespace, not `.` or `..`.
 * @throws CniError 4 naming `what` (CNI_IFNAME by default)
 */
export function validateIfName(name: string, what = 'CNI_IFNAME', code: number = ErrorCode.InvalidEnvironment): void {
  if (name === '') throw new CniError(code, `validate ${what}: empty`);
  // The kernel counts bytes, not UTF-16 units.
  if (Buffer.byteLength(name) > MAX_IFNAME) throw new CniError(code, `validate ${what}: ${JSON.stringify(name)} is longer than ${MAX_IFNAME} bytes`);
  if (name === '.' || name === '..') throw new CniError(code, `validate ${what}: ${JSON.stringify(name)} is not a valid interface name`);
  if (/[/:\s]/u.test(name)) throw new CniError(code, `validate ${what}: ${JSON.stringify(name)} contains '/', ':' or whitespace`);
}

/**
 * Parses CNI_ARGS (`K=V;K=V`). Empty segments are skipped; a segment without
 * `=` or with a key that is not alphanumeric/underscore is rejected. The value
 * is everything after the first `=`.
 * @throws CniError 4 naming CNI_ARGS
 */
export function parseCniArgs(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = eq < 0 ? '' : pair.slice(0, eq);
    if (eq < 0 || !ARG_KEY_RE.test(key)) {
      throw new CniError(ErrorCode.InvalidEnvironment, `parse CNI_ARGS: ${JSON.stringify(pair)} is not a KEY=VALUE pair`);
    }
    out[key] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * Reads and checks the CNI_* variables for the verb in CNI_COMMAND.
 * Variables a verb does not need are not validated (a runtime may leave stale
 * values there), only carried along.
 * @throws CniError 4 naming the missing or invalid variable
 */
export function readEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = env['CNI_COMMAND'] ?? '';
  if (command === '') throw new CniError(ErrorCode.InvalidEnvironment, 'read CNI_COMMAND: not set');
  if (!isCniCommand(command)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `read CNI_COMMAND: unknown command ${JSON.stringify(command)}`, `expected one of ADD, DEL, CHECK, GC, STATUS, VERSION`);
  }
  const required = REQUIRED_ENV[command];
  const missing = required.filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironment, `read environment: ${missing.join(', ')} required for ${command} but not set`);
  }
  const containerId = env['CNI_CONTAINERID'] ?? '';
  const ifName = env['CNI_IFNAME'] ?? '';
  if (required.includes('CNI_CONTAINERID')) validateContainerId(containerId);
  if (required.includes('CNI_IFNAME')) validateIfName(ifName);
  const args = command === 'VERSION' ? {} : parseCniArgs(env['CNI_ARGS'] ?? '');
  return Object.freeze({
    command,
    containerId,
    netns: env['CNI_NETNS'] ?? '',
    ifName,
    args: Object.freeze(args),
    path: env['CNI_PATH'] ?? '',
  });
}

function invalid(field: string, msg: string, code: number = ErrorCode.InvalidConfig): CniError {
  return new CniError(code, `invalid config ${field}: ${msg}`);
}

function absolutePath(conf: Record<string, unknown>, field: string, fallback: string, max?: number): string {
  const v = conf[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string' || !v.startsWith('/')) throw invalid(field, 'must be an absolute path');
  if (max !== undefined && Buffer.byteLength(v) > max) throw invalid(field, `longer than ${max} bytes`);
  return v;
}

function parseAttachments(raw: unknown, field: string): Attachment[] {
  if (!Array.isArray(raw)) throw invalid(field, 'must be a list of {containerID, ifname}');
  return raw.map((item: unknown, i): Attachment => {
    const f = `${field}[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw invalid(f, 'must be an object {containerID, ifname}');
    const o = item as Record<string, unknown>;
    const containerId = o['containerID'];
    const ifName = o['ifname'];
    if (typeof containerId !== 'string') throw invalid(`${f}.containerID`, 'must be a string');
    if (typeof ifName !== 'string') throw invalid(`${f}.ifname`, 'must be a string');
    validateContainerId(containerId, `${f}.containerID`, ErrorCode.InvalidConfig);
    validateIfName(ifName, `${f}.ifname`, ErrorCode.InvalidConfig);
    return Object.freeze({ containerId, ifName });
  });
}

/**
 * Parses and checks the network config a runtime streams on stdin.
 * Verb-specific requirements (prevResult for CHECK, valid attachments for GC,
 * the version floor of GC/STATUS) are left to the dispatcher, which checks
 * them in the spec's order.
 * With `readPrevResult: false` (DEL, GC, STATUS, which do not use it) a
 * malformed prevResult is ignored, so it cannot make a DEL fail forever.
 * @throws CniError 6 when stdin is not a JSON object, 1 for an unsupported
 *   cniVersion, 7 naming the field for anything else
 */
export function parseNetConf(stdin: string, options: { readPrevResult?: boolean } = {}): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(ErrorCode.DecodeFailure, `decode network config: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.DecodeFailure, 'decode network config: not a JSON object');
  }
  const conf = raw as Record<string, unknown>;

  const cniVersion = conf['cniVersion'];
  if (typeof cniVersion !== 'string' || cniVersion === '') throw invalid('cniVersion', 'missing or not a string');
  if (!isSupportedVersion(cniVersion)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `check cniVersion: ${JSON.stringify(cniVersion)} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }

  const name = conf['name'];
  if (typeof name !== 'string' || name === '') throw invalid('name', 'missing or not a string');
  validateContainerId(name, 'name', ErrorCode.InvalidConfig);

  const type = conf['type'];
  if (typeof type !== 'string' || type === '') throw invalid('type', 'missing or not a string');
  if (type !== PLUGIN_TYPE) throw invalid('type', `${JSON.stringify(type)} is not ${JSON.stringify(PLUGIN_TYPE)}`);

  const agentSocket = absolutePath(conf, 'agentSocket', DEFAULT_AGENT_SOCKET, MAX_SOCKET_PATH);
  const stateDir = absolutePath(conf, 'stateDir', DEFAULT_STATE_DIR);

  let mtu: number | undefined;
  if (conf['mtu'] !== undefined && conf['mtu'] !== null) {
    const v = conf['mtu'];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 68 || v > 65535) {
      throw invalid('mtu', `${JSON.stringify(v)} is not an integer in 68..65535`);
    }
    mtu = v;
  }

  let runtimeConfig: Readonly<Record<string, unknown>> | undefined;
  const rc = conf['runtimeConfig'];
  if (rc !== undefined && rc !== null) {
    if (typeof rc !== 'object' || Array.isArray(rc)) throw invalid('runtimeConfig', 'must be an object');
    runtimeConfig = Object.freeze({ ...(rc as Record<string, unknown>) });
  }

  const rawPrev = conf['prevResult'];
  const prevResult = options.readPrevResult === false || rawPrev === undefined || rawPrev === null ? undefined : normaliseResult(rawPrev, 'prevResult');

  // Spec 1.1.0 names the key cni.dev/valid-attachments; some libcni releases
  // also send the earlier spelling cni.dev/attachments with the same value.
  let validAttachments: Attachment[] | undefined;
  if (conf['cni.dev/valid-attachments'] !== undefined) {
    validAttachments = parseAttachments(conf['cni.dev/valid-attachments'], 'cni.dev/valid-attachments');
  } else if (conf['cni.dev/attachments'] !== undefined) {
    validAttachments = parseAttachments(conf['cni.dev/attachments'], 'cni.dev/attachments');
  }

  const out: NetConf = {
    cniVersion,
    name,
    type: PLUGIN_TYPE,
    agentSocket,
    stateDir,
    ...(mtu !== undefined ? { mtu } : {}),
    ...(prevResult ? { prevResult } : {}),
    ...(runtimeConfig ? { runtimeConfig } : {}),
    ...(validAttachments ? { validAttachments: Object.freeze(validAttachments) } : {}),
  };
  return Object.freeze(out);
}
