/**
 * The one-node cluster of scripts/cluster/up.sh, for tests: start it, reach
 * it with its own kubectl and admin kubeconfig, tear it down.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanEnv, run, runOk, type RunResult } from '../../e2e/tools/proc.js';
import { REPO_ROOT } from '../../e2e/tools/repo.js';

/** build/cluster: everything up.sh makes lives here. */
export const CLUSTER_DIR = join(REPO_ROOT, 'build', 'cluster');
export const KUBECONFIG = join(CLUSTER_DIR, 'kubeconfig');
export const KUBECTL = join(CLUSTER_DIR, 'bin', 'kubectl');
/** kubectl's discovery cache, inside build/cluster rather than $HOME/.kube. */
const KUBECTL_CACHE = join(CLUSTER_DIR, 'kubectl-cache');

/** The settings in scripts/cluster/cluster.env, by name. */
export async function clusterEnv(): Promise<ReadonlyMap<string, string>> {
  const text = await readFile(join(REPO_ROOT, 'scripts', 'cluster', 'cluster.env'), 'utf8');
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
    if (m?.[1] && m[2] !== undefined) env.set(m[1], m[2]);
  }
  return env;
}

/**
 * Starts the cluster (builds what is missing first; a cold build takes long).
 * With `podnet` (the default) it applies deploy/ and waits for a Ready Node;
 * without it the Node has no network plugin and stays NotReady.
 */
export async function clusterUp(opts: { podnet?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  return runOk('bash', [join(REPO_ROOT, 'scripts', 'cluster', 'up.sh')], {
    timeoutMs: opts.timeoutMs ?? 3_600_000,
    env: cleanEnv({ PODNET_CLUSTER_DEPLOY: opts.podnet === false ? '0' : '1' }),
  });
}

/** Starts one stopped component again with its recorded command line (scripts/cluster/start.sh). */
export async function clusterStart(name: string, timeoutMs = 240_000): Promise<RunResult> {
  return runOk('bash', [join(REPO_ROOT, 'scripts', 'cluster', 'start.sh'), name], { timeoutMs });
}

/** The PID up.sh recorded for a component (run/NAME.pid holds PID and start time). */
export async function recordedPid(name: string): Promise<number> {
  const [pid] = (await readFile(join(CLUSTER_DIR, 'run', `${name}.pid`), 'utf8')).trim().split(' ');
  return Number(pid);
}

/** Stops the cluster and removes what it made; harmless when it is not running. */
export async function clusterDown(timeoutMs = 300_000): Promise<RunResult> {
  return runOk('bash', [join(REPO_ROOT, 'scripts', 'cluster', 'down.sh')], { timeoutMs });
}

/** kubectl as the cluster admin; resolves whatever the exit status. */
export function kubectl(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(KUBECTL, ['--kubeconfig', KUBECONFIG, '--cache-dir', KUBECTL_CACHE, ...args], { timeoutMs: opts.timeoutMs ?? 60_000, ...(opts.input !== undefined ? { input: opts.input } : {}) });
}

/** kubectl that must exit 0; resolves with its stdout. */
export async function kubectlOk(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const res = await runOk(KUBECTL, ['--kubeconfig', KUBECONFIG, '--cache-dir', KUBECTL_CACHE, ...args], {
    timeoutMs: opts.timeoutMs ?? 60_000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  return res.stdout;
}
