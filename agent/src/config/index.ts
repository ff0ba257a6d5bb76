/**
 * Agent configuration: flags, PODNET_* environment variables and a YAML/JSON
 * file are merged by the CLI (flags win over env, env over the file), then
 * validated here once into a frozen object that is passed by constructor.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors/index.js';
import { parsePool, type Pool } from '../ipam/index.js';

/** Where Services/EndpointSlices/Nodes come from. */
export type Source = { kind: 'kubernetes'; kubeconfig: string | undefined } | { kind: 'file'; path: string };

/** The validated agent configuration. */
export interface AgentConfig {
  readonly nodeName: string;
  /** The node's pod CIDR (standalone mode; otherwise from the Node object). */
  readonly podCidr: Pool | undefined;
  /** bpffs directory that holds every pin of this instance. */
  readonly bpffs: string;
  /** DEL queue, compiled-object cache. */
  readonly stateDir: string;
  readonly apiSocket: string;
  readonly metrics: { host: string; port: number } | undefined;
  readonly source: Source;
  readonly uplink: string | undefined;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** bpf/ sources to compile (default: shipped beside the agent). */
  readonly bpfDir: string | undefined;
  /**
   * How pod programs attach: clsact (default) or tcx links; auto = tcx when
   * the kernel has it. tcx attach and detach each wait for an RCU grace
   * period, 8-20 ms per hook, which would dominate CNI ADD (docs/architecture.md).
   */
  readonly attachMode: 'auto' | 'tcx' | 'clsact';
  /** MTU of pod interfaces when the CNI config does not set one. */
  readonly mtu: number;
  /** Per-pod labels (namespace, pod) on traffic metrics; off keeps totals by direction. */
  readonly metricsPodLabels: boolean;
}

/** Documented defaults of every setting. */
export const DEFAULTS = Object.freeze({
  bpffs: '/sys/fs/bpf/podnet',
  stateDir: '/var/lib/podnet',
  apiSocket: '/run/podnet/agent.sock',
  // 19962: not Cilium's 9962-9965 (agent, operator, envoy, hubble), so both
  // can run on one node during a migration; outside Prometheus' default
  // exporter port range 9100-9999 (fully allocated), Kubernetes' node ports
  // 10248-10260 and the NodePort range 30000-32767, and below Linux's
  // ephemeral ports (32768-60999), so no outgoing connection can hold it.
  metricsAddr: ':19962',
  source: 'kubernetes',
  logLevel: 'info',
  attachMode: 'clsact',
  mtu: 1500,
  metricsPodLabels: true,
});

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const KNOWN_KEYS = new Set([
  'nodeName', 'podCidr', 'bpffs', 'stateDir', 'apiSocket', 'metricsAddr', 'source', 'uplink', 'logLevel', 'bpfDir', 'attachMode', 'mtu',
  'metricsPodLabels', 'kubeconfig',
]);

const freeze = <T extends object>(v: T | undefined): T | undefined => (v === undefined ? v : Object.freeze(v));

