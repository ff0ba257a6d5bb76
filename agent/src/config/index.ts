/**
 * Agent configuration: flags, PODNET_* environment variables and a YAML/JSON
 * file are merged by the CLI (flags win over env, env over the file), then
 * validated here once, setting by setting from the table in settings.ts,
 * into a frozen object that is passed by constructor.
 */
import { ConfigError } from '../errors/index.js';
import { parsePool, type Pool } from '../ipam/pool.js';
import { serviceMapSizes, type ServiceMapSizes } from '../maps/services.js';
import { SETTINGS, parseListenAddr, type AttachMode, type HostRoutingMode, type LogLevel, type RawSettings, type SettingKey } from './settings.js';

export { DEFAULTS, KNOWN_KEYS, SETTINGS, parseListenAddr, settingsFromEnv, type HostRoutingMode, type Setting, type RawSettings, type SettingKey } from './settings.js';
export { readConfigFile } from './file.js';

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
  /** cgroup v2 directory of the socket load balancer; undefined: from mountinfo. */
  readonly cgroupRoot: string | undefined;
  readonly logLevel: LogLevel;
  /** bpf/ sources to compile (default: shipped beside the agent). */
  readonly bpfDir: string | undefined;
  /**
   * How pod programs attach: clsact (default) or tcx links; auto = tcx when
   * the kernel has it. tcx attach and detach each wait for an RCU grace
   * period, 8-20 ms per hook, which would dominate CNI ADD (docs/architecture.md).
   */
  readonly attachMode: AttachMode;
  /** MTU of pod interfaces when the CNI config does not set one. */
  readonly mtu: number;
  /** Seconds between periodic reconcile passes; 0 runs reconcile only at start. */
  readonly reconcileIntervalSeconds: number;
  /** Per-pod labels (namespace, pod) on traffic metrics; off keeps totals by direction. */
  readonly metricsPodLabels: boolean;
  /** podnet serves Services (--services on); off leaves them to kube-proxy. */
  readonly services: boolean;
  /**
   * How traffic between pods of this node travels (--host-routing): bpf,
   * kernel, or auto (bpf with services on, kernel with them off); the
   * agent resolves auto once at start (resolveHostRouting).
   */
  readonly hostRouting: HostRoutingMode;
  /** Service CIDRs for pn_svc_ranges when the API server has no ServiceCIDR objects. */
  readonly serviceCidrs: readonly string[];
  /** CIDRs that narrow NodePort addresses; undefined: every address of the node. */
  readonly nodePortAddresses: readonly string[] | undefined;
  /** Entries of pn_services (see serviceMapSizes). */
  readonly lbMapSize: number;
  /** Entries of pn_ct. */
  readonly ctMapSize: number;
}

/** max_entries of every resizable service map, from --lb-map-size and --ct-map-size. */
export function serviceMapSizesOf(cfg: Pick<AgentConfig, 'lbMapSize' | 'ctMapSize'>): ServiceMapSizes {
  const lb = cfg.lbMapSize;
  return serviceMapSizes({ pn_services: lb, pn_svc_stats: lb, pn_affinity: lb, pn_backends: 2 * lb, pn_svc_slots: 4 * lb, pn_ct: cfg.ctMapSize });
}

/**
 * Validates raw settings (camelCase keys, from flags/env/file) into an AgentConfig.
 * Empty strings and null count as unset.
 * @throws ConfigError naming the first invalid setting (kebab-case, as the flag is spelled).
 */
export function buildAgentConfig(raw: RawSettings | Record<string, unknown>, hostname: string): AgentConfig {
  const v: Partial<Record<SettingKey, unknown>> = {};
  for (const s of SETTINGS) {
    const given = (raw as Record<string, unknown>)[s.key];
    if (Array.isArray(given)) throw new ConfigError(s.flag, `given ${given.length} times (${given.map((x) => JSON.stringify(x)).join(', ')}); give it once`);
    const value = given === undefined || given === null || given === '' ? (s.key === 'nodeName' ? hostname : s.default) : given;
    v[s.key] = value === undefined ? undefined : s.parse(value);
  }
  const sourceRaw = v.source as string;
  const source: Source = sourceRaw === 'kubernetes' ? { kind: 'kubernetes', kubeconfig: v.kubeconfig as string | undefined } : { kind: 'file', path: sourceRaw.slice('file:'.length) };
  const cidr = v.podCidr as string | undefined;
  if (source.kind === 'file' && cidr === undefined) {
    throw new ConfigError('pod-cidr', 'required in standalone mode (--source file:PATH): there is no Node object to read it from');
  }
  const metrics = parseListenAddr(v.metricsAddr as string);
  return Object.freeze({
    nodeName: v.nodeName as string,
    podCidr: cidr === undefined ? undefined : parsePool(cidr, 'pod-cidr'),
    bpffs: v.bpffs as string,
    stateDir: v.stateDir as string,
    apiSocket: v.apiSocket as string,
    metrics: metrics && Object.freeze(metrics),
    source: Object.freeze(source),
    uplink: v.uplink as string | undefined,
    cgroupRoot: v.cgroupRoot as string | undefined,
    logLevel: v.logLevel as LogLevel,
    bpfDir: v.bpfDir as string | undefined,
    attachMode: v.attachMode as AttachMode,
    mtu: v.mtu as number,
    reconcileIntervalSeconds: v.reconcileInterval as number,
    metricsPodLabels: v.metricsPodLabels as boolean,
    services: v.services === 'on',
    hostRouting: v.hostRouting as HostRoutingMode,
    serviceCidrs: Object.freeze([...(v.serviceCidr as string[])]),
    nodePortAddresses: v.nodeportAddresses === undefined ? undefined : Object.freeze([...(v.nodeportAddresses as string[])]),
    lbMapSize: v.lbMapSize as number,
    ctMapSize: v.ctMapSize as number,
  });
}
