/**
 * The Service proxies the Services benchmarks compare on the one-node
 * cluster, one at a time:
 *
 * - podnet: the agent's own Service handling (the DaemonSet from deploy/),
 *   switched on and off through the agent's off setting in the DaemonSet's
 *   environment, which restarts the agent pod;
 * - kube-proxy in iptables and in nftables mode: the harness-built binary
 *   (scripts/harness/build.sh kubernetes), started here on the node as a
 *   child process with the cluster's admin kubeconfig while podnet's Service
 *   handling is off, stopped by its PID, its rules removed with
 *   `kube-proxy --cleanup`.
 *
 * Each proxy says which backends its datapath holds for a Service, read
 * from the kernel: podnet's pinned maps (frontend -> slots -> backends), the
 * Service's KUBE-SVC chain (`iptables -t nat -S`), or its service chain in
 * the `ip kube-proxy` table (`nft list chain`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { BpfMap } from '../../../agent/src/libbpf/index.js';
import { backendKey, backendValue, slotKey, slotValue, svcKey, svcValue, IP_PROTO } from '../../../agent/src/maps/services.js';
import { listPinnedMaps } from '../../../agent/src/cli/maps-read.js';
import { Background, run, sleep, startBackground, SYSTEM_PATH } from '../../e2e/tools/proc.js';

/** A Service port as the proxies name it. */
export interface ServicePortRef {
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly clusterIP: string;
  readonly port: number;
}

export interface ServiceProxy {
  readonly name: string;
  /** Why it cannot run here, or undefined. */
  unavailable(): Promise<string | undefined>;
  /** Starts the proxy from cold; resolves once its process runs, with the process start on the performance.now() clock. */
  start(): Promise<{ startedAt: number }>;
  /** Stops it and removes what it programmed. */
  stop(): Promise<void>;
  /** The backends ("ip:port", sorted) its datapath holds for `svc`; undefined when the Service is not programmed. */
  backends(svc: ServicePortRef): Promise<string[] | undefined>;
  /** The proxy process's resident set (VmRSS), KiB. */
  rssKiB(): Promise<number>;
  /** Things the proxy logged that a reader of the results should know (errors), bounded. */
  notes(): string[];
  /**
   * When the kernel first reported a rule change of `svc`'s chain after
   * `since` (performance.now() clock): a rule set is committed as one
   * transaction, so this is when the new rules took effect. Only for the
   * netfilter proxies, whose full listing costs too much to poll.
   */
  ruleChangeAfter?(svc: ServicePortRef, since: number, timeoutMs: number): Promise<number>;
  /** Starts recording rule changes of `svc`'s chain (before ruleChangeAfter). */
  watchRules?(svc: ServicePortRef): void;
  /** The first recorded rule change of `svc`'s chain after `since`, if any. */
  ruleSeenAfter?(svc: ServicePortRef, since: number): number | undefined;
}

/**
 * `nft monitor rules`: every rule added or deleted in any table (iptables-nft
 * rules included), each line stamped when it was read.
 */
export class RuleMonitor {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #done = false;
  #stderr = '';
  #partial = '';
  /** Only the lines that name a watched chain are kept (a full sync reports every rule). */
  readonly #watch = new Set<string>();
  readonly #hits: { at: number; needle: string }[] = [];

  constructor() {
    this.#child = spawn('nft', ['monitor', 'rules'], { env: { PATH: SYSTEM_PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child.stdout?.setEncoding('utf8');
    this.#child.stdout?.on('data', (chunk: string) => {
      const at = performance.now();
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      for (const line of parts) for (const needle of this.#watch) if (line.includes(needle)) this.#hits.push({ at, needle });
      if (this.#hits.length > 10_000) this.#hits.splice(0, this.#hits.length - 10_000);
    });
    this.#child.stderr?.on('data', (b: Buffer) => (this.#stderr = (this.#stderr + b.toString()).slice(-2000)));
    this.#exited = new Promise((resolve) => this.#child.once('close', () => resolve()));
    void this.#exited.then(() => (this.#done = true));
  }

  /** Starts keeping lines that contain `needle`. */
  watch(needle: string): void {
    this.#watch.add(needle);
  }

  /** The time of the first line after `since` that contains `needle`, if one arrived. */
  seenAfter(needle: string, since: number): number | undefined {
    return this.#hits.find((h) => h.at >= since && h.needle === needle)?.at;
  }

  /** The time of the first line after `since` that contains `needle` (watched before `since`). */
  async firstAfter(needle: string, since: number, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = this.#hits.find((h) => h.at >= since && h.needle === needle);
      if (hit) return hit.at;
      if (this.#done) throw new PodnetError('BENCH_FAILED', `nft monitor exited: ${this.#stderr.trim().slice(-300)}`);
      if (performance.now() > deadline) throw new PodnetError('TIMEOUT', `wait for a rule change of ${needle.trim()}: none within ${Math.round(timeoutMs / 1000)} s`);
      await sleep(2);
    }
  }

