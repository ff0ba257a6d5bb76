/**
 * Where the agent's Services come from: a ServiceSource delivers complete
 * snapshots of v1 Services and discovery.k8s.io/v1 EndpointSlices (and the
 * service CIDRs, where the API server has them) to the reconciler, which
 * diffs consecutive snapshots. Two sources implement it: a YAML file
 * (file-source.ts, standalone mode) and the Kubernetes API (k8s-source.ts).
 *
 * Objects in a snapshot hold only the fields model.ts reads (slimService,
 * slimSlice), are shared between snapshots and must not be mutated.
 */
import { SERVICE_NAME_LABEL, type EndpointObject, type EndpointSliceObject, type ServiceObject } from './model.js';

/** Everything a source knows at one moment. */
export interface ServiceSnapshot {
  services: readonly ServiceObject[];
  slices: readonly EndpointSliceObject[];
  /** Service CIDRs from the ServiceCIDR API (networking.k8s.io/v1, or v1beta1) when the server has it; undefined when it has none (the agent then uses its --service-cidr setting). */
  serviceCidrs: string[] | undefined;
}

/** A source of Service state. */
export interface ServiceSource {
  /** Starts watching; onChange gets a full snapshot each time anything changed (coalesced; never concurrently). */
  start(onChange: (s: ServiceSnapshot) => void): void;
  /** True once the first complete state was delivered. */
  readonly synced: boolean;
  /** The last problem (bad file document, watch error), or undefined. Informational: the last good state stays in force. */
  readonly lastError: string | undefined;
  /** Source stats for status/metrics: kind, path or resources, documents/objects counts, reloads, errors. */
  stats(): Record<string, unknown>;
  stop(): Promise<void>;
}

type Meta = { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };

/**
 * Shares equal strings of the fields with few distinct values (node names,
 * namespaces, protocols, port names, types): a parsed object has a copy of
 * each per object. Bounded: past `max` distinct strings it stops adding.
 */
export class Interner {
  private readonly seen = new Map<string, string>();
  constructor(private readonly max = 50_000) {}

  /** The shared copy of `s` (or `s` itself once full). */
  get<S extends string | undefined>(s: S): S {
    if (s === undefined) return s;
    const hit = this.seen.get(s);
    if (hit !== undefined) return hit as S;
    if (this.seen.size < this.max) this.seen.set(s, s);
    return s;
  }

  get size(): number {
    return this.seen.size;
  }
}

const NO_INTERNING = { get: <S extends string | undefined>(s: S): S => s };
type Intern = Pick<Interner, 'get'>;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const strings = (a: unknown, i: Intern = NO_INTERNING): string[] | undefined =>
  Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string').map((x) => i.get(x)) : undefined;

/** Copies the keys of `from` whose value is defined; only assignments, so the result keeps V8's compact object layout. */
function set<T extends object>(to: T, from: { [K in keyof T]?: T[K] | undefined }): T {
  for (const k of Object.keys(from) as Array<keyof T>) {
    const v = from[k];
    if (v !== undefined) to[k] = v as T[keyof T];
  }
  return to;
}

/** The metadata a source keeps: name, namespace and resourceVersion (informers compare it). */
function slimMeta(m: Meta | undefined, i: Intern): Meta {
  return set({} as Meta, { name: str(m?.name), namespace: i.get(str(m?.namespace)), resourceVersion: str(m?.resourceVersion) });
}

type Conditions = NonNullable<EndpointObject['conditions']>;
const CONDITIONS = new Map<string, Conditions>();
/** The shared conditions by index (PackedEndpoints); 0 stands for none. */
const CONDITION_LIST: Array<Conditions | undefined> = [undefined];
const CONDITION_INDEX = new Map<Conditions, number>();

/** Endpoint conditions, shared (frozen) per combination: there are at most 64. */
export function sharedConditions(c: Conditions): Conditions {
  const pick = (v: unknown): boolean | null | undefined => (typeof v === 'boolean' || v === null ? v : undefined);
  const r = pick(c.ready), s = pick(c.serving), t = pick(c.terminating);
  const k = `${r}/${s}/${t}`;
  let hit = CONDITIONS.get(k);
  if (!hit) {
    CONDITIONS.set(k, (hit = Object.freeze(set({} as Conditions, { ready: r, serving: s, terminating: t }))));
    CONDITION_INDEX.set(hit, CONDITION_LIST.length);
    CONDITION_LIST.push(hit);
  }
  return hit;
}

/**
 * The endpoints of one slice in three flat arrays instead of an object and
 * an address array per endpoint: at 100,000 endpoints that is about 10 MB
 * less. Iterating yields the endpoints as the API has them (addresses,
 * conditions, nodeName), made afresh each time: only the Services that
 * changed are read, once per pass. Immutable; JSON.stringify gives the
 * plain array.
 */
export class PackedEndpoints implements Iterable<EndpointObject> {
  /** Per endpoint: its condition index (bits 0-6), address count (bits 7-14), node index (bits 15 and up). */
  private readonly meta: number[];
  /** Every endpoint's addresses, in order. */
  private readonly addrs: string[];
  /** The node names the endpoints have; index 0 is none. */
  private readonly nodes: Array<string | undefined>;

