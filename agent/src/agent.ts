/**
 * The node agent: the single owner of all kernel state on the node.
 * Start order (stop runs the reverse of what started):
 *   datapath (compile, load or re-open pins) -> IPAM and endpoints rebuilt from
 *   the pinned maps -> reconcile -> drain the DEL queue -> Services (the
 *   reconciler reads the service maps back, then the source starts) -> API
 *   socket -> metrics.
 * Stopping never touches the datapath: maps, programs and links stay pinned
 * and pods keep their traffic while no agent runs.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { serviceMapSizesOf, type AgentConfig } from './config/index.js';
import type { Logger } from './log/index.js';
import { ConfigError, PodnetError } from './errors/index.js';
import { Datapath } from './datapath/datapath.js';
import { resolveCgroup2Dir } from './datapath/cgroup.js';
import { hostRoutingProblem, resolveHostRouting, type HostRouting } from './datapath/host-routing.js';
import { CountersMap, EndpointsMap, IpamMap, type ConntrackTimeouts } from './maps/index.js';
import { Ipam } from './ipam/index.js';
import { EndpointManager, MetaStore, type EndpointManagerDeps } from './endpoints/index.js';
import { FileLock, NetlinkHandle } from './netlink/index.js';
import { ApiServer } from './api/server.js';
import { cniErrorResponse, cniRoutes } from './api/cni-routes.js';
import type { InformerOptions, KubeTransport, NodeInfo, NodeSource } from './k8s/index.js';
import { CniError } from './api/cni-error.js';
import { inPool, parsePool, type Pool } from './ipam/index.js';
import { CniErrorCode, type CniDelRequest, type AgentStatus, type EndpointInfo, type IpamInfo, type ReconcileOutcome } from './api/protocol.js';
import type { ApiRequest, ApiResponse, Routes } from './api/server.js';
import { delQueueDir, enqueueDel, readDelQueue, removeFromDelQueue } from '../../cni/src/del-queue.js';
import { MetricsServer, createMetrics, type AgentMetrics } from './metrics/index.js';
import { BpfServiceTables, FileServiceSource, SERVICE_MAP_NAMES, KubeServiceSource, ServiceController, nodePortAddresses, type ServiceSource } from './services/index.js';
import { VERSION } from './version.js';
import { MemoryReleaser } from './util/memory.js';
import { mallocTrim } from './libbpf/index.js';

/** The lock file in the state dir that one running agent holds (flock). */
export const LOCK_FILE = 'agent.lock';

/** True when `bpffs` holds anything (an earlier agent's pins). */
function hasPins(bpffs: string): boolean {
  try {
    return readdirSync(bpffs).length > 0;
  } catch {
    return false;
  }
}

/** Removes every pin under `bpffs` and the directory itself (bpffs unlinks like any fs). */
function removePins(bpffs: string): void {
  rmSync(bpffs, { recursive: true, force: true });
}

/** The answer to requests that arrive while the agent starts and it then fails to. */
function startingResponse(req: ApiRequest): ApiResponse {
  const code = req.path === '/v1/cni/status' ? CniErrorCode.NotReady : CniErrorCode.TryAgainLater;
  return { status: 503, body: { code, msg: 'podnet agent failed to start: try again later' } };
}

/** Extra knobs for tests. */
export interface AgentOptions {
  failpoint?: EndpointManagerDeps['failpoint'];
  /** Period of the reconcile loop in ms, over the reconcile-interval setting; 0 turns it off. */
  reconcileIntervalMs?: number;
  /** The API server connection for the kubernetes source (default: from the kubeconfig or in-cluster config). */
  kubeTransport?: KubeTransport;
  /** Informer knobs (backoff, watch timeout), for tests. */
  informer?: InformerOptions;
  /** Aborting it stops a start that is still waiting (for the Node's pod CIDR). */
  signal?: AbortSignal;
  /** The Service source (default: from the source setting). */
  serviceSource?: ServiceSource;
  /** Attach the socket load balancer at the cgroup root (default: with Services on); tests leave the host's cgroups alone. */
  socketLb?: boolean;
  /** Serve healthCheckNodePorts (default true). */
  healthChecks?: boolean;
  /** KUBERNETES_SERVICE_HOST/PORT for the in-cluster config (the caller reads the environment). */
  inCluster?: { host?: string; port?: string };
  /** Conntrack timeouts of the datapath and of the agent's sweep (default DEFAULT_CT_TIMEOUTS), for tests. */
  ctTimeouts?: ConntrackTimeouts;
}

