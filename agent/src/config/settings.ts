/**
 * Every agent setting, listed once: its flag, PODNET_* variable, config file
 * key, type, default, help text and validation. The `podnet agent` flags, the
 * environment and file readers, DEFAULTS and the README's configuration
 * table (scripts/gen-settings.mjs) all derive from SETTINGS. Import-free
 * apart from the error classes, so read commands can load it cheaply.
 */
import { ConfigError } from '../errors/index.js';

/** The value type of a setting as flags, env and files spell it. */
export type SettingType = 'string' | 'number' | 'boolean';

/** One agent setting. */
export interface Setting<K extends string = string, V = unknown> {
  /** camelCase key: the config file key (kebab-case `flag` is accepted too). */
  readonly key: K;
  /** The flag without dashes, kebab-case; messages name the setting by it. */
  readonly flag: string;
  /** The environment variable: PODNET_ + the flag in upper snake case. */
  readonly env: string;
  readonly type: SettingType;
  /** The default when nothing sets it; undefined means unset (or computed, see defaultText). */
  readonly default: string | number | boolean | undefined;
  /** How help and the README show the default when it is not a literal. */
  readonly defaultText?: string;
  /** One line for `podnet agent --help`. */
  readonly describe: string;
  /** The README's "meaning" cell (Markdown); defaults to describe. */
  readonly doc?: string;
  /** Validates a value (already non-empty) and returns it typed. @throws ConfigError naming `flag` */
  readonly parse: (v: unknown) => V;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const ATTACH_MODES = ['auto', 'tcx', 'clsact'] as const;
const HOST_ROUTING_MODES = ['auto', 'bpf', 'kernel'] as const;

/** A log level the agent accepts. */
export type LogLevel = (typeof LOG_LEVELS)[number];
/** A pod program attach mode. */
export type AttachMode = (typeof ATTACH_MODES)[number];
/** How traffic between pods of a node travels, as --host-routing spells it. */
export type HostRoutingMode = (typeof HOST_ROUTING_MODES)[number];

function str(flag: string, v: unknown): string {
  if (typeof v !== 'string') throw new ConfigError(flag, `expected a string, got ${describeValue(v)}`);
  return v;
}

/** How a value that is not what a setting wants reads in a message. */
function describeValue(v: unknown): string {
  if (Array.isArray(v)) return `${v.length} values (${v.map((x) => JSON.stringify(x)).join(', ')}); give it once`;
  if (v !== null && typeof v === 'object') return 'a mapping';
  return typeof v === 'string' ? JSON.stringify(v) : `${typeof v} ${String(v)}`;
}

function oneOf<T extends string>(flag: string, choices: readonly T[]): (v: unknown) => T {
  return (v) => {
    const s = str(flag, v);
    if (!(choices as readonly string[]).includes(s)) throw new ConfigError(flag, `"${s}" must be ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`);
    return s as T;
  };
}

function absolutePath(flag: string): (v: unknown) => string {
  return (v) => {
    const s = str(flag, v);
    if (!s.startsWith('/')) throw new ConfigError(flag, `"${s}" must be an absolute path`);
    return s;
  };
}

function integer(flag: string, min: number, max: number): (v: unknown) => number {
  return (v) => {
    const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(flag, `${describeValue(v)} must be an integer between ${min} and ${max}`);
    }
    return n;
  };
}

function boolean(flag: string): (v: unknown) => boolean {
  return (v) => {
    if (v === true || v === 'true') return true;
    if (v === false || v === 'false') return false;
    throw new ConfigError(flag, `${describeValue(v)} must be true or false`);
  };
}

/** Parses "a.b.c.d/len" (IPv4) into its canonical form, or says why not. */
export function parseCidr4(flag: string, s: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s.trim());
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const len = m ? Number(m[5]) : NaN;
  if (!m || octets.some((o) => o > 255) || !(len >= 0 && len <= 32)) throw new ConfigError(flag, `"${s}" is not an IPv4 CIDR like 10.96.0.0/12`);
  const n = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const masked = len === 0 ? 0 : (n & (~0 << (32 - len))) >>> 0;
  if (masked !== n) throw new ConfigError(flag, `"${s}" has host bits set; did you mean ${[24, 16, 8, 0].map((sh) => (masked >>> sh) & 255).join('.')}/${len}?`);
  return `${octets.join('.')}/${len}`;
}

