/**
 * Services on a node, put together: the source's snapshots go to the
 * reconciler as they come and again on every periodic resync (which reads
 * the maps back first, repairing anything changed behind the agent's
 * back); the healthCheckNodePort servers follow each pass; the API and
 * metrics read from here. With Services off the maps are emptied once and
 * left alone.
 *
 * The node's host ports (pods' hostPort, from the endpoint manager) are
 * merged into every snapshot as Services of their own (model.ts
 * hostPortObjects), so the reconciler writes and sweeps them like any
 * other frontend. They are written once the source delivered its first
 * snapshot (before that a pass would sweep every Service an earlier agent
 * wrote). A frontend a Service and a host port both claim stays with the
 * one that has it (the Service when both are new) and is reported as an error.
 */
import type { ServicesInfo, ServiceReconcileInfo } from '../api/protocol.js';
import type { Logger } from '../log/index.js';
import { HealthCheckServers, healthCheckTargets } from './health-check.js';
import { DEFAULT_CT_TIMEOUTS, IP_PROTO_NAME, type ConntrackTimeouts } from '../maps/services.js';
import { desiredFrontends, frontendKey, hostPortObjects, type HostPortPod, type NodeView } from './model.js';
import { ServiceReconciler, type ServiceReconcileOutcome } from './reconciler.js';
import type { ServiceSnapshot, ServiceSource } from './source.js';
import { SERVICE_MAP_NAMES, type ServiceMapName, type ServiceTables } from './tables.js';
import { servicesView } from './view.js';

/** What the controller needs. */
export interface ServiceControllerDeps {
  tables: ServiceTables;
  /** undefined with Services off. */
  source: ServiceSource | undefined;
  nodeName: string;
  /** The addresses NodePorts answer on now (read at every pass). */
  addresses: () => string[];
  /** The addresses host ports with hostIP 0.0.0.0 answer on (default: `addresses`). */
  hostPortAddresses?: () => string[];
  /** This node's pods with host ports now (read at every pass). */
  hostPorts?: () => readonly HostPortPod[];
  /** Service CIDRs when the source has none. */
  defaultServiceCidrs: string[];
  /** Ends host sockets connected to a removed UDP backend. */
  destroySocketsTo?: (addr: string, port: number, proto: number) => unknown;
  /** Called after every pass. */
  observe?: (o: ServiceReconcileOutcome) => void;
  log: Logger;
  /** Serve healthCheckNodePorts (default true). */
  healthChecks?: boolean;
  /** How often resync() reads every map back to compare, ms (default 5 minutes; 0: every call). */
  verifyIntervalMs?: number;
  /** The conntrack timeouts the datapath was loaded with (default DEFAULT_CT_TIMEOUTS), for sweepConntrack(). */
  ctTimeouts?: ConntrackTimeouts;
}

/** What the conntrack sweeps did since start. */
export interface ConntrackSweepStats {
  sweeps: number;
  /** Entries removed, in all. */
  removed: number;
  /** The last sweep: entries read, removed, seconds it took; undefined before the first. */
  last: { scanned: number; removed: number; seconds: number } | undefined;
}

/** How long a count of the maps the agent does not mirror (conntrack, affinity, stats) is reused, ms. */
const COUNT_CACHE_MS = 15_000;

/** The Services of one node. */
export class ServiceController {
  readonly reconciler: ServiceReconciler;
  private readonly health: HealthCheckServers | undefined;
  private last: ServiceSnapshot | undefined;
  private lastOutcome: (ServiceReconcileOutcome & { at: string }) | undefined;
  private lastErrors = '';
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private counts = new Map<ServiceMapName, { n: number; at: number }>();
  private lastVerify = 0;
  private readonly sweeps: ConntrackSweepStats = { sweeps: 0, removed: 0, last: undefined };
  /** The host-port Services of the last pass and what they were made from: unchanged ones are the same objects, which the reconciler skips. */
  private hostPortCache: { sig: string; services: ServiceSnapshot['services']; slices: ServiceSnapshot['slices'] } = { sig: '[]', services: [], slices: [] };

  constructor(private readonly d: ServiceControllerDeps) {
    this.reconciler = new ServiceReconciler({
      tables: d.tables,
      // Off: no range either (a packet into one that matches nothing would be dropped).
      defaultServiceCidrs: d.source ? d.defaultServiceCidrs : [],
      ...(d.destroySocketsTo ? { onUdpBackendRemoved: (a: string, p: number, proto: number) => { d.destroySocketsTo!(a, p, proto); } } : {}),
    });
    this.health = d.source && d.healthChecks !== false
      ? new HealthCheckServers({ healthy: () => this.healthy(), log: d.log.child({ component: 'health-check' }) })
      : undefined;
  }

  /** True with Services on. */
  get enabled(): boolean {
    return this.d.source !== undefined;
  }