/** Reads a YAML or JSON config file into raw settings (camelCase or kebab-case keys). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', `read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text); // JSON is valid YAML
  } catch (err) {
    throw new ConfigError('config', `parse ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('config', `${path}: expected a mapping of settings`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    const key = k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!KNOWN_KEYS.has(key)) throw new ConfigError(k, `unknown setting in ${path}`);
    out[key] = v;
  }
  return out;
}

function str(raw: Record<string, unknown>, key: string, field: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new ConfigError(field, `expected a string, got ${typeof v}`);
  return v;
}

function absPath(raw: Record<string, unknown>, key: string, field: string, dflt: string): string {
  const v = str(raw, key, field) ?? dflt;
  if (!isAbsolute(v)) throw new ConfigError(field, `"${v}" must be an absolute path`);
  return v;
}

/** Parses a listen address ":9962", "127.0.0.1:9962" or "off". */
export function parseListenAddr(v: string, field = 'metrics-addr'): { host: string; port: number } | undefined {
  if (v === 'off' || v === 'none') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new ConfigError(field, `"${v}" is not host:port (e.g. :9962 or 127.0.0.1:9962, or "off")`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/**
 * Validates raw settings (camelCase keys, from flags/env/file) into an AgentConfig.
 * @throws ConfigError naming the first invalid field (kebab-case, as the flag is spelled).
 */
export function buildAgentConfig(raw: Record<string, unknown>, hostname: string): AgentConfig {
  const nodeName = str(raw, 'nodeName', 'node-name') ?? hostname;
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(nodeName)) {
    throw new ConfigError('node-name', `"${nodeName}" is not a valid Kubernetes node name`);
  }
  const cidr = str(raw, 'podCidr', 'pod-cidr');
  const sourceRaw = str(raw, 'source', 'source') ?? DEFAULTS.source;
  let source: Source;
  const kubeconfig = str(raw, 'kubeconfig', 'kubeconfig');
  if (kubeconfig !== undefined && !isAbsolute(kubeconfig)) throw new ConfigError('kubeconfig', `"${kubeconfig}" must be an absolute path`);
  if (sourceRaw === 'kubernetes') source = { kind: 'kubernetes', kubeconfig };
  else if (sourceRaw.startsWith('file:') && sourceRaw.length > 5) source = { kind: 'file', path: sourceRaw.slice(5) };
  else throw new ConfigError('source', `"${sourceRaw}" must be "kubernetes" or "file:PATH"`);
  if (source.kind === 'file' && cidr === undefined) {
    throw new ConfigError('pod-cidr', 'required in standalone mode (--source file:PATH): there is no Node object to read it from');
  }
  const logLevel = (str(raw, 'logLevel', 'log-level') ?? DEFAULTS.logLevel) as AgentConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('log-level', `"${logLevel}" must be one of ${LOG_LEVELS.join(', ')}`);
  const attachMode = (str(raw, 'attachMode', 'attach-mode') ?? DEFAULTS.attachMode) as AgentConfig['attachMode'];
  if (!['auto', 'tcx', 'clsact'].includes(attachMode)) throw new ConfigError('attach-mode', `"${attachMode}" must be auto, tcx or clsact`);
  const mtuRaw = raw['mtu'] ?? DEFAULTS.mtu;
  const mtu = typeof mtuRaw === 'string' && /^\d+$/.test(mtuRaw) ? Number(mtuRaw) : mtuRaw;
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535) {
    throw new ConfigError('mtu', `${JSON.stringify(mtuRaw)} must be an integer between 576 and 65535`);
  }
  const uplink = str(raw, 'uplink', 'uplink');
  if (uplink !== undefined && !/^[^\s/:]{1,15}$/.test(uplink)) throw new ConfigError('uplink', `"${uplink}" is not an interface name`);
  const bpfDir = str(raw, 'bpfDir', 'bpf-dir');
  const podLabelsRaw = raw['metricsPodLabels'] ?? DEFAULTS.metricsPodLabels;
  const metricsPodLabels = podLabelsRaw === 'true' ? true : podLabelsRaw === 'false' ? false : podLabelsRaw;
  if (typeof metricsPodLabels !== 'boolean') throw new ConfigError('metrics-pod-labels', `${JSON.stringify(podLabelsRaw)} must be true or false`);
  return Object.freeze({
    nodeName,
    podCidr: cidr === undefined ? undefined : parsePool(cidr, 'pod-cidr'),
    bpffs: absPath(raw, 'bpffs', 'bpffs', DEFAULTS.bpffs),
    stateDir: absPath(raw, 'stateDir', 'state-dir', DEFAULTS.stateDir),
    apiSocket: absPath(raw, 'apiSocket', 'api-socket', DEFAULTS.apiSocket),
    metrics: freeze(parseListenAddr(str(raw, 'metricsAddr', 'metrics-addr') ?? DEFAULTS.metricsAddr)),
    source: Object.freeze(source),
    uplink,
    logLevel,
    bpfDir,
    attachMode,
    mtu,
    metricsPodLabels,
  });
}
