/**
 * The CNI dispatcher: validates one invocation, calls the agent, prints the
 * result or the spec error. Everything it touches is injected (environment,
 * stdin, stdout, stderr, agent client), so tests drive it in-process; only
 * main.ts binds it to the process.
 */
import type { CniAddRequest, CniCheckRequest, CniDelRequest, CniGcRequest } from '../../agent/src/api/protocol.js';
import type { AgentClient, AgentOutcome } from './agent-client.js';
import { delQueueDir, enqueueDel } from './del-queue.js';
import {
  CURRENT_VERSION,
  CniError,
  ErrorCode,
  VERB_MIN_VERSION,
  compareVersions,
  convertResult,
  isSupportedVersion,
  mergeResults,
  normaliseResult,
  versionInfo,
  type CniCommand,
} from './spec.js';
import { parseNetConf, readEnv, type CniEnv, type NetConf } from './validate.js';

/** How long each verb waits for the agent, in milliseconds. */
export interface Timeouts {
  add: number;
  del: number;
  check: number;
  gc: number;
  status: number;
}

/**
 * Default deadlines. ADD covers veth creation and program attach on a busy
 * node; DEL is short because an unanswered DEL is queued, not failed; GC may
 * walk every allocation.
 */
export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = Object.freeze({ add: 10_000, del: 5_000, check: 5_000, gc: 30_000, status: 2_000 });

/** What the dispatcher may touch. */
export interface CniIo {
  /** The process environment (only CNI_* variables are read). */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads all of stdin; not called for VERSION. */
  readStdin(): string | Promise<string>;
  /** Writes to stdout (the result or the error JSON). */
  writeStdout(text: string): void;
  /** Writes to stderr (one-line notes for the runtime's log). */
  writeStderr(text: string): void;
  /** Makes the client for the agent on `socketPath`. */
  agent(socketPath: string): AgentClient;
  /** Overrides of `DEFAULT_TIMEOUTS`. */
  timeouts?: Partial<Timeouts>;
}

/**
 * Runs one CNI invocation and returns the exit status: 0 on success, 1 after
 * printing a spec error. Never rejects.
 */