  /**
   * Starts: with Services on, the source (its first snapshot may arrive
   * right away); with them off, every entry an earlier agent left goes.
   */
  start(): void {
    if (!this.d.source) {
      const out = this.apply({ services: [], slices: [], serviceCidrs: [] }, []);
      if (out.removed.frontends + out.removed.backends + out.removed.ranges > 0) this.d.log.info({ removed: out.removed }, 'services are off: removed the service map entries an earlier agent wrote');
      return;
    }
    this.d.source.start((s) => {
      // The first pass after start loaded the maps anyway: the first check is an interval later.
      if (!this.last) this.lastVerify = Date.now();
      this.last = s;
      this.pass(false);
    });
  }

  /**
   * The periodic check: at most every verifyIntervalMs (reading every map
   * back costs about half a full sync), compare the maps with what the
   * agent wrote; when they differ (changed behind its back), read them back
   * and compute every Service again.
   */
  resync(): Promise<void> {
    const now = Date.now();
    if (this.last && now - this.lastVerify >= (this.d.verifyIntervalMs ?? 300_000)) {
      this.lastVerify = now;
      this.pass(true);
    }
    return this.chain;
  }

  /** Resolves once the health-check servers follow the last pass. */
  settled(): Promise<void> {
    return this.chain;
  }

  private node(): NodeView {
    const addresses = this.d.addresses();
    return { name: this.d.nodeName, addresses, hostPortAddresses: this.d.hostPortAddresses?.() ?? addresses };
  }

  /** The source's snapshot with the node's host ports merged in. */
  private withHostPorts(snap: ServiceSnapshot, node: NodeView): ServiceSnapshot {
    const pods = this.d.hostPorts?.() ?? [];
    const sig = JSON.stringify([node.name, node.hostPortAddresses, pods]);
    if (sig !== this.hostPortCache.sig) this.hostPortCache = { sig, ...hostPortObjects(pods, node.name) };
    const hp = this.hostPortCache;
    if (hp.services.length === 0) return snap;
    return { services: [...snap.services, ...hp.services], slices: [...snap.slices, ...hp.slices], serviceCidrs: snap.serviceCidrs };
  }

  /**
   * The node's host ports changed (a pod with hostPorts was added or
   * deleted): writes the service maps now, so an ADD answers once its
   * frontends exist. Does nothing with Services off or before the first
   * snapshot (which then brings them).
   */
  hostPortsChanged(): void {
    if (!this.d.source) return;
    this.pass(false);
  }

  /**
   * What is wrong with the frontends of one pod's host ports in the maps,
   * one sentence each (for CNI CHECK); empty when every frontend exists
   * and has a backend.
   */
  hostPortProblems(pod: HostPortPod): string[] {
    if (!this.d.source) return ['host ports need Services on (--services on)'];
    if (!this.last) return ['host ports are not written yet: the Service source has not delivered its first state'];
    const node = this.node();
    const { services, slices } = hostPortObjects([pod], node.name);
    const have = new Map<string, number>();
    for (const [k, v] of this.d.tables.readFrontends()) {
      const protocol = IP_PROTO_NAME[k.proto];
      if (protocol) have.set(frontendKey({ address: k.addr, port: k.port, protocol }), v.count);
    }
    const out: string[] = [];
    for (const f of desiredFrontends(services, slices, node)) {
      const count = have.get(frontendKey(f));
      if (count === undefined) out.push(`host port frontend ${frontendKey(f)} is missing from pn_services`);
      else if (count === 0) out.push(`host port frontend ${frontendKey(f)} has no backend`);
    }
    return out;
  }

  private pass(full: boolean): void {
    if (this.stopped || !this.last) return;
    const node = this.node();
    if (full && !this.reconciler.verify()) {
      this.d.log.warn({}, 'the service maps differ from what this agent wrote: reading them back and computing every Service again');
      this.reconciler.load();
    }
    const snap = this.withHostPorts(this.last, node);
    this.apply(snap, node.addresses, node);
    const health = this.health;
    if (health) {
      const targets = healthCheckTargets(this.reconciler.healthCheckServices(), (svc) => this.reconciler.frontendsOf(svc), this.d.nodeName);
      this.chain = this.chain.then(async () => {
        if (this.stopped) return;
        await health.update(targets, node.addresses);
      }).catch((err: unknown) => this.d.log.error({ err }, 'update healthCheckNodePort servers failed'));
    }
  }

  private apply(snap: ServiceSnapshot, addresses: string[], node: NodeView = { name: this.d.nodeName, addresses }): ServiceReconcileOutcome {
    let out: ServiceReconcileOutcome;
    try {
      out = this.reconciler.apply(snap, node);
    } catch (err) {
      out = {
        result: 'failed', written: { backends: 0, slots: 0, frontends: 0, ranges: 0 }, removed: { backends: 0, slots: 0, frontends: 0, ranges: 0 },
        errors: [`reconcile services: ${(err as Error).message}`], full: {}, seconds: 0, frontends: 0, backends: 0, read: 0,
      };
      // The picture of the maps may be off now: read them back next time.
      this.reconciler.load();
    }
    this.lastOutcome = { ...out, at: new Date().toISOString() };
    this.d.observe?.(out);
    const errors = out.errors.join('\n');
    if (out.errors.length > 0 && errors !== this.lastErrors) this.d.log.error({ errors: out.errors, result: out.result }, 'service maps are not what the Services ask for');
    else if (out.errors.length === 0 && this.lastErrors !== '') this.d.log.info({}, 'service maps caught up with the Services');
    this.lastErrors = errors;
    if (out.result !== 'ok') this.d.log.debug({ written: out.written, removed: out.removed, seconds: out.seconds }, 'reconciled services');
    return out;
  }

