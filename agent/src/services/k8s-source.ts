/**
 * The cluster's Services from the API server: supervised informers (see
 * k8s/informer.ts: backoff, resume from the last resourceVersion, relist on
 * 410 Gone) for v1 Services, discovery.k8s.io/v1 EndpointSlices and, where
 * the server has the API, networking.k8s.io ServiceCIDRs (v1, else
 * v1beta1; neither: serviceCidrs is undefined and nothing retries).
 *
 * The informers store only the fields model.ts reads (slimService,
 * slimSlice), which is what keeps 10k Services and 100k endpoints small.
 * Events are coalesced (coalesceMs, default 10 ms) into full snapshots;
 * the first one is delivered once every informer has listed.
 */
import type { Logger } from '../log/index.js';
import { ApiStatusError, Informer, type InformerOptions, type InformerStats, type KubeObject, type KubeTransport, type ResourceType } from '../k8s/index.js';
import type { EndpointSliceObject, ServiceObject } from './model.js';
import { Coalescer, Interner, slimService, slimSlice, type ServiceSnapshot, type ServiceSource } from './source.js';

export const SERVICES: ResourceType = { apiVersion: 'v1', kind: 'Service', plural: 'services' };
export const ENDPOINT_SLICES: ResourceType = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', plural: 'endpointslices' };
/** The ServiceCIDR API versions tried, in order (v1 since Kubernetes 1.33, v1beta1 in 1.31-1.32 when enabled). */
export const SERVICE_CIDRS: readonly ResourceType[] = Object.freeze([
  { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', plural: 'servicecidrs' },
  { apiVersion: 'networking.k8s.io/v1beta1', kind: 'ServiceCIDR', plural: 'servicecidrs' },
]);

/** The fields of a ServiceCIDR the source reads. */
interface ServiceCidrObject extends KubeObject {
  spec?: { cidrs?: string[] };
}

/** A ServiceCIDR with only its name, resourceVersion and spec.cidrs. */
function slimCidr(o: KubeObject): KubeObject {
  const c = (o as ServiceCidrObject).spec?.cidrs;
  const m = o.metadata ?? {};
  return {
    metadata: { ...(m.name !== undefined ? { name: m.name } : {}), ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}) },
    spec: { cidrs: Array.isArray(c) ? c.filter((x): x is string => typeof x === 'string') : [] },
  } as ServiceCidrObject;
}

/** Knobs, with defaults for a real API server. */
export interface KubeSourceOptions {
  /** Informer knobs (backoff, watch timeout, page size); the transform is the source's own. */
  informer?: Omit<InformerOptions, 'transform'>;
  /** How long events are gathered into one snapshot, ms (default 10). */
  coalesceMs?: number;
}

/** Which ServiceCIDR API the server has, as far as the source found out. */
export type ServiceCidrApi = 'probing' | 'absent' | 'forbidden' | string;

/** Services, EndpointSlices and ServiceCIDRs from the Kubernetes API. */
export class KubeServiceSource implements ServiceSource {
  private readonly services: Informer<KubeObject>;
  private readonly slices: Informer<KubeObject>;
  private cidrs: Informer<KubeObject> | undefined;
  private cidrApi: ServiceCidrApi = 'probing';
  private cidrProbeErrors = 0;
  private cidrProbeError: string | undefined;
  private cidrTimer: NodeJS.Timeout | undefined;
  private readonly coalescer: Coalescer;
  private onChange: ((s: ServiceSnapshot) => void) | undefined;
  private stopped = true;
  private hasSynced = false;
  private deliveries = 0;
  private lastDeliveryMs: number | undefined;
  private readonly informerOpts: Omit<InformerOptions, 'transform'>;