export async function runCni(io: CniIo): Promise<number> {
  // The cniVersion errors are printed in: the config's when it parsed that
  // far, else the newest.
  let errorVersion: string = CURRENT_VERSION;
  try {
    const env = readEnv(io.env);
    if (env.command === 'VERSION') {
      io.writeStdout(`${JSON.stringify(versionInfo())}\n`);
      return 0;
    }
    let stdin: string;
    try {
      stdin = await io.readStdin();
    } catch (err) {
      throw new CniError(ErrorCode.IoFailure, `read network config from stdin: ${(err as Error).message}`);
    }
    errorVersion = peekVersion(stdin) ?? CURRENT_VERSION;
    const conf = parseNetConf(stdin, { readPrevResult: env.command === 'ADD' || env.command === 'CHECK' });
    checkVersionFloor(env.command, conf);
    const timeouts = { ...DEFAULT_TIMEOUTS, ...io.timeouts };
    const client = io.agent(conf.agentSocket);
    switch (env.command) {
      case 'ADD':
        io.writeStdout(`${JSON.stringify(await cmdAdd(env, conf, client, timeouts.add))}\n`);
        return 0;
      case 'DEL':
        await cmdDel(env, conf, client, timeouts.del, io);
        return 0;
      case 'CHECK':
        await cmdCheck(env, conf, client, timeouts.check);
        return 0;
      case 'GC':
        await cmdGc(conf, client, timeouts.gc);
        return 0;
      case 'STATUS':
        await cmdStatus(client, timeouts.status);
        return 0;
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(ErrorCode.Internal, `run podnet CNI: ${(err as Error)?.message ?? String(err)}`);
    io.writeStdout(`${JSON.stringify(e.toJSON(errorVersion))}\n`);
    return 1;
  }
}

/** The config's cniVersion when it is one podnet speaks, read leniently before validation. */
function peekVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    return typeof v === 'string' && isSupportedVersion(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function checkVersionFloor(command: CniCommand, conf: NetConf): void {
  const min = VERB_MIN_VERSION[command];
  if (compareVersions(conf.cniVersion, min) < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, `check cniVersion: ${command} needs cniVersion ${min} or later, the config has ${conf.cniVersion}`);
  }
}

function common(env: CniEnv, conf: NetConf): CniAddRequest {
  return {
    containerId: env.containerId,
    netns: env.netns,
    ifName: env.ifName,
    args: { ...env.args },
    network: conf.name,
    cniVersion: conf.cniVersion,
    ...(conf.mtu !== undefined ? { mtu: conf.mtu } : {}),
  };
}

/**
 * runtimeConfig.portMappings (the portMappings capability) for ADD and
 * CHECK, passed on as the runtime sent it: the agent validates it. DEL
 * needs none (the agent removes what the endpoint holds).
 */
function portMappings(conf: NetConf): { portMappings?: unknown } {
  const pm = conf.runtimeConfig?.['portMappings'];
  return pm === undefined || pm === null ? {} : { portMappings: pm };
}

/** The CNI error for an agent that did not give an answer. */
function transportError(out: Exclude<AgentOutcome, { kind: 'response' }>, client: AgentClient, code: number, what: string): CniError {
  const why = out.kind === 'unreachable' ? `no agent listening on ${client.socketPath} (${out.errno})` : out.detail;
  const hint = code === ErrorCode.TryAgainLater ? ': try again later' : '';
  return new CniError(code, `${what}: ${why}${hint}`, `agent socket ${client.socketPath}`);
}

/** The CNI error for an agent answer other than 200: the agent's own CNI error when it sent one. */
function answerError(out: Extract<AgentOutcome, { kind: 'response' }>, what: string): CniError {
  const b = out.body as { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  if (b && typeof b.code === 'number' && Number.isInteger(b.code) && typeof b.msg === 'string') {
    return new CniError(b.code, b.msg, typeof b.details === 'string' ? b.details : undefined);
  }
  const snippet = out.text.trim().slice(0, 200);
  return new CniError(ErrorCode.Internal, `${what}: agent answered HTTP ${out.status}`, snippet || undefined);
}

async function cmdAdd(env: CniEnv, conf: NetConf, client: AgentClient, timeoutMs: number): Promise<Record<string, unknown>> {
  const what = `add ${env.containerId}/${env.ifName}`;
  const out = await client.request({ method: 'POST', path: '/v1/cni/add', body: { ...common(env, conf), ...portMappings(conf) }, timeoutMs });
  if (out.kind !== 'response') throw transportError(out, client, ErrorCode.TryAgainLater, what);
  if (out.status !== 200) throw answerError(out, what);
  if (out.body === undefined) throw new CniError(ErrorCode.Internal, `${what}: agent answered 200 without a JSON result`, out.text.slice(0, 200) || undefined);
  const ours = normaliseResult(out.body, 'agent result', ErrorCode.Internal);
  const result = conf.prevResult ? mergeResults(conf.prevResult, ours) : ours;
  return convertResult(result, conf.cniVersion);
}

async function cmdDel(env: CniEnv, conf: NetConf, client: AgentClient, timeoutMs: number, io: CniIo): Promise<void> {
  const what = `delete ${env.containerId}/${env.ifName}`;
  const { netns: _netns, ...rest } = common(env, conf);
  const body: CniDelRequest = { ...rest, ...(env.netns ? { netns: env.netns } : {}) };
  const out = await client.request({ method: 'POST', path: '/v1/cni/del', body, timeoutMs });
  if (out.kind === 'response') {
    if (out.status !== 200) throw answerError(out, what);
    return;
  }
  // The agent is down or did not finish: queue the DEL for it to replay on
  // start. DEL is idempotent, so a replay of one it did apply is harmless.
  let path: string;
  try {
    path = enqueueDel(delQueueDir(conf.stateDir), body);
  } catch (err) {
    throw new CniError(
      ErrorCode.IoFailure,
      `${what}: agent unreachable (${out.kind === 'unreachable' ? out.errno : out.detail}) and queueing the DEL failed: ${(err as Error).message}`,
    );
  }
  io.writeStderr(`podnet: ${what}: agent unreachable (${out.kind === 'unreachable' ? `${out.errno} on ${client.socketPath}` : out.detail}); queued in ${path}\n`);
}

async function cmdCheck(env: CniEnv, conf: NetConf, client: AgentClient, timeoutMs: number): Promise<void> {
  const what = `check ${env.containerId}/${env.ifName}`;
  if (!conf.prevResult) throw new CniError(ErrorCode.InvalidConfig, 'invalid config prevResult: CHECK needs the result of the previous ADD');
  const body: CniCheckRequest = { ...common(env, conf), ...portMappings(conf), prevResult: conf.prevResult };
  const out = await client.request({ method: 'POST', path: '/v1/cni/check', body, timeoutMs });
  if (out.kind !== 'response') throw transportError(out, client, ErrorCode.TryAgainLater, what);
  if (out.status !== 200) throw answerError(out, what);
}

async function cmdGc(conf: NetConf, client: AgentClient, timeoutMs: number): Promise<void> {
  const what = `garbage-collect network ${conf.name}`;
  // Without the list every attachment would look stale: refuse rather than release them all.
  if (!conf.validAttachments) throw new CniError(ErrorCode.InvalidConfig, 'invalid config cni.dev/valid-attachments: GC needs the list of valid attachments');
  const body: CniGcRequest = {
    network: conf.name,
    cniVersion: conf.cniVersion,
    validAttachments: conf.validAttachments.map((a) => ({ containerId: a.containerId, ifName: a.ifName })),
  };
  const out = await client.request({ method: 'POST', path: '/v1/cni/gc', body, timeoutMs });
  if (out.kind !== 'response') throw transportError(out, client, ErrorCode.TryAgainLater, what);
  if (out.status !== 200) throw answerError(out, what);
}

async function cmdStatus(client: AgentClient, timeoutMs: number): Promise<void> {
  const what = 'get agent status';
  const out = await client.request({ method: 'GET', path: '/v1/cni/status', timeoutMs });
  if (out.kind !== 'response') throw transportError(out, client, ErrorCode.NotReady, what);
  if (out.status !== 200) throw answerError(out, what);
}