  /** serviceProxyHealthy: the source has synced and the last pass wrote everything. */
  healthy(): boolean {
    return (this.d.source?.synced ?? false) && this.lastOutcome !== undefined && this.lastOutcome.result !== 'failed';
  }

  /** What GET /v1/services answers. */
  info(): ServicesInfo {
    const o = this.lastOutcome;
    const lastReconcile: ServiceReconcileInfo | null = o ? { at: o.at, result: o.result, seconds: o.seconds, errors: o.errors } : null;
    return {
      enabled: this.enabled,
      synced: this.d.source?.synced ?? false,
      sourceError: this.d.source?.lastError ?? null,
      ranges: this.d.tables.readRanges().sort(),
      lastReconcile,
      services: servicesView(this.d.tables, this.reconciler.names()),
    };
  }

  /** The healthCheckNodePort servers listening now. */
  healthChecksListening(): string[] {
    return this.health?.listening() ?? [];
  }

  /** Per-frontend counters with their Service, for metrics. */
  frontendStats(): Array<{ frontendId: number; service: string; connections: bigint; packets: bigint; bytes: bigint; noBackend: bigint }> {
    const names = this.reconciler.names();
    const out = [];
    for (const [id, s] of this.d.tables.readStats()) {
      const n = names.get(id);
      if (n) out.push({ frontendId: id, service: n.service, ...s });
    }
    return out;
  }

  /** Fill of every service map; the ones the agent does not mirror are counted at most every 15 s. */
  mapFill(): Array<{ map: string; entries: number; capacity: number }> {
    const sizes = this.reconciler.sizes();
    const mirrored: Partial<Record<ServiceMapName, number>> = { pn_services: sizes.frontends, pn_svc_slots: sizes.slots, pn_backends: sizes.backends };
    const now = Date.now();
    return SERVICE_MAP_NAMES.map((map) => {
      let entries = mirrored[map];
      if (entries === undefined) {
        const c = this.counts.get(map);
        if (c && now - c.at < COUNT_CACHE_MS) entries = c.n;
        else { entries = this.d.tables.entries(map); this.counts.set(map, { n: entries, at: now }); }
      }
      return { map, entries, capacity: this.d.tables.capacity(map) };
    });
  }

  /**
   * Deletes the conntrack entries idle past their timeout. The datapath
   * already treats them as gone; removed, they no longer count in the
   * map's fill nor take the place of a live connection when LRU eviction
   * picks one. Runs with Services on or off (pn_ct may hold what an
   * earlier run left). A failure is logged, never thrown.
   */
  sweepConntrack(nowNs: bigint = process.hrtime.bigint()): ConntrackSweepStats {
    const t0 = process.hrtime.bigint();
    try {
      const r = this.d.tables.sweepConntrack(nowNs, this.d.ctTimeouts ?? DEFAULT_CT_TIMEOUTS);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      this.sweeps.sweeps++;
      this.sweeps.removed += r.removed;
      this.sweeps.last = { ...r, seconds };
      this.counts.set('pn_ct', { n: r.scanned - r.removed, at: Date.now() });
      if (r.removed > 0) this.d.log.debug({ ...r, seconds }, 'swept idle conntrack entries');
    } catch (err) {
      this.d.log.warn({ err }, 'sweep pn_ct failed');
    }
    return { ...this.sweeps };
  }

  /** What the conntrack sweeps did since start. */
  conntrackSweeps(): ConntrackSweepStats {
    return { ...this.sweeps };
  }

  /** Stops the source and the health-check servers; the maps stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.d.source?.stop();
    await this.chain;
    await this.health?.close();
  }
}

/**
 * The addresses NodePorts answer on: every IPv4 address of the node but
 * loopback and link-local, or, with `cidrs`, every one inside them
 * (loopback too, if a CIDR covers it).
 */
export function nodePortAddresses(all: readonly string[], cidrs: readonly string[] | undefined): string[] {
  const v4 = [...new Set(all.filter((a) => /^\d{1,3}(\.\d{1,3}){3}$/.test(a)))];
  const num = (a: string): number => a.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);
  const inside = (a: string, c: string): boolean => {
    const [base, len] = c.split('/');
    const bits = Number(len);
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return ((num(a) & mask) >>> 0) === ((num(base!) & mask) >>> 0);
  };
  const out = cidrs ? v4.filter((a) => cidrs.some((c) => inside(a, c))) : v4.filter((a) => !inside(a, '127.0.0.0/8') && !inside(a, '169.254.0.0/16'));
  return out.sort();
}
