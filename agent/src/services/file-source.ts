/**
 * Standalone mode's Services: `--source file:PATH` names a multi-document
 * YAML file of ordinary v1 Service and discovery.k8s.io/v1 EndpointSlice
 * objects, the same manifests kubectl would apply (a v1 List of them is
 * accepted too). An empty file, or one with only comments, means no
 * Services.
 *
 * The whole file is validated before anything of it is used: a bad
 * document is an error naming the document (its number, kind, namespace
 * and name), the field and the field's line, and the last good state stays
 * in force. What a file cannot leave to an API server is required: a
 * ClusterIP, NodePort or LoadBalancer Service names its clusterIP (or None),
 * a NodePort Service its nodePorts, and an EndpointSlice its Service
 * (label kubernetes.io/service-name).
 *
 * Reloads: the parent directory is watched (fs.watch), so a file written in
 * place and a new file renamed over it (editors; a ConfigMap volume's
 * ..data symlink swap) are both seen; events are debounced, and every
 * check re-stats the path and rereads it only when it changed. A slow stat
 * poll (2 s) covers what a directory watch misses (the directory replaced,
 * PATH a symlink into another directory). A missing or unreadable file is
 * an error too; the last good state stays.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher, readFileSync, statSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { dirname } from 'node:path';
import { loadAll, type YAMLException } from 'js-yaml';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { PodnetError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { SERVICE_NAME_LABEL, type EndpointSliceObject, type ServiceObject } from './model.js';
import { Interner, sharedConditions, slimService, slimSlice, type ServiceSnapshot, type ServiceSource } from './source.js';

/** A services file that cannot be used, with the document and field at fault in the message. */
export class ServiceFileError extends PodnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_MANIFEST', message, options);
  }
}

/** The objects of one services file. */
export interface ServiceDocuments {
  services: ServiceObject[];
  slices: EndpointSliceObject[];
  /** Documents in the file that are not empty (or only comments). */
  documents: number;
}

/** Limits on one file, so a wrong path (a log, a disk image) fails fast instead of filling memory. */
export const SERVICE_FILE_LIMITS: Readonly<ServiceFileLimits> = Object.freeze({ maxBytes: 64 * 1024 * 1024, maxDocuments: 200_000, maxItems: 200_000 });

/** Bounds of one services file. */
export interface ServiceFileLimits {
  maxBytes: number;
  maxDocuments: number;
  /** Objects, counting each item of a List. */
  maxItems: number;
}

/** A field that is not what it should be; the document context is added by the caller. */
class FieldError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
  }
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** How an unexpected value reads in a message. */
function shown(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

const fail = (field: string, problem: string): never => { throw new FieldError(field, problem); };

function mapping(v: unknown, field: string): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) fail(field, `must be a mapping, got ${shown(v)}`);
  return v as Obj;
}

function list(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(field, `must be a list, got ${shown(v)}`);
  return v as unknown[];
}

function optString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(field, `must be a string, got ${shown(v)}`);
  return v as string;
}

function oneOf(v: unknown, field: string, choices: readonly string[]): string | undefined {
  const s = optString(v, field);
  if (s !== undefined && !choices.includes(s)) fail(field, `must be ${choices.slice(0, -1).map((c) => `"${c}"`).join(', ')} or "${choices.at(-1)}", got ${shown(s)}`);
  return s;
}

function int(v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `must be ${min}-${max}, got ${shown(v)}`);
  return v as number;
}

function optBool(v: unknown, field: string): void {
  if (v !== undefined && v !== null && typeof v !== 'boolean') fail(field, `must be true or false, got ${shown(v)}`);
}

