/**
 * Start-up and shutdown of `podnet agent` as a process: merge and validate
 * the settings, check privileges and the metrics address before anything is
 * loaded, start the agent, stop on SIGTERM/SIGINT. Every start-up failure is
 * one JSON log line ("start agent: ...") and exit status 1.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { buildAgentConfig, readConfigFile, settingsFromEnv, type AgentConfig, type RawSettings } from '../config/index.js';
import { PodnetError } from '../errors/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { describeFailure } from './fail.js';

type Env = Readonly<Record<string, string | undefined>>;

const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_BPF = 39n;

/** The effective capability set of this process, from /proc/self/status. */
export function effectiveCaps(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/**
 * Refuses to start without the privileges the agent needs, before libbpf
 * prints its RLIMIT_MEMLOCK advice for what is really a missing capability.
 * @throws PodnetError PERMISSION naming what is missing
 */
export function checkPrivileges(caps = effectiveCaps(), uid = process.getuid?.() ?? 0): void {
  const has = (c: bigint): boolean => (caps & (1n << c)) !== 0n;
  const missing = [
    ...(has(CAP_BPF) || has(CAP_SYS_ADMIN) ? [] : ['CAP_BPF']),
    ...(has(CAP_NET_ADMIN) ? [] : ['CAP_NET_ADMIN']),
    ...(has(CAP_SYS_ADMIN) ? [] : ['CAP_SYS_ADMIN']),
  ];
  if (missing.length > 0) {
    throw new PodnetError('PERMISSION', `start agent: needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); uid ${uid} lacks ${missing.join(', ')}`);
  }
}

/** A listen failure on the metrics address, named as the setting. */
function metricsAddrError(addr: { host: string; port: number }, code: string | undefined, cause: unknown): PodnetError {
  const what = `listen on metrics-addr ${addr.host}:${addr.port}: ${code ?? 'failed'}`;
  const hint = code === 'EADDRINUSE' ? 'another process holds the port; set --metrics-addr (PODNET_METRICS_ADDR) to a free one or "off"'
    : code === 'EADDRNOTAVAIL' ? 'no interface has that address; fix --metrics-addr'
      : code === 'EACCES' ? 'ports below 1024 need CAP_NET_BIND_SERVICE; choose another --metrics-addr' : '';
  return new PodnetError(code === 'EADDRINUSE' ? 'IN_USE' : 'INVALID_CONFIG', hint ? `${what}: ${hint}` : what, { cause });
}

/** Binds and releases the metrics address, so a busy port fails before anything is loaded. */
export async function checkMetricsAddr(addr: AgentConfig['metrics']): Promise<void> {
  if (!addr || addr.port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => reject(metricsAddrError(addr, err.code, err)));
    srv.listen({ host: addr.host, port: addr.port, exclusive: true }, () => srv.close(() => resolve()));
  });
}

/** Merges settings: flags over PODNET_* env over the config file. */
export function mergeSettings(flags: RawSettings, env: Env, file: RawSettings): RawSettings {
  return { ...file, ...settingsFromEnv(env), ...flags };
}

/** Runs the agent until SIGTERM/SIGINT. Sets exit status 1 after logging a start-up failure. */
export async function runAgent(o: { flags: RawSettings; configFile: string | undefined; env: Env }): Promise<void> {
  let log: Logger = createLogger('info');
  let cfg: AgentConfig;
  let agent: { stop(): Promise<void> };
  // Handlers first: a SIGTERM while the agent starts (or waits for its pod
  // CIDR) must stop it cleanly, not kill it with the default action.
  const abort = new AbortController();
  const stopped = new Promise<string>((resolve) => {
    const on = (signal: string) => (): void => { abort.abort(); resolve(signal); };
    process.once('SIGTERM', on('SIGTERM'));
    process.once('SIGINT', on('SIGINT'));
  });
  try {
    cfg = buildAgentConfig(mergeSettings(o.flags, o.env, o.configFile ? readConfigFile(o.configFile) : {}), hostname().toLowerCase());
    if (cfg.logLevel !== 'info') log = createLogger(cfg.logLevel);
    checkPrivileges();
    await checkMetricsAddr(cfg.metrics);
    const { Agent } = await import('../agent.js');
    try {
      agent = await Agent.start(cfg, log, { signal: abort.signal, inCluster: { host: o.env['KUBERNETES_SERVICE_HOST'], port: o.env['KUBERNETES_SERVICE_PORT'] } });
    } catch (err) {
      if (abort.signal.aborted) {
        log.info({ signal: await stopped }, 'stopped before the agent was ready; the datapath keeps running');
        return;
      }
      const code = (err as NodeJS.ErrnoException).code;
      if (cfg.metrics && (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') && (err as { port?: number }).port === cfg.metrics.port) throw metricsAddrError(cfg.metrics, code, err);
      throw err;
    }
  } catch (err) {
    const msg = describeFailure(err);
    log.fatal({ code: err instanceof PodnetError ? err.code : (err as NodeJS.ErrnoException).code ?? null }, msg.startsWith('start agent: ') ? msg : `start agent: ${msg}`);
    process.exitCode = 1;
    return;
  }
  log.info({ signal: await stopped }, 'stopping agent; the datapath keeps running');
  await agent.stop();
}