/** A comma-separated list of IPv4 CIDRs (at least one). */
function cidrList(flag: string): (v: unknown) => string[] {
  return (v) => {
    const items = str(flag, v).split(',').map((x) => x.trim()).filter((x) => x !== '');
    if (items.length === 0) throw new ConfigError(flag, 'give at least one CIDR');
    return [...new Set(items.map((c) => parseCidr4(flag, c)))];
  };
}

function setting<K extends string, V>(key: K, flag: string, rest: Omit<Setting<K, V>, 'key' | 'flag' | 'env'>): Setting<K, V> {
  return Object.freeze({ key, flag, env: `PODNET_${flag.toUpperCase().replace(/-/g, '_')}`, ...rest });
}

/** Every agent setting, in the order help and the README list them. */
export const SETTINGS = Object.freeze([
  setting('nodeName', 'node-name', {
    type: 'string', default: undefined, defaultText: 'hostname',
    describe: "This node's name",
    doc: "this node's name",
    parse: (v) => {
      const s = str('node-name', v);
      if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(s)) throw new ConfigError('node-name', `"${s}" is not a valid Kubernetes node name`);
      return s;
    },
  }),
  setting('podCidr', 'pod-cidr', {
    type: 'string', default: undefined,
    describe: 'Pod CIDR of this node, e.g. 10.244.1.0/24 (required with --source file:PATH)',
    doc: "the node's pod CIDR, e.g. `10.244.1.0/24` (/8../30; network and broadcast are never handed out). Required in standalone mode",
    parse: (v) => str('pod-cidr', v),
  }),
  setting('bpffs', 'bpffs', {
    type: 'string', default: '/sys/fs/bpf/podnet',
    describe: 'bpffs directory for every pin of this instance',
    doc: 'directory for every pin (maps, programs, links); bpffs is mounted at `/sys/fs/bpf` if nothing is',
    parse: absolutePath('bpffs'),
  }),
  setting('stateDir', 'state-dir', {
    type: 'string', default: '/var/lib/podnet',
    describe: 'DEL queue, endpoint labels and the compiled-object cache',
    parse: absolutePath('state-dir'),
  }),
  setting('apiSocket', 'api-socket', {
    type: 'string', default: '/run/podnet/agent.sock',
    describe: "The agent's API socket (mode 0600)",
    doc: 'the API socket (mode 0600); read commands and `podnet cleanup` take it too',
    parse: absolutePath('api-socket'),
  }),
  setting('metricsAddr', 'metrics-addr', {
    // 19962: not Cilium's 9962-9965 (agent, operator, envoy, hubble), so both
    // can run on one node during a migration; outside Prometheus' default
    // exporter port range 9100-9999 (fully allocated), Kubernetes' node ports
    // 10248-10260 and the NodePort range 30000-32767, and below Linux's
    // ephemeral ports (32768-60999), so no outgoing connection can hold it.
    type: 'string', default: ':19962',
    describe: 'host:port for /metrics, /healthz and /readyz, or "off"',
    doc: '`/metrics`, `/healthz`, `/readyz`; `off` disables',
    parse: (v) => {
      const s = str('metrics-addr', v);
      parseListenAddr(s);
      return s;
    },
  }),
  setting('metricsPodLabels', 'metrics-pod-labels', {
    type: 'boolean', default: true,
    describe: 'Label traffic metrics per pod; --no-metrics-pod-labels keeps totals by direction',
    doc: 'label traffic metrics with `namespace` and `pod`; `--no-metrics-pod-labels` (or `false` in env/file) exports node-wide totals by direction instead, for nodes where a series per pod is too many',
    parse: boolean('metrics-pod-labels'),
  }),
  setting('source', 'source', {
    type: 'string', default: 'kubernetes',
    describe: '"kubernetes" or "file:PATH" (standalone mode)',
    doc: '`kubernetes`: the pod CIDR is this node\'s Node `spec.podCIDRs` (the agent is live but not ready until it is set); `file:PATH` for standalone mode with `--pod-cidr`',
    parse: (v) => {
      const s = str('source', v);
      if (s !== 'kubernetes' && !(s.startsWith('file:') && s.length > 5)) throw new ConfigError('source', `"${s}" must be "kubernetes" or "file:PATH"`);
      return s;
    },
  }),
  setting('kubeconfig', 'kubeconfig', {
    type: 'string', default: undefined, defaultText: 'in-cluster',
    describe: 'kubeconfig file for the kubernetes source (default: the pod\'s service account)',
    doc: 'kubeconfig for the `kubernetes` source (its current context: CA, client certificate, token or tokenFile, or basic auth; exec plugins and auth-providers are refused); unset means the in-cluster config (service-account token, re-read for every request, and `KUBERNETES_SERVICE_HOST`)',
    parse: absolutePath('kubeconfig'),
  }),
  setting('uplink', 'uplink', {
    type: 'string', default: undefined,
    describe: "The node's external interface",
    doc: "the node's external interface (used by later datapath features)",
    parse: (v) => {
      const s = str('uplink', v);
      if (!/^[^\s/:]{1,15}$/.test(s)) throw new ConfigError('uplink', `"${s}" is not an interface name`);
      return s;
    },
  }),
  setting('cgroupRoot', 'cgroup-root', {
    type: 'string', default: undefined, defaultText: 'from mountinfo',
    describe: 'cgroup v2 directory the socket load balancer attaches at (default: the hierarchy\'s root)',
    doc: 'the cgroup v2 directory the socket load balancer (host-originated traffic to Services) attaches at; unset means the root of the hierarchy in `/proc/self/mountinfo`. In a container with its own cgroup namespace, mount the host\'s cgroup directory in and name it here (a directory holding the v2 hierarchy as `unified/`, as hybrid hosts have it, is accepted too)',
    parse: absolutePath('cgroup-root'),
  }),
  setting('logLevel', 'log-level', {
    type: 'string', default: 'info',
    describe: `Log level: ${LOG_LEVELS.join('|')}`,
    doc: `${LOG_LEVELS.map((l) => `\`${l}\``).join(', ')}; logs are JSON lines on stderr with the level's name`,
    parse: oneOf('log-level', LOG_LEVELS),
  }),
  setting('attachMode', 'attach-mode', {
    type: 'string', default: 'clsact',
    describe: 'How pod programs attach: auto|tcx|clsact',
    doc: 'how pod programs attach: `clsact`, `tcx` (Linux >= 6.6) or `auto` (tcx when the kernel has it). tcx attach/detach wait for an RCU grace period (8–20 ms per hook here), so clsact is the default; see docs/architecture.md',
    parse: oneOf('attach-mode', ATTACH_MODES),
  }),
  setting('mtu', 'mtu', {
    type: 'number', default: 1500,
    describe: 'Pod interface MTU when the CNI config sets none',
    doc: 'pod interface MTU when the CNI config sets none',
    parse: integer('mtu', 576, 65535),
  }),
  setting('reconcileInterval', 'reconcile-interval', {
    type: 'number', default: 30,
    describe: 'Seconds between reconcile passes that check and repair every endpoint (0: only at start)',
    doc: 'seconds between reconcile passes that check and repair every endpoint (host veth, route, programs, map entry); `0` runs it only at start',
    parse: integer('reconcile-interval', 0, 86400),
  }),
  setting('services', 'services', {
    type: 'string', default: 'on',
    describe: 'Serve Kubernetes Services in BPF (on), or leave them to kube-proxy (off)',
    doc: '`on`: podnet translates Services (ClusterIP, NodePort, external and LoadBalancer IPs) in BPF and no kube-proxy is needed; `off`: podnet writes no Service map entries and attaches no socket load balancer, for running beside kube-proxy',
    parse: oneOf('services', ['on', 'off'] as const),
  }),
  setting('hostRouting', 'host-routing', {
    type: 'string', default: 'auto',
    describe: 'How traffic between pods of this node travels: auto|bpf|kernel (auto follows --services)',
    doc: '`bpf`: straight from pod to pod (`bpf_redirect_peer`), past the host stack; `kernel`: through the host stack\'s routing, so netfilter and conntrack see both directions, as kube-proxy needs for a ClusterIP whose backend is on the same node (needs `net.ipv4.ip_forward=1`); `auto`: `bpf` with `--services on`, `kernel` with `--services off`. See docs/architecture.md, "Host routing"',
    parse: oneOf('host-routing', HOST_ROUTING_MODES),
  }),
  setting('serviceCidr', 'service-cidr', {
    type: 'string', default: '10.96.0.0/12',
    describe: 'Service CIDRs (comma-separated) when the API server has no ServiceCIDR objects',
    doc: "the cluster's Service CIDRs, comma-separated (kubeadm's default `10.96.0.0/12`); used when the API server has no ServiceCIDR objects and in standalone mode. Traffic into them that matches no Service is dropped and counted",
    parse: cidrList('service-cidr'),
  }),
  setting('nodeportAddresses', 'nodeport-addresses', {
    type: 'string', default: undefined, defaultText: 'every address of the node',
    describe: 'CIDRs (comma-separated) that narrow the addresses NodePorts answer on',
    doc: "CIDRs, comma-separated, that narrow the node addresses NodePorts (and healthCheckNodePorts) answer on, like kube-proxy's `--nodeport-addresses`; unset: every IPv4 address of the node (the Node's addresses; in standalone mode the host's own, loopback and link-local excepted)",
    parse: cidrList('nodeport-addresses'),
  }),
  setting('lbMapSize', 'lb-map-size', {
    type: 'number', default: 65536,
    describe: 'Entries of the Service frontend map; backends get 2x, backend slots 4x',
    doc: 'entries of `pn_services` (frontends), `pn_svc_stats` and `pn_affinity`; `pn_backends` gets twice as many and `pn_svc_slots` four times. The default fits Kubernetes\' limits (10,000 Services, 100,000 endpoints). Takes effect when the maps are created (a changed size needs the pins removed)',
    parse: integer('lb-map-size', 1024, 1 << 24),
  }),
  setting('ctMapSize', 'ct-map-size', {
    type: 'number', default: 262144,
    describe: 'Entries of the Service conntrack map (two per connection)',
    doc: 'entries of `pn_ct`, the LRU conntrack of translated connections (two per connection: forward and reverse)',
    parse: integer('ct-map-size', 1024, 1 << 26),
  }),
  setting('bpfDir', 'bpf-dir', {
    type: 'string', default: undefined, defaultText: 'shipped `bpf/`',
    describe: 'Directory of the BPF C sources (default: shipped with podnet)',
    doc: 'C sources the agent compiles at start (cached by content hash)',
    parse: (v) => str('bpf-dir', v),
  }),
] as const);