/** A running agent. */
export class Agent {
  private readonly closers: Array<{ what: string; close: () => void | Promise<void> }> = [];
  private serving = false;
  private readonly started = Date.now();
  /** --host-routing with auto resolved, once (it follows --services). */
  private readonly hostRouting: HostRouting;
  datapath!: Datapath;
  ipam!: Ipam;
  endpoints!: EndpointManager;
  metrics!: AgentMetrics;
  private metricsServer: MetricsServer | undefined;
  private lastReconcile: ReconcileOutcome | null = null;
  private reconciling: Promise<ReconcileOutcome> | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  /** This node's Node, with the kubernetes source. */
  nodeSource: NodeSource | undefined;
  /** Why the agent is not serving yet (waiting for its pod CIDR). */
  private waitReason: string | undefined;
  /** A pod CIDR change that was refused. */
  private poolConflict: string | undefined;
  /** The API server connection of the kubernetes source. */
  private kubeTransport: KubeTransport | undefined;
  /** Services: source, reconciler, health checks. */
  services: ServiceController | undefined;

  private constructor(readonly cfg: AgentConfig, readonly log: Logger) {
    this.hostRouting = resolveHostRouting(cfg.hostRouting, cfg.services);
  }

  /** Starts an agent; on failure everything started so far is closed again. */
  static async start(cfg: AgentConfig, log: Logger, opts: AgentOptions = {}): Promise<Agent> {
    const a = new Agent(cfg, log);
    try {
      await a.startAll(opts);
    } catch (err) {
      await a.stop();
      throw err;
    }
    return a;
  }