  async stop(): Promise<void> {
    if (this.#done) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 3000);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** VmRSS of `pid` in KiB. */
export async function vmRssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = status.match(/^VmRSS:\s+(\d+) kB/m);
  if (!m?.[1]) throw new PodnetError('BENCH_FAILED', `read VmRSS of pid ${pid}: not in /proc/${pid}/status`);
  return Number(m[1]);
}

const CLK_TCK = 100;

/** When `pid` started, on the performance.now() clock (10 ms resolution: /proc's clock ticks). */
export function processStartedAt(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTicks = Number(fields[19]);
  const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const now = performance.now();
  return now - (uptimeS - startTicks / CLK_TCK) * 1000;
}

function base32(buf: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** kube-proxy iptables mode's chain for a Service port: KUBE-SVC- + base32(sha256("ns/name:port" + "tcp"))[:16]. */
export function iptablesServiceChain(s: Pick<ServicePortRef, 'namespace' | 'name' | 'portName'>): string {
  const spn = `${s.namespace}/${s.name}${s.portName ? `:${s.portName}` : ''}`;
  return `KUBE-SVC-${base32(createHash('sha256').update(spn + 'tcp').digest()).slice(0, 16)}`;
}

/** kube-proxy nftables mode's chain for a Service port: service-HASH8-ns/name/tcp/port. */
export function nftablesServiceChain(s: Pick<ServicePortRef, 'namespace' | 'name' | 'portName'>): string {
  const base = `${s.namespace}/${s.name}/tcp/${s.portName}`;
  return `service-${base32(createHash('sha256').update(base).digest()).slice(0, 8)}-${base}`;
}

/** The KUBE-SEP chains a KUBE-SVC chain jumps to. */
export function parseSepJumps(text: string): string[] {
  return [...new Set([...text.matchAll(/-j (KUBE-SEP-[A-Z0-9]+)/g)].map((m) => m[1] as string))];
}

/** The backends in `nft list chain ip kube-proxy service-...` output: endpoint chains named ...__ip/port. */
export function parseNftBackends(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(/__(\d+\.\d+\.\d+\.\d+)\/(\d+)/g)) if (m[1] && m[2]) out.add(`${m[1]}:${m[2]}`);
  return [...out].sort();
}

export interface KubeProxyOptions {
  readonly mode: 'iptables' | 'nftables';
  readonly binary: string;
  readonly kubeconfig: string;
  readonly nodeName: string;
  readonly clusterCidr: string;
  /** SNAT every Service connection (needed when the CNI plugin sends replies around the host's netfilter). */
  readonly masqueradeAll: boolean;
  /** Runs before start (podnet's Service handling off) and after stop. */
  readonly before?: () => Promise<void>;
}

/** The sysctls kube-proxy may write even with the flags below; saved before start and put back after stop. */
const KUBE_PROXY_SYSCTLS = ['net.ipv4.conf.all.route_localnet', 'net.netfilter.nf_conntrack_max', 'net.netfilter.nf_conntrack_tcp_timeout_established', 'net.netfilter.nf_conntrack_tcp_timeout_close_wait'];

export function kubeProxy(opts: KubeProxyOptions): ServiceProxy {
  let proc: Background | undefined;
  let monitor: RuleMonitor | undefined;
  let saved: string[] = [];
  const kpNotes: string[] = [];
  // A KUBE-SEP chain's name is a hash of its Service port and endpoint, so its DNAT target never changes.
  const sepCache = new Map<string, string>();
  const name = `kube-proxy ${opts.mode}`;
  // The chain name followed by a space: not a prefix of a longer name.
  const chainNeedle = (svc: ServicePortRef): string => `${opts.mode === 'iptables' ? iptablesServiceChain(svc) : nftablesServiceChain(svc)} `;
  return {
    name,
    async unavailable() {
      const r = await run(opts.binary, ['--version'], { timeoutMs: 20_000 });
      if (r.code !== 0) return `run ${opts.binary} --version: exit ${r.code} (build it: scripts/harness/build.sh kubernetes)`;
      const tool = opts.mode === 'iptables' ? 'iptables-restore' : 'nft';
      const w = await run('sh', ['-c', `command -v ${tool}`], { timeoutMs: 5000 });
      if (w.code !== 0) return `${tool} not found (kube-proxy ${opts.mode} mode needs it; Debian package ${opts.mode === 'iptables' ? 'iptables' : 'nftables'})`;
      return undefined;
    },
    async start() {
      await opts.before?.();
      saved = [];
      for (const k of KUBE_PROXY_SYSCTLS) {
        const r = await run('sysctl', ['-n', k], { timeoutMs: 5000 });
        if (r.code === 0) saved.push(`${k}=${r.stdout.trim()}`);
      }
      monitor = new RuleMonitor();
      proc = startBackground(
        opts.binary,
        [
          `--kubeconfig=${opts.kubeconfig}`,
          `--proxy-mode=${opts.mode}`,
          `--hostname-override=${opts.nodeName}`,
          `--cluster-cidr=${opts.clusterCidr}`,
          '--metrics-bind-address=127.0.0.1:10249',
          '--healthz-bind-address=127.0.0.1:10256',
          // Leave the machine's conntrack settings and route_localnet alone.
          '--conntrack-max-per-core=0',
          '--conntrack-tcp-timeout-established=0',
          '--conntrack-tcp-timeout-close-wait=0',
          '--iptables-localhost-nodeports=false',
          // root here cannot lower its OOM score (no CAP_SYS_RESOURCE).
          '--oom-score-adj=0',
          `--masquerade-all=${opts.masqueradeAll}`,
          '--v=1',
        ],
        { timeoutMs: 3 * 3600_000, env: { PATH: SYSTEM_PATH } },
      );
      return { startedAt: processStartedAt(proc.pid) };
    },
    async stop() {
      if (proc) {
        const res = await proc.stop('SIGTERM', 10_000);
        if (res.code !== 0 && res.signal !== 'SIGTERM') kpNotes.push(`${name} exited ${res.code ?? res.signal}: ${res.stderr.trim().split('\n').slice(-3).join(' / ')}`);
        for (const l of res.stderr.split('\n')) if (/^E\d{4}/.test(l) && kpNotes.length < 20) kpNotes.push(`${name}: ${l.slice(0, 300)}`);
        proc = undefined;
      }
      await monitor?.stop();
      monitor = undefined;
      const c = await run(opts.binary, ['--cleanup', `--proxy-mode=${opts.mode}`], { timeoutMs: 300_000, env: { PATH: SYSTEM_PATH } });
      if (c.code !== 0) throw new PodnetError('BENCH_FAILED', `clean up after ${name}: kube-proxy --cleanup exited ${c.code}: ${c.stderr.trim().slice(-400)}`);
      for (const kv of saved) await run('sysctl', ['-q', '-w', kv], { timeoutMs: 5000 });
      await opts.before?.();
    },
    async backends(svc) {
      if (opts.mode === 'iptables') {
        // Above 1,000 endpoints kube-proxy leaves the "-> ip:port" comments
        // out (its large-cluster mode): follow each KUBE-SEP jump to its DNAT.
        const r = await run('iptables', ['-w', '-t', 'nat', '-S', iptablesServiceChain(svc)], { timeoutMs: 60_000 });
        if (r.code !== 0) return undefined;
        const out = new Set<string>();
        for (const sep of parseSepJumps(r.stdout)) {
          let dest = sepCache.get(sep);
          if (dest === undefined) {
            const e = await run('iptables', ['-w', '-t', 'nat', '-S', sep], { timeoutMs: 60_000 });
            dest = e.code === 0 ? /--to-destination (\d+\.\d+\.\d+\.\d+:\d+)/.exec(e.stdout)?.[1] : undefined;
            if (dest === undefined) return undefined; // referenced before it exists: not programmed yet
            sepCache.set(sep, dest);
          }
          out.add(dest);
        }
        return [...out].sort();
      }
      const r = await run('nft', ['list', 'chain', 'ip', 'kube-proxy', nftablesServiceChain(svc)], { timeoutMs: 60_000 });
      return r.code === 0 ? parseNftBackends(r.stdout) : undefined;
    },
    async rssKiB() {
      if (!proc) throw new PodnetError('BENCH_FAILED', `read RSS of ${name}: not running`);
      return vmRssKiB(proc.pid);
    },
    notes: () => [...kpNotes],
    watchRules(svc) {
      monitor?.watch(chainNeedle(svc));
    },
    ruleSeenAfter(svc, since) {
      return monitor?.seenAfter(chainNeedle(svc), since);
    },
    async ruleChangeAfter(svc, since, timeoutMs) {
      if (!monitor) throw new PodnetError('BENCH_FAILED', `watch ${name}'s rules: not running`);
      return monitor.firstAfter(chainNeedle(svc), since, timeoutMs);
    },
  };
}

export interface PodnetProxyOptions {
  /** The agent's pin directory on the node. */
  readonly bpffs: string;
  /** The environment variable and value that switch podnet's Service handling off, e.g. PODNET_SERVICES=off. */
  readonly offEnv: string;
  /** kubectl as the cluster admin; resolves with stdout, throws on failure. */
  readonly kubectl: (args: readonly string[], timeoutMs?: number) => Promise<string>;
  /** Where the DaemonSet lives. */
  readonly daemonSet: { readonly namespace: string; readonly name: string };
}

/** The pid of the running podnet agent of the cluster's DaemonSet (its command line names /etc/podnet/config.yaml). */
export function findAgentPid(exclude?: number): number | undefined {
  let best: { pid: number; start: number } | undefined;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    if (pid === exclude) continue;
    let cmd: string[];
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!cmd.includes('agent') || !cmd.includes('/etc/podnet/config.yaml') || !cmd.some((a) => a.includes('podnet'))) continue;
    try {
      const start = processStartedAt(pid);
      if (!best || start > best.start) best = { pid, start };
    } catch {
      // exited while we looked
    }
  }
  return best?.pid;
}