function ip(v: unknown, field: string): string {
  if (typeof v !== 'string' || !(isIPv4(v) || isIPv6(v))) fail(field, `must be an IP address, got ${shown(v)}`);
  return v as string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function name(v: unknown, field: string, re: RegExp, what: string): string {
  if (v === undefined || v === null || v === '') fail(field, 'required');
  const s = optString(v, field)!;
  if (!re.test(s)) fail(field, `must be ${what}, got ${shown(s)}`);
  return s;
}

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;
const POLICIES = ['Cluster', 'Local'] as const;

/** metadata: name (checked by `re`), namespace (default "default"), labels. */
function metadata(o: Obj, re: RegExp, what: string): { name: string; namespace: string; labels: Record<string, string> | undefined } {
  const m = mapping(o['metadata'], 'metadata');
  if (!m) return fail('metadata.name', 'required');
  const n = name(m['name'], 'metadata.name', re, what);
  const ns = m['namespace'] === undefined || m['namespace'] === null ? 'default' : name(m['namespace'], 'metadata.namespace', DNS_LABEL, 'a DNS label (lower case, digits, "-")');
  const labels = mapping(m['labels'], 'metadata.labels');
  if (labels) for (const [k, v] of Object.entries(labels)) if (typeof v !== 'string') fail(`metadata.labels["${k}"]`, `must be a string, got ${shown(v)}`);
  return { name: n, namespace: ns, labels: labels as Record<string, string> | undefined };
}

/** Checks a v1 Service; returns it with the namespace made explicit. */
function checkService(o: Obj, intern: Interner): ServiceObject {
  const meta = metadata(o, DNS1035_LABEL, 'a DNS-1035 label (lower case, digits, "-", starting with a letter)');
  const spec = mapping(o['spec'], 'spec') ?? fail('spec', 'required');
  const type = oneOf(spec['type'], 'spec.type', TYPES) ?? 'ClusterIP';
  const clusterIP = optString(spec['clusterIP'], 'spec.clusterIP');
  const headless = clusterIP === 'None';
  if (type === 'ExternalName') {
    name(spec['externalName'], 'spec.externalName', DNS_SUBDOMAIN, 'a DNS name');
  } else if (clusterIP === undefined || clusterIP === '') {
    fail('spec.clusterIP', 'required in a services file (no API server allocates one): an address from the service CIDR, or "None" for a headless Service');
  } else if (headless) {
    if (type !== 'ClusterIP') fail('spec.clusterIP', `may be "None" only for type ClusterIP, not ${type}`);
  } else {
    ip(clusterIP, 'spec.clusterIP');
  }
  const clusterIPs = list(spec['clusterIPs'], 'spec.clusterIPs');
  if (clusterIPs.length > 2) fail('spec.clusterIPs', `at most 2 addresses (one per family), got ${clusterIPs.length}`);
  clusterIPs.forEach((a, i) => { if (!(headless && a === 'None')) ip(a, `spec.clusterIPs[${i}]`); });
  if (clusterIPs.length > 0 && clusterIP !== undefined && clusterIPs[0] !== clusterIP) fail('spec.clusterIPs[0]', `must equal spec.clusterIP (${clusterIP}), got ${shown(clusterIPs[0])}`);

  const ports = list(spec['ports'], 'spec.ports');
  if (ports.length === 0 && !headless && type !== 'ExternalName') fail('spec.ports', 'required: at least one port');
  const seenNames = new Set<string>();
  const seenPorts = new Set<string>();
  ports.forEach((raw, i) => {
    const f = `spec.ports[${i}]`;
    const p = mapping(raw, f) ?? fail(f, 'must be a mapping, got null');
    const port = int(p['port'], `${f}.port`, 1, 65535) ?? fail(`${f}.port`, 'required');
    const protocol = oneOf(p['protocol'], `${f}.protocol`, PROTOCOLS) ?? 'TCP';
    const pn = p['name'] === undefined || p['name'] === null || p['name'] === '' ? '' : name(p['name'], `${f}.name`, DNS_LABEL, 'a DNS label (lower case, digits, "-")');
    if (ports.length > 1 && pn === '') fail(`${f}.name`, 'required when a Service has more than one port');
    if (seenNames.has(pn) && pn !== '') fail(`${f}.name`, `duplicate port name ${shown(pn)}`);
    seenNames.add(pn);
    if (seenPorts.has(`${port}/${protocol}`)) fail(f, `duplicate port ${port}/${protocol}`);
    seenPorts.add(`${port}/${protocol}`);
    const tp = p['targetPort'];
    if (tp !== undefined && tp !== null && !(typeof tp === 'string' && tp !== '') && !(typeof tp === 'number' && Number.isInteger(tp) && tp >= 1 && tp <= 65535)) {
      fail(`${f}.targetPort`, `must be 1-65535 or a port name, got ${shown(tp)}`);
    }
    const nodePort = int(p['nodePort'], `${f}.nodePort`, 1, 65535);
    if (nodePort !== undefined && type !== 'NodePort' && type !== 'LoadBalancer') fail(`${f}.nodePort`, `may only be set for type NodePort or LoadBalancer, not ${type}`);
    if (nodePort === undefined && type === 'NodePort') fail(`${f}.nodePort`, 'required for a NodePort Service in a services file (no API server allocates one)');
  });

  const affinity = oneOf(spec['sessionAffinity'], 'spec.sessionAffinity', ['None', 'ClientIP']);
  const ac = mapping(spec['sessionAffinityConfig'], 'spec.sessionAffinityConfig');
  if (ac) {
    const cip = mapping(ac['clientIP'], 'spec.sessionAffinityConfig.clientIP');
    if (cip) int(cip['timeoutSeconds'], 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', 1, 86400);
    if (affinity !== 'ClientIP' && cip) fail('spec.sessionAffinityConfig', 'may only be set with sessionAffinity ClientIP');
  }
  oneOf(spec['externalTrafficPolicy'], 'spec.externalTrafficPolicy', POLICIES);
  oneOf(spec['internalTrafficPolicy'], 'spec.internalTrafficPolicy', POLICIES);
  list(spec['externalIPs'], 'spec.externalIPs').forEach((a, i) => ip(a, `spec.externalIPs[${i}]`));
  const status = mapping(o['status'], 'status');
  const lb = status ? mapping(status['loadBalancer'], 'status.loadBalancer') : undefined;
  if (lb) {
    list(lb['ingress'], 'status.loadBalancer.ingress').forEach((raw, i) => {
      const f = `status.loadBalancer.ingress[${i}]`;
      const ing = mapping(raw, f) ?? fail(f, 'must be a mapping, got null');
      if (ing['ip'] !== undefined) ip(ing['ip'], `${f}.ip`);
      else optString(ing['hostname'], `${f}.hostname`);
    });
  }
  const svc = slimService(o as ServiceObject, intern);
  svc.metadata.namespace = intern.get(meta.namespace);
  return svc;
}

/** Checks a discovery.k8s.io/v1 EndpointSlice; returns it with the namespace made explicit. */
function checkSlice(o: Obj, intern: Interner): EndpointSliceObject {
  const meta = metadata(o, DNS_SUBDOMAIN, 'a DNS subdomain (lower case, digits, "-", ".")');
  const owner = meta.labels?.[SERVICE_NAME_LABEL];
  if (owner === undefined || owner === '') fail(`metadata.labels["${SERVICE_NAME_LABEL}"]`, 'required: the name of the Service this slice belongs to');
  const addressType = oneOf(o['addressType'], 'addressType', ['IPv4', 'IPv6', 'FQDN']) ?? fail('addressType', 'required (IPv4, IPv6 or FQDN)');
  const eps = list(o['endpoints'], 'endpoints');
  if (eps.length > 1000) fail('endpoints', `at most 1000 endpoints per slice, got ${eps.length}`);
  eps.forEach((raw, i) => {
    const f = `endpoints[${i}]`;
    const e = mapping(raw, f) ?? fail(f, 'must be a mapping, got null');
    const addrs = list(e['addresses'], `${f}.addresses`);
    if (addrs.length === 0 || addrs.length > 100) fail(`${f}.addresses`, `must hold 1-100 addresses, got ${addrs.length}`);
    addrs.forEach((a, j) => {
      const af = `${f}.addresses[${j}]`;
      if (addressType === 'IPv4' && !(typeof a === 'string' && isIPv4(a))) fail(af, `must be an IPv4 address (addressType IPv4), got ${shown(a)}`);
      else if (addressType === 'IPv6' && !(typeof a === 'string' && isIPv6(a))) fail(af, `must be an IPv6 address (addressType IPv6), got ${shown(a)}`);
      else if (addressType === 'FQDN') name(a, af, DNS_SUBDOMAIN, 'a DNS name');
    });
    const c = mapping(e['conditions'], `${f}.conditions`);
    if (c) for (const k of ['ready', 'serving', 'terminating']) optBool(c[k], `${f}.conditions.${k}`);
    if (e['nodeName'] !== undefined && e['nodeName'] !== null) name(e['nodeName'], `${f}.nodeName`, DNS_SUBDOMAIN, 'a node name');
  });
  const seen = new Set<string>();
  list(o['ports'], 'ports').forEach((raw, i) => {
    const f = `ports[${i}]`;
    const p = mapping(raw, f) ?? fail(f, 'must be a mapping, got null');
    int(p['port'], `${f}.port`, 1, 65535);
    const protocol = oneOf(p['protocol'], `${f}.protocol`, PROTOCOLS) ?? 'TCP';
    const pn = optString(p['name'], `${f}.name`) ?? '';
    if (pn !== '' && !DNS_LABEL.test(pn)) fail(`${f}.name`, `must be a DNS label (lower case, digits, "-"), got ${shown(pn)}`);
    if (seen.has(`${pn}/${protocol}`)) fail(`${f}.name`, `duplicate port ${shown(pn)}/${protocol}`);
    seen.add(`${pn}/${protocol}`);
  });
  const slice = slimSlice(o as EndpointSliceObject, intern);
  slice.metadata.namespace = intern.get(meta.namespace);
  return slice;
}

/** "Service default/web" for a message, from whatever the document has. */
function identity(o: Obj): string {
  const m = isObj(o['metadata']) ? o['metadata'] : {};
  const kind = typeof o['kind'] === 'string' ? o['kind'] : 'object';
  const n = typeof m['name'] === 'string' ? m['name'] : undefined;
  const ns = typeof m['namespace'] === 'string' ? m['namespace'] : 'default';
  return n === undefined ? kind : `${kind} ${ns}/${n}`;
}

/** `spec.ports[1].port` or `metadata.labels["a.b/c"]` as a YAML path. */
function fieldPath(field: string): Array<string | number> {
  const out: Array<string | number> = [];
  for (const m of field.matchAll(/\["([^"]*)"\]|\[(\d+)\]|([^.[\]]+)/g)) out.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : m[3]!));
  return out;
}

const ACCEPTED_KINDS = 'a services file holds v1 Service and discovery.k8s.io/v1 EndpointSlice objects (or a v1 List of them)';

/**
 * Parses and validates a services file.
 * @throws ServiceFileError naming the document (number from 1, line, kind,
 *   namespace/name) and the field, e.g.
 *   `document 3 (Service default/web, line 14): spec.ports[1].port: must be 1-65535, got "http"`
 */
export function parseServiceDocuments(text: string, limits: Readonly<ServiceFileLimits> = SERVICE_FILE_LIMITS): ServiceDocuments {
  // js-yaml reads the file (about 10x faster than the yaml package here, and
  // the agent's event loop waits for it); only for an error message does the
  // yaml package parse it again, for the line of the field at fault.
  const values: unknown[] = [];
  const lineOf = fieldLines(text);
  try {
    loadAll(text, (d) => {
      if (values.length >= limits.maxDocuments) throw new ServiceFileError(`too many documents: more than ${limits.maxDocuments}`);
      values.push(d);
    });
  } catch (err) {
    if (err instanceof ServiceFileError) throw err;
    const e = err as YAMLException;
    const at = e.mark ? ` (line ${e.mark.line + 1}, column ${e.mark.column + 1})` : '';
    throw new ServiceFileError(`document ${e.mark ? lineOf.documentAt(e.mark.position) + 1 : '?'}${at}: YAML: ${e.reason ?? e.message}`, { cause: err });
  }
  const services: ServiceObject[] = [];
  const slices: EndpointSliceObject[] = [];
  const where = new Map<string, string>();
  const clusterIps = new Map<string, string>();
  let items = 0;
  const intern = new Interner();
  values.forEach((value, i) => {
    const at = `document ${i + 1}`;
    if (value === null || value === undefined) return;
    const one = (o: unknown, label: string, prefix: Array<string | number>): void => {
      if (!isObj(o)) throw new ServiceFileError(`${label} (line ${lineOf(i, prefix)}): expected a Kubernetes object (a mapping), got ${shown(o)}`);
      try {
        const kind = o['kind'];
        const apiVersion = o['apiVersion'];
        let key: string;
        if (kind === 'Service') {
          if (apiVersion !== 'v1') fail('apiVersion', `must be "v1" for a Service, got ${shown(apiVersion)}`);
          const s = checkService(o, intern);
          key = `Service ${s.metadata!.namespace}/${s.metadata!.name}`;
          const ips = new Set([s.spec?.clusterIP, ...(s.spec?.clusterIPs ?? [])].filter((a): a is string => !!a && a !== 'None'));
          for (const a of ips) {
            const other = clusterIps.get(a);
            if (other) fail('spec.clusterIP', `${a} is already the clusterIP of ${other}`);
            clusterIps.set(a, `${key} (${label})`);
          }
          services.push(s);
        } else if (kind === 'EndpointSlice') {
          if (apiVersion !== 'discovery.k8s.io/v1') fail('apiVersion', `must be "discovery.k8s.io/v1" for an EndpointSlice, got ${shown(apiVersion)}`);
          const s = checkSlice(o, intern);
          key = `EndpointSlice ${s.metadata!.namespace}/${s.metadata!.name}`;
          slices.push(s);
        } else if (kind === undefined) {
          return fail('kind', `required: ${ACCEPTED_KINDS}`);
        } else {
          return fail('kind', `${shown(kind)} is not accepted: ${ACCEPTED_KINDS}`);
        }
        const dup = where.get(key);
        if (dup) throw new FieldError('metadata.name', `${key} is already defined in ${dup}`);
        where.set(key, label);
      } catch (err) {
        if (err instanceof FieldError) throw new ServiceFileError(`${label} (${identity(o)}, line ${lineOf(i, [...prefix, ...fieldPath(err.field)])}): ${err.message}`, { cause: err });
        throw err;
      }
    };
    if (isObj(value) && value['kind'] === 'List') {
      const line = lineOf(i, []);
      if (value['apiVersion'] !== 'v1') throw new ServiceFileError(`${at} (List, line ${line}): apiVersion: must be "v1" for a List, got ${shown(value['apiVersion'])}`);
      let listed: unknown[];
      try {
        listed = list(value['items'], 'items');
      } catch (err) {
        throw new ServiceFileError(`${at} (List, line ${line}): ${(err as Error).message}`);
      }
      items += listed.length;
      if (items > limits.maxItems) throw new ServiceFileError(`${at} (List, line ${line}): too many objects (at most ${limits.maxItems})`);
      listed.forEach((o, j) => one(o, `${at} items[${j}]`, ['items', j]));
    } else {
      if (++items > limits.maxItems) throw new ServiceFileError(`${at} (line ${lineOf(i, [])}): too many objects (at most ${limits.maxItems})`);
      one(value, at, []);
    }
  });
  return { ...fresh(services, slices, intern), documents: values.filter((v) => v !== null && v !== undefined).length };
}

/**
 * Copies the objects so that no string of theirs is a slice of the file's
 * text (V8 keeps the whole text alive for any such slice), sharing equal
 * strings and endpoint conditions on the way.
 */
function fresh(services: ServiceObject[], slices: EndpointSliceObject[], intern: Interner): { services: ServiceObject[]; slices: EndpointSliceObject[] } {
  return JSON.parse(JSON.stringify({ services, slices }), (k, v: unknown) => {
    if (typeof v === 'string') return intern.get(v);
    if (k === 'conditions' && isObj(v)) return sharedConditions(v);
    return v;
  }) as { services: ServiceObject[]; slices: EndpointSliceObject[] };
}

/**
 * The line of a field of document `i` (0-based), or of its nearest parent
 * that exists, and which document an offset is in; both parse the text
 * (again, with the yaml package, which keeps positions) on first use.
 */
function fieldLines(text: string): ((i: number, path: Array<string | number>) => number | string) & { documentAt(offset: number): number } {
  let parsed: Document.Parsed[] | undefined;
  const lines = new LineCounter();
  const all = (): Document.Parsed[] => {
    if (!parsed) {
      const p = parseAllDocuments(text, { lineCounter: lines });
      parsed = Array.isArray(p) ? p : [];
    }
    return parsed;
  };
  const lineOf = (i: number, path: Array<string | number>): number | string => {
    const docs = all();
    const doc = docs[i];
    if (!doc) return '?';
    for (let p = path; p.length > 0; p = p.slice(0, -1)) {
      const node = doc.getIn(p, true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
    }
    const top = (doc.contents as { range?: [number, number, number] } | null)?.range?.[0] ?? doc.range[0];
    return lines.linePos(top).line;
  };
  const documentAt = (offset: number): number => {
    const docs = all();
    const i = docs.findIndex((d) => offset < d.range[2]);
    return i < 0 ? Math.max(0, docs.length - 1) : i;
  };
  return Object.assign(lineOf, { documentAt });
}

/** Knobs of the file source, with defaults for a real node. */
export interface FileSourceOptions {
  /** Quiet time after the last change event before the file is read, ms (default 50). */
  debounceMs?: number;
  /** The longest a stream of change events can delay a read, ms (default 1000). */
  maxDelayMs?: number;
  /** Period of the safety stat poll, ms (default 2000). */
  pollMs?: number;
  limits?: Readonly<ServiceFileLimits>;
}

/** What identifies one version of the file without reading it. */
function statKey(path: string): string {
  const s = statSync(path, { bigint: true });
  if (!s.isFile()) throw Object.assign(new Error(`not a regular file`), { code: 'EISDIR' });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** Services from a YAML file, reloaded when it changes. */
export class FileServiceSource implements ServiceSource {
  private onChange: ((s: ServiceSnapshot) => void) | undefined;
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private firstEventMs: number | undefined;
  private lastKey: string | undefined;
  /** sha256 of the text in force: a rewrite with the same content delivers nothing (the text itself is not kept). */
  private lastHash: string | undefined;
  private current: ServiceDocuments | undefined;
  private stopped = true;
  private hasSynced = false;
  private error: string | undefined;
  private counters = { loads: 0, errors: 0, events: 0, lastLoadMs: undefined as number | undefined };
  private readonly o: Required<FileSourceOptions>;
  private readonly dir: string;

  constructor(readonly path: string, private readonly log: Logger, opts: FileSourceOptions = {}) {
    this.o = {
      debounceMs: opts.debounceMs ?? 50,
      maxDelayMs: opts.maxDelayMs ?? 1000,
      pollMs: opts.pollMs ?? 2000,
      limits: opts.limits ?? SERVICE_FILE_LIMITS,
    };
    this.dir = dirname(path);
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  get lastError(): string | undefined {
    return this.error;
  }

  /** Starts watching; the first read happens at once (synchronously). */
  start(onChange: (s: ServiceSnapshot) => void): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.onChange = onChange;
    this.ensureWatch();
    this.pollTimer = setInterval(() => { this.ensureWatch(); this.check(); }, this.o.pollMs);
    this.pollTimer.unref();
    this.check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
    this.pollTimer = this.debounceTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  stats(): Record<string, unknown> {
    const c = this.current;
    return {
      kind: 'file', path: this.path, synced: this.hasSynced,
      documents: c?.documents ?? 0, services: c?.services.length ?? 0, endpointSlices: c?.slices.length ?? 0,
      endpoints: c?.slices.reduce((n, s) => n + (s.endpoints?.length ?? 0), 0) ?? 0,
      loads: this.counters.loads, reloads: Math.max(0, this.counters.loads - 1), errors: this.counters.errors,
      watching: this.watcher !== undefined, lastLoadMs: this.counters.lastLoadMs, lastError: this.error,
    };
  }

  /** Watches the parent directory, which sees writes in place and renames over the file alike. */
  private ensureWatch(): void {
    if (this.watcher || this.stopped) return;
    try {
      // Every name may matter: a ConfigMap volume swaps its ..data symlink, not
      // the file; the stat compare in check() makes unrelated events cheap.
      const w = watch(this.dir, { persistent: false }, () => this.schedule());
      w.on('error', (err) => {
        this.log.warn({ dir: this.dir, err: (err as Error).message }, 'watch of the services file directory failed; polling until it can be watched again');
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
    } catch (err) {
      // The directory may not exist yet; the poll tries again.
      this.note(`watch ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  /** Debounces change events: read once they are quiet for debounceMs, or after maxDelayMs at the latest. */
  private schedule(): void {
    if (this.stopped) return;
    this.counters.events++;
    const now = Date.now();
    this.firstEventMs ??= now;
    clearTimeout(this.debounceTimer);
    const wait = Math.max(0, Math.min(this.o.debounceMs, this.firstEventMs + this.o.maxDelayMs - now));
    this.debounceTimer = setTimeout(() => { this.debounceTimer = undefined; this.firstEventMs = undefined; this.check(); }, wait);
  }

  /** Records a problem once per distinct problem, keeping the last good state. */
  private note(problem: string): void {
    if (problem === this.error) return;
    this.error = problem;
    this.counters.errors++;
    this.log.warn({ path: this.path, err: problem }, this.hasSynced ? 'services file not loaded; the last good state stays in force' : 'services file not loaded');
  }

  /** Re-stats the file; rereads, validates and delivers it when it changed. */
  private check(): void {
    if (this.stopped) return;
    let key: string;
    try {
      key = statKey(this.path);
    } catch (err) {
      this.lastKey = undefined;
      this.note(`read services file ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    if (key === this.lastKey) return;
    let text: string;
    try {
      const size = Number(key.split(':')[2]);
      if (size > this.o.limits.maxBytes) throw new Error(`${size} bytes is more than the ${this.o.limits.maxBytes} a services file may have`);
      text = readFileSync(this.path, 'utf8');
      // Written while we read: the next event (or this retry) reads the finished file.
      if (statKey(this.path) !== key) { this.schedule(); return; }
    } catch (err) {
      this.lastKey = undefined;
      this.note(`read services file ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    this.lastKey = key;
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === this.lastHash && this.current) {
      if (this.error) this.log.info({ path: this.path }, 'services file readable again, unchanged');
      this.error = undefined;
      return;
    }
    let parsed: ServiceDocuments;
    try {
      parsed = parseServiceDocuments(text, this.o.limits);
    } catch (err) {
      this.note(`load services file ${this.path}: ${(err as Error).message}`);
      return;
    }
    this.lastHash = hash;
    this.current = parsed;
    this.error = undefined;
    this.counters.loads++;
    this.counters.lastLoadMs = Date.now();
    this.log.info({ path: this.path, services: parsed.services.length, endpointSlices: parsed.slices.length }, this.hasSynced ? 'services file reloaded' : 'services file loaded');
    this.hasSynced = true;
    try {
      this.onChange?.({ services: parsed.services, slices: parsed.slices, serviceCidrs: undefined });
    } catch (err) {
      this.log.error({ err }, 'services snapshot consumer failed');
    }
  }
}
