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
import type { EndpointSliceObject, ServiceObject } from './model.js';

/** Everything a source knows at one moment. */
export interface ServiceSnapshot {
  services: ServiceObject[];
  slices: EndpointSliceObject[];
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

/** The metadata a source keeps: name, namespace, resourceVersion (informers compare it) and, for slices, labels. */
function slimMeta(m: Meta | undefined, labels: boolean): Meta {
  const out: Meta = {};
  if (m?.name !== undefined) out.name = m.name;
  if (m?.namespace !== undefined) out.namespace = m.namespace;
  if (m?.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  if (labels && m?.labels) out.labels = { ...m.labels };
  return out;
}

const strings = (a: unknown): string[] | undefined => (Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string') : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const bool = (v: unknown): boolean | null | undefined => (typeof v === 'boolean' || v === null ? v : undefined);

/** Assigns only defined values, so a slim object has no `undefined` keys (they cost memory and confuse deepEqual). */
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * A copy of a Service with only the fields model.ts reads (plus
 * resourceVersion): managedFields, annotations, selectors and the rest of a
 * full API object are dropped, which is most of its size.
 */
export function slimService(o: ServiceObject & { metadata?: Meta }): ServiceObject & { metadata: Meta } {
  const s = o.spec;
  const out: ServiceObject & { metadata: Meta } = { metadata: slimMeta(o.metadata, false) };
  if (s) {
    out.spec = defined({
      type: str(s.type),
      clusterIP: str(s.clusterIP),
      clusterIPs: strings(s.clusterIPs),
      externalIPs: strings(s.externalIPs),
      ports: Array.isArray(s.ports) ? s.ports.map((p) => defined({ name: str(p.name), protocol: str(p.protocol), port: num(p.port), nodePort: num(p.nodePort) })) : undefined,
      sessionAffinity: str(s.sessionAffinity),
      sessionAffinityConfig: s.sessionAffinityConfig?.clientIP ? { clientIP: defined({ timeoutSeconds: num(s.sessionAffinityConfig.clientIP.timeoutSeconds) }) } : undefined,
      externalTrafficPolicy: str(s.externalTrafficPolicy),
      internalTrafficPolicy: str(s.internalTrafficPolicy),
      healthCheckNodePort: num(s.healthCheckNodePort),
    });
  }
  const ingress = o.status?.loadBalancer?.ingress;
  if (Array.isArray(ingress) && ingress.length > 0) out.status = { loadBalancer: { ingress: ingress.map((i) => defined({ ip: str(i.ip) })) } };
  return out;
}

/**
 * A copy of an EndpointSlice with only the fields model.ts reads (plus
 * resourceVersion): per-endpoint targetRef, zone, hints and hostname are
 * dropped.
 */
export function slimSlice(o: EndpointSliceObject & { metadata?: Meta }): EndpointSliceObject & { metadata: Meta } {
  const out: EndpointSliceObject & { metadata: Meta } = { metadata: slimMeta(o.metadata, true) };
  if (typeof o.addressType === 'string') out.addressType = o.addressType;
  if (Array.isArray(o.ports)) out.ports = o.ports.map((p) => defined({ name: str(p.name), protocol: str(p.protocol), port: num(p.port) }));
  if (Array.isArray(o.endpoints)) {
    out.endpoints = o.endpoints.map((e) => {
      const c = e.conditions;
      return defined({
        addresses: strings(e.addresses),
        conditions: c ? defined({ ready: bool(c.ready), serving: bool(c.serving), terminating: bool(c.terminating) }) : undefined,
        nodeName: str(e.nodeName),
      });
    });
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