  private async startAll(opts: AgentOptions): Promise<void> {
    const { cfg, log } = this;
    if (cfg.source.kind === 'file' && !cfg.podCidr) throw new ConfigError('pod-cidr', 'required: this node\'s pod CIDR, e.g. 10.244.1.0/24');
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });

    // One agent per state dir and bpffs: the lock is taken before anything is
    // touched, and dropped by the kernel when this process exits.
    const lock = FileLock.acquire(join(cfg.stateDir, LOCK_FILE));
    this.closers.push({ what: 'state-dir lock', close: () => lock.release() });

    // Bind both listeners before loading anything: a socket or port in use
    // fails start-up here, with nothing pinned. Requests wait until ready.
    const api = new ApiServer(cfg.apiSocket, log.child({ component: 'api' }), cniErrorResponse, startingResponse);
    await api.listen();
    this.closers.push({ what: 'api', close: () => { api.fail(); return api.close(); } });
    if (cfg.metrics) {
      const ms = new MetricsServer(cfg.metrics, () => this.readiness().ready);
      await ms.listen();
      this.metricsServer = ms;
      this.closers.push({ what: 'metrics', close: () => ms.close() });
    }

    // Metrics from the start: while the agent waits for its pod CIDR they
    // already say why it is not ready and how its watches fare. Every source
    // answers before the part it reads exists.
    let counters: CountersMap | undefined;
    this.metrics = createMetrics({
      ready: () => this.readiness().ready,
      mode: () => this.datapath?.mode ?? 'none',
      hostRouting: () => this.hostRouting,
      endpoints: () => this.endpoints?.list() ?? [],
      ipam: () => this.ipam?.usage() ?? { used: 0, free: 0 },
      lastReconcile: () => this.lastReconcile,
      delQueueDepth: () => this.delQueueDepth(),
      // The service maps report through their own group, which counts the big ones less often.
      maps: () => (this.datapath ? Object.values(this.datapath.maps).filter((m) => !(SERVICE_MAP_NAMES as readonly string[]).includes(m.name)) : []),
      counters: () => counters?.readAll() ?? [],
      perPodLabels: cfg.metricsPodLabels,
      informers: () => (this.nodeSource ? [{ resource: 'nodes', synced: this.nodeSource.hasSynced, ...this.nodeSource.stats }] : []),
      services: {
        frontends: () => this.services?.frontendStats() ?? [], maps: () => (this.services?.enabled ? this.services.mapFill() : []),
        conntrackSweeps: () => this.services?.conntrackSweeps() ?? { removed: 0, last: undefined },
      },
    });
    api.onAnswer = (route, status) => { if (status >= 400) this.metrics.observeApiError(route, status); };
    this.metricsServer?.serve(this.metrics.registry);

    // The pool: from the flag in standalone mode, from this node's Node object
    // otherwise. Until the Node has a pod CIDR the agent is live, not ready.
    const pool = cfg.source.kind === 'kubernetes' ? await this.poolFromNode(api, cfg.source.kubeconfig, opts) : cfg.podCidr!;

    const pinsBefore = hasPins(cfg.bpffs);
    let dp: Datapath;
    try {
      dp = await Datapath.start({
        bpffs: cfg.bpffs, cacheDir: join(cfg.stateDir, 'bpf-cache'), pool, attachMode: cfg.attachMode, hostRouting: this.hostRouting,
        ...(cfg.bpfDir ? { bpfDir: cfg.bpfDir } : {}), log: log.child({ component: 'datapath' }),
        serviceMapSizes: serviceMapSizesOf(cfg),
        ...(opts.ctTimeouts ? { ctTimeouts: opts.ctTimeouts } : {}),
        // Off: no socket load balancer (an earlier one is detached), for running beside kube-proxy.
        socketLb: opts.socketLb ?? cfg.services,
        ...(cfg.services && cfg.uplink ? { uplink: cfg.uplink } : {}),
        ...(cfg.cgroupRoot ? { cgroupRoot: resolveCgroup2Dir(cfg.cgroupRoot) } : {}),
      });
    } catch (err) {
      if (!pinsBefore) removePins(cfg.bpffs);
      throw err;
    }
    this.datapath = dp;
    const forwarding = hostRoutingProblem(dp.hostRouting);
    if (forwarding) log.warn({ hostRouting: dp.hostRouting }, `${forwarding}: pods of this node cannot reach each other`);
    // A failed first start must not leave pins behind; once pods exist, pins stay.
    this.closers.push({ what: 'datapath', close: () => { dp.close(); if (!pinsBefore && !this.serving) removePins(cfg.bpffs); } });

    const host = NetlinkHandle.open();
    this.closers.push({ what: 'netlink', close: () => host.close() });
    const reaper = NetlinkHandle.open();
    this.closers.push({ what: 'netlink reaper', close: () => reaper.close() });

    this.ipam = new Ipam(pool, new IpamMap(dp.maps.ipam));
    this.nodeSource?.onChange(() => this.checkPoolChange(pool));
    counters = new CountersMap(dp.maps.counters);
    this.endpoints = new EndpointManager({
      ipam: this.ipam,
      endpoints: new EndpointsMap(dp.maps.endpoints),
      attacher: dp,
      meta: new MetaStore(join(cfg.stateDir, 'endpoints'), join(cfg.stateDir, 'deleting')),
      host,
      reaper,
      log: log.child({ component: 'endpoints' }),
      counters,
      // Host ports are served by the Services datapath; with Services off an ADD with host ports is refused.
      ...(cfg.services ? { hostPorts: { changed: () => this.services?.hostPortsChanged(), problems: (p) => this.services?.hostPortProblems(p) ?? ['Services are not started yet'] } } : {}),
      ...(opts.failpoint ? { failpoint: opts.failpoint } : {}),
    });
    // DELs first (queued while no agent ran, or answered but not finished),
    // so reconcile never repairs an endpoint that was deleted.
    await this.drainDelQueue();
    const rec = await this.reconcile();
    log.info({ ...rec, endpoints: this.endpoints.list().length }, 'reconciled endpoints with the kernel');
    this.startServices(host, opts);

    const every = opts.reconcileIntervalMs ?? cfg.reconcileIntervalSeconds * 1000;
    if (every > 0) {
      this.reconcileTimer = setInterval(() => {
        this.reconcile().catch((err: unknown) => log.error({ err }, 'reconcile failed'));
        this.services?.resync().catch((err: unknown) => log.error({ err }, 'service resync failed'));
        this.services?.sweepConntrack();
      }, every);
      this.reconcileTimer.unref();
      this.closers.push({ what: 'reconcile loop', close: async () => { clearInterval(this.reconcileTimer); await this.reconciling?.catch(() => undefined); } });
    }
    // Last: held requests proceed from here on.
    this.serving = true;
    api.serve({
      ...cniRoutes(this.endpoints, { readiness: () => this.readiness(), defaultMtu: cfg.mtu, log: log.child({ component: 'cni' }), observe: this.metrics.observeCni }),
      'GET /v1/status': async () => ({ status: 200, body: this.status() }),
      'GET /v1/endpoints': async () => ({ status: 200, body: this.endpointInfos() }),
      'GET /v1/ipam': async () => ({ status: 200, body: this.ipamInfo() }),
      'GET /v1/services': async () => ({ status: 200, body: this.services!.info() }),
    });
    if (this.metricsServer) log.info({ addr: `${cfg.metrics!.host}:${this.metricsServer.port}` }, 'metrics listening');
    log.info({ version: VERSION, node: cfg.nodeName, podCidr: pool.cidr, mode: dp.mode, hostRouting: dp.hostRouting, socket: cfg.apiSocket }, 'agent ready');
  }

  /**
   * Starts Services: the reconciler reads the service maps back (so a
   * restart keeps every id and rewrites nothing), then the source's
   * snapshots flow in. With Services off the maps are emptied and no source runs.
   */
  private startServices(host: NetlinkHandle, opts: AgentOptions): void {
    const { cfg, log } = this;
    const dp = this.datapath;
    const tables = new BpfServiceTables(dp.maps);
    let source: ServiceSource | undefined;
    if (cfg.services) {
      const slog = log.child({ component: 'service-source' });
      if (opts.serviceSource) source = opts.serviceSource;
      else if (cfg.source.kind === 'file') source = new FileServiceSource(cfg.source.path, slog);
      else source = new KubeServiceSource(this.kubeTransport!, slog, opts.informer ? { informer: opts.informer } : {});
    }
    const allAddresses = (): string[] => {
      // The node's own addresses as netlink reports them, and the Node's InternalIPs.
      const all = host.addrs({ family: 4 }).map((a) => a.address);
      for (const ip of this.nodeSource?.current()?.internalIps ?? []) all.push(ip);
      return all;
    };
    const addresses = (): string[] => nodePortAddresses(allAddresses(), cfg.nodePortAddresses);
    let warned = false;
    const memory = new MemoryReleaser({ trim: () => { mallocTrim(); } });
    const svc = new ServiceController({
      tables, source, nodeName: cfg.nodeName, addresses, defaultServiceCidrs: [...cfg.serviceCidrs], log: log.child({ component: 'services' }),
      // Host ports on 0.0.0.0 answer on every address: --nodeport-addresses does not narrow them (portmap's rule).
      hostPortAddresses: () => nodePortAddresses(allAddresses(), undefined),
      hostPorts: () => this.endpoints?.hostPortPods() ?? [],
      destroySocketsTo: (a, p, proto) => {
        try {
          dp.destroySocketsTo(a, p, proto);
        } catch (err) {
          // Said once: without the destroyer (socket LB off, Linux < 6.5) it fails for every backend.
          (warned ? log.debug.bind(log) : log.warn.bind(log))({ err, backend: `${a}:${p}` }, 'could not destroy host sockets connected to a removed backend');
          warned = true;
        }
      },
      observe: (o) => {
        this.metrics?.observeServiceReconcile(o);
        const w = o.written, r = o.removed;
        memory.after(w.backends + w.slots + w.frontends + r.backends + r.slots + r.frontends + o.read);
      },
      ...(opts.healthChecks !== undefined ? { healthChecks: opts.healthChecks } : {}),
      ...(opts.ctTimeouts ? { ctTimeouts: opts.ctTimeouts } : {}),
    });
    this.services = svc;
    this.closers.push({ what: 'services', close: () => svc.stop() });
    svc.start();
    log.info({ enabled: cfg.services, source: cfg.services ? cfg.source.kind : 'none' }, cfg.services ? 'services started' : 'services off: left to kube-proxy');
  }

  /**
   * Waits until this node's Node has an IPv4 pod CIDR that holds every live
   * endpoint's address, serving "try again later" meanwhile: ADD and CHECK
   * answer code 11, STATUS code 50, and a DEL is queued for when the
   * endpoints are back.
   */
  private async poolFromNode(api: ApiServer, kubeconfig: string | undefined, opts: AgentOptions): Promise<Pool> {
    const { cfg, log } = this;
    const k8s = await import('./k8s/index.js');
    let transport: KubeTransport;
    try {
      transport = opts.kubeTransport ?? k8s.apiTransport(kubeconfig, opts.inCluster ?? {}, { userAgent: `podnet-agent/${VERSION}` });
    } catch (err) {
      throw new ConfigError('kubeconfig', `load ${kubeconfig ?? 'the in-cluster config'}: ${(err as Error).message}`, { cause: err });
    }
    this.kubeTransport = transport;
    const src = new k8s.NodeSource(transport, cfg.nodeName, log.child({ component: 'k8s' }), opts.informer ?? {});
    this.nodeSource = src;
    this.closers.push({ what: 'node informer', close: () => src.stop() });
    this.waitReason = `waiting for the first list of Node ${cfg.nodeName} from ${transport.server}`;
    api.serve(this.waitingRoutes());
    src.start();
    const labels = new MetaStore(join(cfg.stateDir, 'endpoints'));
    const pool = await new Promise<Pool>((resolve, reject) => {
      const check = (): void => {
        if (!src.hasSynced) return;
        const why = this.poolProblem(src.current(), labels);
        if (typeof why !== 'string') { resolve(why); return; }
        if (why !== this.waitReason) log.warn({ reason: why }, 'agent not ready');
        this.waitReason = why;
      };
      src.onChange(check);
      src.synced.then(check, reject);
      opts.signal?.addEventListener('abort', () => reject(new PodnetError('CANCELED', `start agent: stopped while ${this.waitReason}`)), { once: true });
    });
    this.waitReason = undefined;
    log.info({ podCidr: pool.cidr, node: cfg.nodeName }, 'pod CIDR from the Node object');
    return pool;
  }

  /** The pool the Node gives, or why it cannot be used yet. */
  private poolProblem(n: NodeInfo | undefined, labels: MetaStore): Pool | string {
    const name = this.cfg.nodeName;
    if (!n) return `Node ${name} does not exist in the API server (yet)`;
    const v4 = n.podCidrs.find((c) => !c.includes(':'));
    if (!v4) return `Node ${name} has no IPv4 spec.podCIDRs yet (the controller-manager assigns them with --allocate-node-cidrs)`;
    let p: Pool;
    try {
      p = parsePool(v4, 'spec.podCIDRs');
    } catch (err) {
      return `Node ${name} spec.podCIDRs ${v4}: ${(err as Error).message}`;
    }
    const outside = labels.list().filter((m) => !inPool(p, m.ip));
    if (outside.length > 0) {
      return `refusing Node ${name} spec.podCIDRs ${v4}: ${outside.length} live pod(s) have addresses outside it (e.g. ${outside[0]!.ip}); delete them or restore the pod CIDR`;
    }
    return p;
  }

  /** A pod CIDR change while running is refused loudly: the agent turns unready and says why. */
  private checkPoolChange(pool: Pool): void {
    const n = this.nodeSource?.current();
    const v4 = n?.podCidrs.find((c) => !c.includes(':'));
    const was = this.poolConflict;
    if (!v4 || v4 === pool.cidr) {
      this.poolConflict = undefined;
    } else {
      const pods = this.endpoints.active().length;
      this.poolConflict = pods > 0
        ? `Node ${this.cfg.nodeName} spec.podCIDRs changed to ${v4}; refusing it while ${pods} pod(s) use ${pool.cidr}`
        : `Node ${this.cfg.nodeName} spec.podCIDRs changed to ${v4}; restart the agent to use it (still serving ${pool.cidr})`;
    }
    if (this.poolConflict && this.poolConflict !== was) this.log.error({ podCidr: pool.cidr, nodePodCidr: v4 }, this.poolConflict);
  }

  /** The routes served while the agent waits for its pod CIDR. */
  private waitingRoutes(): Routes {
    const notReady = (): string => this.waitReason ?? 'starting';
    const tryLater = async (): Promise<ApiResponse> => { throw new CniError(CniErrorCode.TryAgainLater, `podnet agent is not ready: ${notReady()}: try again later`); };
    return {
      'POST /v1/cni/add': tryLater,
      'POST /v1/cni/check': tryLater,
      'POST /v1/cni/gc': tryLater,
      'GET /v1/cni/status': async () => { throw new CniError(CniErrorCode.NotReady, `podnet agent cannot service ADD requests: ${notReady()}`); },
      'POST /v1/cni/del': async (req) => {
        // The endpoints are not loaded yet: the DEL waits in the queue the agent drains once they are.
        const b = req.body as CniDelRequest | undefined;
        if (!b || typeof b.containerId !== 'string' || typeof b.ifName !== 'string') throw new CniError(CniErrorCode.InvalidEnvironment, 'decode request: containerId and ifName are required');
        enqueueDel(delQueueDir(this.cfg.stateDir), b);
        return { status: 200, body: {} };
      },
      'GET /v1/status': async () => ({ status: 200, body: this.waitingStatus() }),
    };
  }

  private waitingStatus(): AgentStatus {
    return {
      version: VERSION, nodeName: this.cfg.nodeName, ready: false, notReadyReason: this.waitReason ?? 'starting',
      datapathMode: this.cfg.attachMode === 'tcx' ? 'tcx' : 'clsact', hostRouting: this.hostRouting, bpffs: this.cfg.bpffs, podCidr: '', ipam: { size: 0, used: 0, free: 0 },
      endpoints: 0, endpointsUnhealthy: 0, lastReconcile: null, uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
    };
  }

  /**
   * One reconcile pass (see EndpointManager.reconcile); concurrent callers
   * share the pass in flight. Its outcome shows in status and metrics.
   */
  reconcile(): Promise<ReconcileOutcome> {
    this.reconciling ??= (async () => {
      const t0 = process.hrtime.bigint();
      const seconds = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
      try {
        const r = await this.endpoints.reconcile();
        const outcome: ReconcileOutcome = { at: new Date().toISOString(), result: r.result, repaired: r.repaired, removed: r.removed, failed: r.failed };
        this.lastReconcile = outcome;
        this.metrics?.observeReconcile(outcome, seconds());
        if (r.result !== 'ok') this.log.info({ ...outcome, orphans: r.orphans }, 'reconcile changed the node');
        return outcome;
      } catch (err) {
        this.lastReconcile = { at: new Date().toISOString(), result: 'failed', repaired: 0, removed: 0, failed: 0 };
        this.metrics?.observeReconcile(this.lastReconcile, seconds());
        throw err;
      } finally {
        this.reconciling = undefined;
      }
    })();
    return this.reconciling;
  }

  /** Whether CNI ADDs can succeed now, and if not, why. */
  readiness(): { ready: true } | { ready: false; reason: string } {
    if (!this.serving) return { ready: false, reason: this.waitReason ?? 'starting' };
    if (this.poolConflict) return { ready: false, reason: this.poolConflict };
    const u = this.ipam.usage();
    if (u.free === 0) return { ready: false, reason: `IP pool ${u.pool} exhausted (0 of ${u.size} addresses free)` };
    return { ready: true };
  }

  /** The bound metrics port (useful with --metrics-addr host:0), if metrics are on. */
  get metricsPort(): number | undefined {
    return this.metricsServer?.port;
  }

  /** Replays DELs the entry point queued while no agent was running. */
  async drainDelQueue(): Promise<number> {
    let n = 0;
    for (const e of readDelQueue(delQueueDir(this.cfg.stateDir))) {
      if (e.kind === 'request') {
        try {
          this.endpoints.del(e.request.containerId, e.request.ifName);
          n++;
        } catch (err) {
          this.log.error({ err, containerId: e.request.containerId }, 'queued DEL failed; dropping it');
        }
      } else {
        this.log.warn({ path: e.path, reason: e.reason }, 'dropping unreadable DEL queue entry');
      }
      removeFromDelQueue(e.path);
    }
    await this.endpoints.settled();
    if (n > 0) this.log.info({ count: n }, 'replayed queued DELs');
    return n;
  }

  /** What `podnet status` shows. */
  status(): AgentStatus {
    const u = this.ipam.usage();
    const r = this.readiness();
    const eps = this.endpoints.list();
    return {
      version: VERSION, nodeName: this.cfg.nodeName, ready: r.ready, ...(r.ready ? {} : { notReadyReason: r.reason }),
      datapathMode: this.datapath.mode, hostRouting: this.datapath.hostRouting, bpffs: this.cfg.bpffs, podCidr: u.pool, ipam: { size: u.size, used: u.used, free: u.free },
      endpoints: eps.length, endpointsUnhealthy: eps.filter((e) => e.state === 'unhealthy').length,
      lastReconcile: this.lastReconcile, uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
    };
  }

  /** What `podnet endpoints` shows. */
  endpointInfos(): EndpointInfo[] {
    return this.endpoints.list();
  }

  /** DELs not carried out yet: queued by the entry point, or answered with their teardown pending. */
  delQueueDepth(): number {
    return readDelQueue(delQueueDir(this.cfg.stateDir)).length + (this.endpoints?.pendingTeardowns() ?? 0);
  }

  /** What `podnet ipam` shows. */
  ipamInfo(): IpamInfo {
    const u = this.ipam.usage();
    return {
      pool: u.pool, size: u.size, used: u.used, free: u.free,
      allocations: this.ipam.allocations().map((a) => ({ ip: a.ip, containerId: a.owner.containerId, ifName: a.owner.ifName, created: new Date(a.owner.createdMs).toISOString() })),
    };
  }

  /** Stops serving and closes every fd, newest first. The datapath keeps running. */
  async stop(): Promise<void> {
    clearInterval(this.reconcileTimer);
    // Finish veth/address releases of DELs already answered.
    await this.endpoints?.settled();
    while (this.closers.length > 0) {
      const c = this.closers.pop()!;
      try {
        await c.close();
      } catch (err) {
        this.log.error({ err, what: c.what }, 'close failed during stop');
      }
    }
  }
}
