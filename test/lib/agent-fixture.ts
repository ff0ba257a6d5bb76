/**
 * Test fixtures for agent-level tests: a private agent instance (own bpffs
 * directory, state dir, socket) in this process, pod network namespaces, and
 * the real CNI entry point exec'd the way a container runtime does.
 * Everything created is removed by `cleanup()`, also after failures.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, existsSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Agent, type AgentOptions } from '../../agent/src/agent.js';
import { buildAgentConfig, type AgentConfig } from '../../agent/src/config/index.js';
import { silentLogger, type Logger } from '../../agent/src/log/index.js';

export const REPO = resolve(fileURLToPath(import.meta.url), '../../..');
export const CNI_BUNDLE = join(REPO, 'build/cni/podnet');

/** A short random suffix for names (interface names are at most 15 chars). */
export const rand = (n = 4): string => randomBytes(n).toString('hex').slice(0, n * 2);

/**
 * A pod CIDR for one test: 10.<second>.<random>.0/<prefix>, so a run never
 * collides with routes another run (or a crashed one) left behind.
 */
export function testCidr(second: number, prefix = 24): string {
  return `10.${second}.${randomBytes(1)[0]!}.0/${prefix}`;
}

/** One private agent instance and the paths it uses. */
export class TestNode {
  readonly dir: string;
  readonly bpffs: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly cniBin: string;
  readonly netnsNames = new Set<string>();
  agent: Agent | undefined;
  cfg: AgentConfig;

  constructor(readonly podCidr: string, extra: Record<string, unknown> = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'podnet-test-'));
    this.bpffs = `/sys/fs/bpf/podnet-test-${rand()}`;
    this.socket = join(this.dir, 'agent.sock');
    this.stateDir = join(this.dir, 'state');
    this.cniBin = join(this.dir, 'cni-bin');
    this.cfg = buildAgentConfig({
      nodeName: 'test-node', podCidr, bpffs: this.bpffs, stateDir: this.stateDir, apiSocket: this.socket,
      metricsAddr: 'off', source: 'file:/dev/null', logLevel: 'silent', ...extra,
    }, 'test-node');
    // The entry point is installed under the name runtimes exec: "podnet".
    if (!existsSync(CNI_BUNDLE)) throw new Error(`${CNI_BUNDLE} is missing: run make build first`);
    mkdirSync(this.cniBin, { recursive: true });
    copyFileSync(CNI_BUNDLE, join(this.cniBin, 'podnet'));
    chmodSync(join(this.cniBin, 'podnet'), 0o755);
  }

  /** Starts (or restarts) the agent in this process. */
  async start(opts: AgentOptions = {}, cfg: Partial<AgentConfig> = {}, log: Logger = silentLogger()): Promise<Agent> {
    // The socket load balancer hooks every connect() of the host: only tests that ask for it get it.
    this.agent = await Agent.start({ ...this.cfg, ...cfg }, log, { socketLb: false, ...opts });
    return this.agent;
  }

  /** Stops the agent; the datapath stays pinned, as in production. */
  async stop(): Promise<void> {
    await this.agent?.stop();
    this.agent = undefined;
  }

  /** Creates a pod network namespace; returns its name and path. */
  netns(label = 'pod'): { name: string; path: string } {
    const name = `pntest-${label}-${rand()}`;
    execFileSync('ip', ['netns', 'add', name]);
    this.netnsNames.add(name);
    return { name, path: `/run/netns/${name}` };
  }

  /** Deletes a pod namespace created by netns(). */
  deleteNetns(name: string): void {
    try { execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' }); } catch { /* already gone */ }
    this.netnsNames.delete(name);
  }

  /** The network config a runtime passes on stdin. */
  conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: '1.1.0', name: 'podnet-test', type: 'podnet', agentSocket: this.socket, stateDir: this.stateDir, ...extra };
  }

  /** Execs the installed CNI entry point like a runtime: CNI_* env + config on stdin. */
  async cni(verb: string, o: { containerId?: string; netns?: string; ifName?: string; args?: string; conf?: Record<string, unknown> } = {}): Promise<CniRun> {
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: verb, CNI_PATH: this.cniBin };
    if (o.containerId !== undefined) env['CNI_CONTAINERID'] = o.containerId;
    if (o.netns !== undefined) env['CNI_NETNS'] = o.netns;
    env['CNI_IFNAME'] = o.ifName ?? 'eth0';
    if (o.args !== undefined) env['CNI_ARGS'] = o.args;
    const run = await execCni(join(this.cniBin, 'podnet'), env, JSON.stringify(o.conf ?? this.conf()));
    // DEL answers once the pod is cut off; its veth and address are released
    // right after. Tests that look at the kernel next wait for that.
    if (verb === 'DEL' || verb === 'GC') await this.agent?.endpoints.settled();
    return run;
  }

  /** A pod: its own namespace, ADDed through the CNI entry point (asserted to succeed); returns its container id, namespace and address. */
  async addPod(label: string): Promise<{ id: string; ns: { name: string; path: string }; ip: string }> {
    const ns = this.netns(label);
    const id = `ctr-${label}-${rand()}`;
    const r = await this.cni('ADD', { containerId: id, netns: ns.path });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return { id, ns, ip: String((r.json as { ips: Array<{ address: string }> }).ips[0]!.address).split('/')[0]! };
  }

  /** Removes every namespace, the agent, its pins and its files. */
  async cleanup(): Promise<void> {
    await this.stop().catch(() => {});
    for (const n of [...this.netnsNames]) this.deleteNetns(n);
    // Host veths of pods whose netns went away die with the netns; the pins go here.
    rmSync(this.bpffs, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The outcome of one plugin exec. */
export interface CniRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON. */
  json: any;
}

/** Runs a CNI plugin binary with env and stdin, bounded to 30 s. */
export function execCni(bin: string, env: Record<string, string>, stdin: string): Promise<CniRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown;
      try { json = stdout ? JSON.parse(stdout) : undefined; } catch { json = undefined; }
      resolvePromise({ code, stdout, stderr, json });
    });
    child.stdin.end(stdin);
  });
}

/** Runs a command inside a namespace and returns its exit code (bounded). */
export function inNetns(ns: string, cmd: string[], timeoutMs = 10_000): { code: number; out: string } {
  try {
    const out = execFileSync('ip', ['netns', 'exec', ns, ...cmd], { timeout: timeoutMs, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, out };
  } catch (err) {
    const e = err as { status?: number; stdout?: string };
    return { code: e.status ?? -1, out: e.stdout ?? '' };
  }
}

/** Host-side interfaces whose names podnet uses (pn + 12 hex). */
export function podnetHostVeths(): string[] {
  const out = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return [...out.matchAll(/^\d+: (pn[0-9a-f]{12})[@:]/gm)].map((m) => m[1]!);
}
