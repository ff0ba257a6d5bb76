/** Runs the `podnet` CLI (bin/podnet after `make build`) as its own process, optionally as an unprivileged user. */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiCall } from '../../agent/src/api/client.js';
import type { AgentStatus } from '../../agent/src/api/protocol.js';

export const PODNET = join(resolve(fileURLToPath(import.meta.url), '../../..'), 'bin/podnet');

/** The outcome of one CLI run. */
export interface CliRun { code: number | null; stdout: string; stderr: string }

/**
 * Runs bin/podnet with `args` and exactly `env` (plus PATH), bounded to 30 s.
 * Asynchronous, so an agent in this process can answer it. With `asNobody`
 * it runs as uid/gid 65534 without groups (setpriv), like an operator without root.
 */
export function podnet(args: string[], o: { env?: Record<string, string>; asNobody?: boolean } = {}): Promise<CliRun> {
  const [cmd, argv] = o.asNobody ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', PODNET, ...args]] as const : [PODNET, args] as const;
  return new Promise((res, rej) => {
    const child = spawn(cmd, argv, { env: { PATH: '/usr/bin:/bin', ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', (e) => { clearTimeout(timer); rej(e); });
    child.on('close', (code) => { clearTimeout(timer); res({ code, stdout, stderr }); });
  });
}

/** `podnet agent` running as its own process. */
export interface AgentProcess { child: import('node:child_process').ChildProcess; stderr: () => string; exited: Promise<number | null> }

/** Starts `bin/podnet agent ARGS` with `env` (plus the caller's PATH); stderr is kept. */
export function startAgentProcess(args: string[], env: Record<string, string> = {}): AgentProcess {
  const child = spawn(PODNET, ['agent', ...args], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

/**
 * Polls the agent's /v1/status on `socket` until `accept` takes it (default:
 * ready), for at most 30 s; fails at once if the process exits.
 */
export async function waitAgentStatus(socket: string, r: AgentProcess, accept: (s: AgentStatus) => boolean = (s) => s.ready): Promise<AgentStatus> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (r.child.exitCode !== null) throw new Error(`agent exited with ${r.child.exitCode}: ${r.stderr()}`);
    const s = await apiCall<AgentStatus>(socket, 'GET', '/v1/status', undefined, 1000).catch(() => undefined);
    if (s && accept(s)) return s;
    if (Date.now() > deadline) throw new Error(`agent status not as expected within 30 s: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