/** The camelCase key of a setting. */
export type SettingKey = (typeof SETTINGS)[number]['key'];

/** The setting with `key`. */
export function settingOf(key: SettingKey): Setting {
  return SETTINGS.find((s) => s.key === key)!;
}

/** Raw setting values by key, as flags, env and files give them (before validation). */
export type RawSettings = Partial<Record<SettingKey, unknown>>;

/** The settings that have a literal default, with their value types. */
export interface Defaults {
  readonly bpffs: string;
  readonly stateDir: string;
  readonly apiSocket: string;
  readonly metricsAddr: string;
  readonly source: string;
  readonly logLevel: string;
  readonly attachMode: string;
  readonly mtu: number;
  readonly metricsPodLabels: boolean;
  readonly services: string;
  readonly hostRouting: string;
  readonly lbMapSize: number;
  readonly ctMapSize: number;
}

/** The default of every setting that has a literal one, taken from SETTINGS. */
export const DEFAULTS: Defaults = Object.freeze(
  Object.fromEntries(SETTINGS.filter((s) => s.default !== undefined).map((s) => [s.key, s.default])),
) as unknown as Defaults;

/** Every key a config file may hold (camelCase). */
export const KNOWN_KEYS: ReadonlySet<string> = new Set(SETTINGS.map((s) => s.key));

/**
 * The settings the environment sets: only PODNET_<SETTING> names from
 * SETTINGS are read. Other PODNET_* variables are ignored: Kubernetes
 * injects PODNET_SERVICE_HOST, PODNET_PORT... for a Service named podnet.
 */
export function settingsFromEnv(env: Readonly<Record<string, string | undefined>>): RawSettings {
  const out: RawSettings = {};
  for (const s of SETTINGS) {
    const v = env[s.env];
    if (v !== undefined && v !== '') out[s.key] = v;
  }
  return out;
}

/** Parses a listen address ":19962", "127.0.0.1:19962", "[::1]:19962" or "off". @throws ConfigError naming `field` */
export function parseListenAddr(v: string, field = 'metrics-addr'): { host: string; port: number } | undefined {
  if (v === 'off' || v === 'none') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new ConfigError(field, `"${v}" is not host:port (e.g. :19962 or 127.0.0.1:19962, or "off")`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
