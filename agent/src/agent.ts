/**
 * The node agent: the single owner of all kernel state on the node.
 * Start order (stop runs the reverse of what started):
 *   datapath (compile, load or re-open pins) -> IPAM and endpoints rebuilt from
 *   the pinned maps -> reconcile -> drain the DEL queue -> API socket -> metrics.
 * Stopping never touches the datapath: maps, programs and links stay pinned
 * and pods keep their traffic while no agent runs.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from './config/index.js';
import type { Logger } from './log/index.js';
import { ConfigError } from './errors/index.js';
import { Datapath } from './datapath/datapath.js';
import { CountersMap, EndpointsMap, IpamMap } from './maps/index.js';
import { Ipam } from './ipam/index.js';
import { EndpointManager, MetaStore, type EndpointManagerDeps } from './endpoints/index.js';
import { NetlinkHandle } from './netlink/index.js';
import { ApiServer } from './api/server.js';
import { cniErrorResponse, cniRoutes } from './api/cni-routes.js';
import type { AgentStatus, EndpointInfo, IpamInfo } from './api/protocol.js';
import { delQueueDir, readDelQueue, removeFromDelQueue } from '../../cni/src/del-queue.js';
import { MetricsServer, createMetrics, type AgentMetrics } from './metrics/index.js';
import { VERSION } from './version.js';

/** Extra knobs for tests. */
export interface AgentOptions {
  failpoint?: EndpointManagerDeps['failpoint'];
}

/** A running agent. */
export class Agent {
  private readonly closers: Array<{ what: string; close: () => void | Promise<void> }> = [];
  private ready = false;
  private readonly started = Date.now();
  datapath!: Datapath;
  ipam!: Ipam;
  endpoints!: EndpointManager;
  metrics!: AgentMetrics;
  private metricsServer: MetricsServer | undefined;

  private constructor(readonly cfg: AgentConfig, readonly log: Logger) {}

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
    if (cfg.source.kind === 'kubernetes') {
      // Informers (Node, Service, EndpointSlice) come with the kube-proxy replacement.
      throw new ConfigError('source', 'the kubernetes source is not available in this version; run standalone with --source file:PATH and --pod-cidr CIDR');
    }
    if (!cfg.podCidr) throw new ConfigError('pod-cidr', 'required: this node\'s pod CIDR, e.g. 10.244.1.0/24');
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });

    const dp = await Datapath.start({
      bpffs: cfg.bpffs, cacheDir: join(cfg.stateDir, 'bpf-cache'), pool: cfg.podCidr, attachMode: cfg.attachMode,
      ...(cfg.bpfDir ? { bpfDir: cfg.bpfDir } : {}), log: log.child({ component: 'datapath' }),
    });
    this.datapath = dp;
    this.closers.push({ what: 'datapath', close: () => dp.close() });

    const host = NetlinkHandle.open();
    this.closers.push({ what: 'netlink', close: () => host.close() });
    const reaper = NetlinkHandle.open();
    this.closers.push({ what: 'netlink reaper', close: () => reaper.close() });

    this.ipam = new Ipam(cfg.podCidr, new IpamMap(dp.maps.ipam));
    const counters = new CountersMap(dp.maps.counters);
    this.endpoints = new EndpointManager({
      ipam: this.ipam,
      endpoints: new EndpointsMap(dp.maps.endpoints),
      attacher: dp,
      meta: new MetaStore(join(cfg.stateDir, 'endpoints')),
      host,
      reaper,
      log: log.child({ component: 'endpoints' }),
      counters,
      ...(opts.failpoint ? { failpoint: opts.failpoint } : {}),
    });
    const rec = await this.endpoints.reconcile();
    log.info({ ...rec, endpoints: this.endpoints.list().length }, 'reconciled endpoints with the kernel');
    await this.drainDelQueue();

    this.metrics = createMetrics({ agent: this, counters });
    const api = new ApiServer(cfg.apiSocket, {
      ...cniRoutes(this.endpoints, { ready: () => this.ready, defaultMtu: cfg.mtu, log, observe: this.metrics.observeCni }),
      'GET /v1/status': async () => ({ status: 200, body: this.status() }),
      'GET /v1/endpoints': async () => ({ status: 200, body: this.endpointInfos() }),
      'GET /v1/ipam': async () => ({ status: 200, body: this.ipamInfo() }),
    }, log.child({ component: 'api' }), cniErrorResponse);
    await api.start();
    this.closers.push({ what: 'api', close: () => api.close() });

    if (cfg.metrics) {
      const ms = new MetricsServer(this.metrics.registry, cfg.metrics, () => this.ready);
      await ms.start();
      this.metricsServer = ms;
      this.closers.push({ what: 'metrics', close: () => ms.close() });
      log.info({ addr: `${cfg.metrics.host}:${ms.port}` }, 'metrics listening');
    }
    this.ready = true;
    log.info({ version: VERSION, node: cfg.nodeName, podCidr: cfg.podCidr.cidr, mode: dp.mode, socket: cfg.apiSocket }, 'agent ready');
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
    return {
      version: VERSION, nodeName: this.cfg.nodeName, ready: this.ready, datapathMode: this.datapath.mode,
      bpffs: this.cfg.bpffs, podCidr: u.pool, ipam: { size: u.size, used: u.used, free: u.free },
      endpoints: this.endpoints.list().length, endpointsUnhealthy: 0, lastReconcile: null, uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
    };
  }

  /** What `podnet endpoints` shows. */
  endpointInfos(): EndpointInfo[] {
    return this.endpoints.list().map((m) => ({ ...m, state: 'ready' as const, problems: [] }));
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
    this.ready = false;
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
