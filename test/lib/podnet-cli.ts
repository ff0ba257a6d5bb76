/** Runs the `podnet` CLI (bin/podnet after `make build`) as its own process, optionally as an unprivileged user. */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