/** podnet's datapath view of one Service port, from the pinned maps; undefined when no frontend exists. */
export function podnetBackends(bpffs: string, svc: ServicePortRef): string[] | undefined {
  const open = (name: string): BpfMap => {
    try {
      return BpfMap.openPinned(join(bpffs, name));
    } catch (e) {
      throw new PodnetError('NOT_FOUND', `read podnet's Service maps: open ${join(bpffs, name)}: ${(e as Error).message} (is podnet's Service datapath in this build?)`, { cause: e });
    }
  };
  using services = open('pn_services');
  using slots = open('pn_svc_slots');
  using backends = open('pn_backends');
  const fe = services.typed(svcKey, svcValue).get({ addr: svc.clusterIP, port: svc.port, proto: IP_PROTO.TCP, pad: 0 });
  if (!fe) return undefined;
  const slotMap = slots.typed(slotKey, slotValue);
  const backendMap = backends.typed(backendKey, backendValue);
  const out = new Set<string>();
  for (let slot = 0; slot < fe.count; slot++) {
    const s = slotMap.get({ groupId: fe.groupId, slot });
    const b = s && backendMap.get({ backendId: s.backendId });
    if (b) out.add(`${b.addr}:${b.port}`);
  }
  return [...out].sort();
}

/** How many frontends podnet's pn_services map holds (0 when it is not pinned). */
export function podnetFrontendCount(bpffs: string): number {
  let m: BpfMap;
  try {
    m = BpfMap.openPinned(join(bpffs, 'pn_services'));
  } catch {
    return 0;
  }
  using map = m;
  return map.count();
}