  constructor(endpoints: Iterable<EndpointObject>) {
    this.meta = [];
    this.addrs = [];
    this.nodes = [undefined];
    for (const e of endpoints) {
      const addresses = e.addresses ?? [];
      if (addresses.length > 0xff) throw new RangeError(`an endpoint has ${addresses.length} addresses (at most 255)`);
      const cond = e.conditions ? CONDITION_INDEX.get(sharedConditions(e.conditions))! : 0;
      let node = this.nodes.indexOf(e.nodeName);
      if (node < 0) node = this.nodes.push(e.nodeName) - 1;
      this.meta.push(cond | (addresses.length << 7) | (node << 15));
      for (const a of addresses) this.addrs.push(a);
    }
  }

  get length(): number {
    return this.meta.length;
  }

  *[Symbol.iterator](): Iterator<EndpointObject> {
    let at = 0;
    for (const m of this.meta) {
      const n = (m >> 7) & 0xff;
      const out: EndpointObject = { addresses: this.addrs.slice(at, at + n) };
      at += n;
      const c = CONDITION_LIST[m & 0x7f];
      if (c) out.conditions = c;
      const node = this.nodes[m >>> 15];
      if (node !== undefined) out.nodeName = node;
      yield out;
    }
  }

  toJSON(): EndpointObject[] {
    return [...this];
  }
}

/**
 * A copy of a Service with only the fields model.ts reads (plus
 * resourceVersion): managedFields, annotations, selectors and the rest of a
 * full API object are dropped, which is most of its size.
 */
export function slimService(o: ServiceObject & { metadata?: Meta }, i: Intern = NO_INTERNING): ServiceObject & { metadata: Meta } {
  const s = o.spec;
  const out: ServiceObject & { metadata: Meta } = { metadata: slimMeta(o.metadata, i) };
  if (s) {
    const spec: NonNullable<ServiceObject['spec']> = {};
    const timeout = s.sessionAffinityConfig?.clientIP ? num(s.sessionAffinityConfig.clientIP.timeoutSeconds) : undefined;
    out.spec = set(spec, {
      type: i.get(str(s.type)),
      clusterIP: str(s.clusterIP),
      clusterIPs: strings(s.clusterIPs),
      externalIPs: strings(s.externalIPs),
      ports: Array.isArray(s.ports)
        ? s.ports.map((p) => set({} as NonNullable<typeof spec.ports>[number], { name: i.get(str(p.name)), protocol: i.get(str(p.protocol)), port: num(p.port), nodePort: num(p.nodePort) }))
        : undefined,
      sessionAffinity: i.get(str(s.sessionAffinity)),
      sessionAffinityConfig: s.sessionAffinityConfig?.clientIP ? { clientIP: timeout !== undefined ? { timeoutSeconds: timeout } : {} } : undefined,
      externalTrafficPolicy: i.get(str(s.externalTrafficPolicy)),
      internalTrafficPolicy: i.get(str(s.internalTrafficPolicy)),
      healthCheckNodePort: num(s.healthCheckNodePort),
    });
  }
  const ingress = o.status?.loadBalancer?.ingress;
  if (Array.isArray(ingress) && ingress.length > 0) out.status = { loadBalancer: { ingress: ingress.map((g) => set({} as { ip?: string }, { ip: str(g.ip) })) } };
  return out;
}

/**
 * A copy of an EndpointSlice with only the fields model.ts reads (plus
 * resourceVersion): of the labels only kubernetes.io/service-name, and per
 * endpoint its addresses, conditions and nodeName (targetRef, zone, hints
 * and hostname are dropped).
 */
export function slimSlice(o: EndpointSliceObject & { metadata?: Meta }, i: Intern = NO_INTERNING): EndpointSliceObject & { metadata: Meta } {
  const out: EndpointSliceObject & { metadata: Meta } = { metadata: slimMeta(o.metadata, i) };
  const owner = str(o.metadata?.labels?.[SERVICE_NAME_LABEL]);
  if (owner !== undefined) out.metadata.labels = { [SERVICE_NAME_LABEL]: owner };
  if (typeof o.addressType === 'string') out.addressType = i.get(o.addressType);
  if (Array.isArray(o.ports)) {
    out.ports = o.ports.map((p) => set({} as NonNullable<EndpointSliceObject['ports']>[number], { name: i.get(str(p.name)), protocol: i.get(str(p.protocol)), port: num(p.port) }));
  }
  if (Array.isArray(o.endpoints)) {
    out.endpoints = new PackedEndpoints((o.endpoints as EndpointObject[]).map((e) => set({} as EndpointObject, {
      addresses: strings(e.addresses),
      conditions: isObject(e.conditions) ? e.conditions : undefined, // shared by PackedEndpoints
      nodeName: i.get(str(e.nodeName)),
    })));
  }
  return out;
}

/**
 * Coalesces change notifications into one delivery: the first `kick()`
 * arms a timer of `delayMs`; kicks while it is armed join that delivery
 * (the timer is not pushed back, so a steady stream of events still
 * delivers every `delayMs`). `deliver` runs from the timer, never
 * re-entrantly.
 */
export class Coalescer {
  private timer: NodeJS.Timeout | undefined;
  private delivering = false;
  private again = false;

  constructor(private readonly delayMs: number, private readonly deliver: () => void) {}

  /** Something changed: deliver within delayMs. */
  kick(): void {
    if (this.delivering) { this.again = true; return; }
    this.timer ??= setTimeout(() => this.fire(), this.delayMs);
  }

  private fire(): void {
    this.timer = undefined;
    this.delivering = true;
    try {
      this.deliver();
    } finally {
      this.delivering = false;
    }
    if (this.again) { this.again = false; this.kick(); }
  }

  /** Drops a pending delivery. */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.again = false;
  }
}