  constructor(private readonly transport: KubeTransport, private readonly log: Logger, opts: KubeSourceOptions = {}) {
    this.informerOpts = opts.informer ?? {};
    const kick = (): void => this.coalescer.kick();
    const handlers = { add: kick, update: kick, delete: kick, synced: kick };
    // One interner for the source's lifetime: node names, namespaces and protocols repeat across objects and updates.
    const intern = new Interner();
    this.services = new Informer(transport, SERVICES, {}, handlers, log.child({ informer: 'services' }), { ...this.informerOpts, transform: (o) => slimService(o as ServiceObject, intern) as KubeObject });
    this.slices = new Informer(transport, ENDPOINT_SLICES, {}, handlers, log.child({ informer: 'endpointslices' }), { ...this.informerOpts, transform: (o) => slimSlice(o as EndpointSliceObject, intern) as KubeObject });
    this.coalescer = new Coalescer(opts.coalesceMs ?? 10, () => this.deliver());
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  /** The last error of any informer or of the ServiceCIDR probe (kept after recovery, like the informers' own). */
  get lastError(): string | undefined {
    return this.services.stats.lastError ?? this.slices.stats.lastError ?? this.cidrs?.stats.lastError ?? this.cidrProbeError;
  }

  start(onChange: (s: ServiceSnapshot) => void): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.onChange = onChange;
    this.services.start();
    this.slices.start();
    void this.probeCidrs();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.cidrTimer);
    this.coalescer.cancel();
    this.services.stop();
    this.slices.stop();
    this.cidrs?.stop();
  }

  /** Per-informer stats, as metrics and status show them. */
  informerStats(): Array<{ resource: string; synced: boolean } & InformerStats> {
    const all = [
      { resource: 'services', inf: this.services },
      { resource: 'endpointslices', inf: this.slices },
      ...(this.cidrs ? [{ resource: 'servicecidrs', inf: this.cidrs }] : []),
    ];
    return all.map(({ resource, inf }) => ({ resource, synced: inf.hasSynced, ...inf.stats }));
  }

  stats(): Record<string, unknown> {
    const slices = this.slices.list() as readonly EndpointSliceObject[];
    return {
      kind: 'kubernetes', server: this.transport.server, synced: this.hasSynced,
      resources: ['services', 'endpointslices', ...(this.cidrs ? ['servicecidrs'] : [])],
      services: this.services.size, endpointSlices: slices.length,
      endpoints: slices.reduce((n, s) => n + (s.endpoints?.length ?? 0), 0),
      serviceCidrApi: this.cidrApi, deliveries: this.deliveries, lastDeliveryMs: this.lastDeliveryMs,
      relists: this.informerStats().reduce((n, s) => n + s.relists, 0),
      watchRestarts: this.informerStats().reduce((n, s) => n + s.watchRestarts, 0),
      errors: this.informerStats().reduce((n, s) => n + s.errors, 0) + this.cidrProbeErrors,
      lastError: this.lastError,
    };
  }

  /**
   * Finds the ServiceCIDR API with a one-object list per version: 404 tries
   * the next, 403 (RBAC without servicecidrs) counts as absent with a
   * warning, anything else is retried with the informers' backoff.
   */
  private async probeCidrs(attempt = 0): Promise<void> {
    for (const type of SERVICE_CIDRS) {
      try {
        await this.transport.list(type, {}, { limit: 1 });
      } catch (err) {
        if (this.stopped) return;
        const code = err instanceof ApiStatusError ? err.statusCode : 0;
        if (code === 404) continue;
        if (code === 403) {
          this.cidrApi = 'forbidden';
          this.log.warn({ err: (err as Error).message }, `may not list ${type.plural}: using the --service-cidr setting (grant get/list/watch on networking.k8s.io servicecidrs)`);
          this.coalescer.kick();
          return;
        }
        this.cidrProbeErrors++;
        this.cidrProbeError = `probe ${type.apiVersion} ${type.plural}: ${(err as Error).message}`;
        const initial = this.informerOpts.backoffInitialMs ?? 500;
        const delay = Math.min(initial * 2 ** Math.min(attempt, 20), this.informerOpts.backoffMaxMs ?? 30_000);
        this.log.warn({ err: this.cidrProbeError, retryInMs: delay }, 'ServiceCIDR API probe failed; retrying');
        this.cidrTimer = setTimeout(() => { this.cidrTimer = undefined; void this.probeCidrs(attempt + 1); }, delay);
        return;
      }
      if (this.stopped) return;
      this.cidrApi = type.apiVersion;
      const kick = (): void => this.coalescer.kick();
      this.cidrs?.stop();
      this.cidrs = new Informer(this.transport, type, {}, { add: kick, update: kick, delete: kick, synced: kick },
        this.log.child({ informer: 'servicecidrs' }), { ...this.informerOpts, transform: slimCidr });
      this.cidrs.start();
      return;
    }
    if (this.stopped) return;
    this.cidrApi = 'absent';
    this.log.info('the API server has no ServiceCIDR API: using the --service-cidr setting');
    this.coalescer.kick();
  }

  /** The service CIDRs of every ServiceCIDR object, sorted and without duplicates; undefined without the API. */
  private serviceCidrs(): string[] | undefined {
    if (!this.cidrs) return undefined;
    const all = new Set<string>();
    for (const o of this.cidrs.list() as ServiceCidrObject[]) for (const c of o.spec?.cidrs ?? []) all.add(c);
    return [...all].sort();
  }

  private deliver(): void {
    if (this.stopped) return;
    const cidrsReady = this.cidrApi === 'absent' || this.cidrApi === 'forbidden' || (this.cidrs?.hasSynced ?? false);
    if (!this.services.hasSynced || !this.slices.hasSynced || !cidrsReady) return;
    const snap: ServiceSnapshot = {
      services: this.services.list() as readonly ServiceObject[],
      slices: this.slices.list() as readonly EndpointSliceObject[],
      serviceCidrs: this.serviceCidrs(),
    };
    this.hasSynced = true;
    this.deliveries++;
    this.lastDeliveryMs = Date.now();
    try {
      this.onChange?.(snap);
    } catch (err) {
      this.log.error({ err }, 'services snapshot consumer failed');
    }
  }
}