export function podnetProxy(opts: PodnetProxyOptions): ServiceProxy & { off(): Promise<void>; agentPid(): number | undefined } {
  const [offName, offValue] = opts.offEnv.split('=') as [string, string | undefined];
  const ds = ['-n', opts.daemonSet.namespace, `daemonset/${opts.daemonSet.name}`];
  const setEnv = async (assignment: string): Promise<number> => {
    const before = findAgentPid();
    const out = await opts.kubectl(['set', 'env', ...ds, assignment]);
    if (/not modified|unchanged/.test(out) || out.trim() === '') {
      // Nothing changed: the agent keeps running as it is.
      const pid = findAgentPid();
      if (pid !== undefined) return pid;
    }
    await opts.kubectl(['rollout', 'status', ...ds, '--timeout=180s'], 200_000);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pid = findAgentPid(before);
      if (pid !== undefined && pid !== before) return pid;
      if (Date.now() > deadline) throw new PodnetError('TIMEOUT', `restart podnet agent with ${assignment}: no new agent process within 60 s after the rollout`);
      await sleep(100);
    }
  };
  let pid: number | undefined;
  return {
    name: 'podnet',
    async unavailable() {
      try {
        listPinnedMaps(opts.bpffs);
      } catch (e) {
        return `read podnet's pins: ${(e as Error).message}`;
      }
      const { SETTINGS } = await import('../../../agent/src/config/settings.js');
      if (!SETTINGS.some((s) => s.env === offName)) return `this build of the agent has no setting ${offName} to switch its Service handling off (so no kube-proxy variant could run with one proxy): podnet's Services are not in this build`;
      return undefined;
    },
    async start() {
      pid = await setEnv(`${offName}-`);
      return { startedAt: processStartedAt(pid) };
    },
    async stop() {
      await this.off();
    },
    async off() {
      pid = await setEnv(`${offName}=${offValue ?? 'off'}`);
    },
    async backends(svc) {
      return podnetBackends(opts.bpffs, svc);
    },
    async rssKiB() {
      const p = pid ?? findAgentPid();
      if (p === undefined) throw new PodnetError('BENCH_FAILED', 'read RSS of the podnet agent: no agent process found');
      return vmRssKiB(p);
    },
    agentPid: () => pid ?? findAgentPid(),
    notes: () => [],
  };
}
