/**
 * `podnet cleanup`: removes what podnet put on this node, for a node leaving
 * podnet or a broken install: the host veths of this instance's endpoints
 * (their tc filters and links go with them), every pin under the bpffs
 * directory, the state directory and the API socket, and with --cni the
 * installed conflist and entry point. Refuses while an agent is running.
 * Loaded on demand: it pulls in netlink (FFI).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { apiCall } from '../api/client.js';
import { PodnetError } from '../errors/index.js';
import { NetlinkHandle } from '../netlink/index.js';

/** What cleanup acts on. */
export interface CleanupOptions {
  bpffs: string;
  stateDir: string;
  apiSocket: string;
  /** Also remove the CNI conflist(s) naming podnet and the entry point binary. */
  cni: boolean;
  cniConfDir: string;
  cniBinDir: string;
  dryRun: boolean;
}

/** One thing cleanup removes. */
export interface CleanupItem {
  kind: 'veth' | 'pin' | 'directory' | 'state-dir' | 'socket' | 'cni-conf' | 'cni-bin';
  path: string;
}

/** The result: what was (or would be) removed, and what failed. */
export interface CleanupReport {
  dryRun: boolean;
  removed: CleanupItem[];
  failed: Array<CleanupItem & { error: string }>;
}

const VETH = /pn[0-9a-f]{12}/;

/** Host veth names this instance recorded: endpoint label files and link pins. */
export function recordedVeths(o: Pick<CleanupOptions, 'bpffs' | 'stateDir'>): string[] {
  const names = new Set<string>();
  const list = (d: string): string[] => { try { return readdirSync(d); } catch { return []; } };
  const epDir = join(o.stateDir, 'endpoints');
  for (const f of list(epDir)) {
    if (!f.endsWith('.json')) continue;
    try {
      const m = JSON.parse(readFileSync(join(epDir, f), 'utf8')) as { hostIfName?: unknown };
      if (typeof m.hostIfName === 'string' && /^pn[0-9a-f]{12}$/.test(m.hostIfName)) names.add(m.hostIfName);
    } catch { /* a torn label file names nothing */ }
  }
  const walk = (d: string): void => {
    for (const n of list(d)) {
      const p = join(d, n);
      const m = VETH.exec(n);
      if (m) names.add(m[0]);
      try { if (statSync(p).isDirectory()) walk(p); } catch { /* gone meanwhile */ }
    }
  };
  walk(join(o.bpffs, 'links'));
  return [...names].sort();
}

/** Every pin and directory under `dir`, children before their directory. */
function pinsUnder(dir: string): CleanupItem[] {
  const out: CleanupItem[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (lstatSync(p).isDirectory()) { walk(p); out.push({ kind: 'directory', path: p }); } else out.push({ kind: 'pin', path: p });
    }
  };
  walk(dir);
  out.push({ kind: 'directory', path: dir });
  return out;
}

/** CNI config files in `dir` whose plugin list names type "podnet". */
function podnetConfs(dir: string): string[] {
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  return names.filter((n) => /\.(conflist|conf|json)$/.test(n)).map((n) => join(dir, n)).filter((p) => {
    try {
      const c = JSON.parse(readFileSync(p, 'utf8')) as { type?: unknown; plugins?: Array<{ type?: unknown }> };
      return c.type === 'podnet' || (Array.isArray(c.plugins) && c.plugins.some((x) => x?.type === 'podnet'));
    } catch { return false; }
  }).sort();
}

/**
 * Throws when an agent is running on these paths: its socket answers, or it
 * holds `<state-dir>/agent.lock` (flock).
 * @throws PodnetError AGENT_RUNNING
 */
export async function refuseWhileRunning(o: Pick<CleanupOptions, 'stateDir' | 'apiSocket'>): Promise<void> {
  const answers = await apiCall(o.apiSocket, 'GET', '/v1/status', undefined, 1000).then(() => true, () => false);
  if (answers) throw new PodnetError('AGENT_RUNNING', `clean up: an agent answers on ${o.apiSocket}; stop it first`);
  const lock = join(o.stateDir, 'agent.lock');
  if (existsSync(lock)) {
    // flock(1) from util-linux: exits 1 at once when another process holds the lock.
    const r = spawnSync('flock', ['--nonblock', '--exclusive', lock, 'true'], { stdio: 'ignore', timeout: 5000 });
    if (r.status === 1) throw new PodnetError('AGENT_RUNNING', `clean up: an agent holds ${lock}; stop it first`);
  }
}

/** What cleanup would remove, in the order it removes it. */
export function plan(o: CleanupOptions): CleanupItem[] {
  const items: CleanupItem[] = [];
  for (const v of recordedVeths(o)) if (existsSync(`/sys/class/net/${v}`)) items.push({ kind: 'veth', path: v });
  if (existsSync(o.bpffs)) items.push(...pinsUnder(o.bpffs));
  if (existsSync(o.stateDir)) items.push({ kind: 'state-dir', path: o.stateDir });
  if (existsSync(o.apiSocket)) items.push({ kind: 'socket', path: o.apiSocket });
  if (o.cni) {
    for (const p of podnetConfs(o.cniConfDir)) items.push({ kind: 'cni-conf', path: p });
    const bin = join(o.cniBinDir, 'podnet');
    if (existsSync(bin)) items.push({ kind: 'cni-bin', path: bin });
  }
  return items;
}

/** Removes (or with dryRun lists) everything podnet put on the node. @throws PodnetError AGENT_RUNNING */
export async function cleanup(o: CleanupOptions): Promise<CleanupReport> {
  await refuseWhileRunning(o);
  const items = plan(o);
  const report: CleanupReport = { dryRun: o.dryRun, removed: [], failed: [] };
  if (o.dryRun) return { ...report, removed: items };
  let nl: NetlinkHandle | undefined;
  try {
    for (const it of items) {
      try {
        if (it.kind === 'veth') {
          nl ??= NetlinkHandle.open();
          const link = nl.linkByName(it.path);
          if (link) nl.deleteLink(link.index);
        } else if (it.kind === 'directory') rmdirSync(it.path);
        else if (it.kind === 'state-dir') rmSync(it.path, { recursive: true, force: true });
        else unlinkSync(it.path);
        report.removed.push(it);
      } catch (err) {
        report.failed.push({ ...it, error: err instanceof Error ? err.message : String(err) });
      }
    }
  } finally {
    nl?.close();
  }
  return report;
}

/** The text cleanup prints: one line per item. */
export function cleanupText(r: CleanupReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const lines = r.removed.map((i) => `${verb} ${i.kind} ${i.path}`);
  for (const f of r.failed) lines.push(`FAILED to remove ${f.kind} ${f.path}: ${f.error}`);
  if (lines.length === 0) lines.push('nothing to clean up');
  return lines.join('\n') + '\n';
}
