/**
 * Pod endpoint lifecycle: what CNI ADD, DEL, CHECK and GC do to the kernel.
 *
 * ADD, step by step (each step pushes its undo; any failure unwinds them all):
 *   1. allocate the pod IP (pn_ipam, BPF_NOEXIST)
 *   2. veth pair, the peer created directly inside the pod netns
 *   3. pod side: IP/32, up, 169.254.1.1 link route + permanent neighbour
 *      (the host veth MAC), default route via it
 *   4. host side: up, /32 route to the pod, permanent neighbour for the pod
 *   5. attach from_pod (ingress) and to_pod (egress) to the host veth
 *   6. endpoint entry in pn_endpoints (READY), metadata file
 *   7. host ports (CNI portMappings), if any: the Services controller
 *      writes their frontends into the service maps before ADD answers
 *
 * Host ports are checked before step 1: refused with Services off, and
 * when another live pod holds an overlapping one.
 */
import { existsSync } from 'node:fs';
import { NetlinkError, PodnetError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Ipam } from '../ipam/index.js';
import { NetlinkHandle, NetNs, NotNetnsError, type Link } from '../netlink/index.js';
import type { CniResult, EndpointInfo, ReconcileOutcome } from '../api/protocol.js';
import { CniErrorCode } from '../api/protocol.js';
import { CniError } from '../api/cni-error.js';
import { EP_F_READY, type EndpointsTable } from '../maps/index.js';
import { Rollback } from '../util/rollback.js';
import { hostVethName, isHostVethName } from './naming.js';
import type { EndpointMeta, MetaStore, PendingTeardown } from './meta-store.js';
import type { HostPortPod } from '../services/model.js';
import { describe, findConflict, parsePortMappings, type HostPortHolder, type HostPortMapping } from './host-ports.js';

/** The pod's gateway: a link-local address answered by a permanent neighbour entry, never by ARP. */
export const POD_GATEWAY = '169.254.1.1';

/** Attaches the shared pod programs to host veths; implemented by the Datapath. */
export interface PodAttacher {
  attach(hostIfName: string, ifindex: number): void;
  detach(hostIfName: string, ifindex: number | undefined): void;
  /** What is wrong with the programs on this interface, one sentence per hook ("ingress: no program attached"); empty when all is well. */
  health(hostIfName: string, ifindex: number): string[];
  /** Did this agent instance attach to an interface of this name (its pins exist)? */
  owns(hostIfName: string): boolean;
}

/** What an ADD needs to know. */
export interface AddRequest {
  containerId: string;
  netns: string;
  ifName: string;
  mtu: number;
  podNamespace?: string;
  podName?: string;
  /** Validated host ports (parsePortMappings); absent or empty: none. */
  hostPorts?: HostPortMapping[];
}

/** Where host ports go: the Services controller. */
export interface HostPortSink {
  /** The set of host ports changed: write the service maps now. */
  changed(): void;
  /** What is wrong with one pod's host-port frontends in the maps; empty when all is well. */
  problems(pod: HostPortPod): string[];
}

/** Optional counter cleanup when an endpoint goes away. */
export interface CounterCleaner {
  deleteEndpoint(endpointId: number): number;
}

/** Dependencies of the manager, injected so tests can fake or fail any of them. */
export interface EndpointManagerDeps {
  ipam: Ipam;
  endpoints: EndpointsTable;
  attacher: PodAttacher;
  meta: MetaStore;
  host: NetlinkHandle;
  /** A handle of its own for veth deletions, which run off the event loop (see del). */
  reaper?: NetlinkHandle;
  log: Logger;
  counters?: CounterCleaner;
  /** Serves host ports; absent (Services off): an ADD with host ports is refused. */
  hostPorts?: HostPortSink;
  /** Test hook: called after each ADD step by name; throwing there simulates a failure at that point. */
  failpoint?: (step: AddStep) => void;
}

/** The ADD steps, in order; names used by the failpoint hook and in logs. */
export const ADD_STEPS = ['ipam', 'veth', 'pod-config', 'host-config', 'attach', 'endpoint-map', 'meta', 'host-ports'] as const;
export type AddStep = (typeof ADD_STEPS)[number];

/** The pod's "namespace/name" for log lines, when the runtime told it. */
const podField = (r: { podNamespace?: string | undefined; podName?: string | undefined }): { pod?: string } =>
  r.podName ? { pod: `${r.podNamespace ?? ''}/${r.podName}` } : {};

const isGone = (err: unknown): boolean =>
  err instanceof NetlinkError && ['ENODEV', 'ENOENT', 'ESRCH', 'EADDRNOTAVAIL'].includes(err.errnoName);

/** Owns every pod endpoint on this node. */
export class EndpointManager {
  private nextId: number;
  /** DELs whose veth and address are still being released, by host veth name. */
  private readonly teardowns = new Map<string, Promise<void>>();
  /** Teardowns run one after another: the reaper handle takes one request at a time. */
  private reaperChain: Promise<void> = Promise.resolve();
  /** Problems the last check found per host veth, for endpoints that are not healthy. */
  private readonly health = new Map<string, string[]>();

  constructor(private readonly d: EndpointManagerDeps) {
    let max = 0;
    for (const [, e] of d.endpoints.entries()) max = Math.max(max, e.endpointId);
    for (const m of d.meta.list()) max = Math.max(max, m.endpointId);
    this.nextId = max + 1;
  }

  /** CNI ADD. @throws CniError with a spec code; on any failure nothing is left behind. */
  async add(req: AddRequest): Promise<{ result: CniResult; meta: EndpointMeta }> {
    const { containerId, ifName } = req;
    const log = this.d.log.child({ containerId, ifName, ...podField(req) });
    // A DEL of the same attachment may still be releasing its veth.
    await this.teardowns.get(hostVethName(containerId, ifName));
    const rb = new Rollback();
    let current: AddStep | 'preflight' = 'preflight';
    const step = (s: AddStep): void => this.d.failpoint?.(s);
    let ns: NetNs | undefined;
    let pod: NetlinkHandle | undefined;
    try {
      try {
        ns = NetNs.open(req.netns);
      } catch (err) {
        const why = err instanceof NotNetnsError ? err.message.replace(/^open netns [^:]*: /, '') : (err as Error).message;
        throw new CniError(CniErrorCode.InvalidEnvironment, `open CNI_NETNS ${req.netns}: ${why}`, undefined, { cause: err });
      }
      this.refuseLiveElsewhere(req);
      this.refuseHostPorts(req);
      pod = NetlinkHandle.open({ netns: ns });
      if (pod.linkByName(ifName)) {
        throw new CniError(CniErrorCode.Internal, `add ${ifName} to ${req.netns}: an interface named ${ifName} already exists in the pod`);
      }

      current = 'ipam';
      const ip = this.d.ipam.allocate(containerId, ifName);
      rb.push(`release ${ip}`, () => { this.d.ipam.release(containerId, ifName); });
      step('ipam');
      current = 'veth';

      const hostName = hostVethName(containerId, ifName);
      const stale = this.d.host.linkByName(hostName);
      if (stale) {
        // Left by an ADD that crashed before its rollback: same owner, so safe to replace.
        log.warn({ hostIfName: hostName }, 'removing stale host veth');
        this.d.attacher.detach(hostName, stale.index);
        this.d.host.deleteLink(stale.index);
      }
      this.d.host.addVeth({ name: hostName, peerName: ifName, peerNetns: ns, mtu: req.mtu });
      const hostLink = this.mustLink(this.d.host, hostName, 'host');
      rb.push(`delete veth ${hostName}`, () => this.deleteLinkQuiet(hostName));
      step('veth');
      current = 'pod-config';

      const podLink = this.mustLink(pod, ifName, 'pod');
      pod.addrAdd({ index: podLink.index, address: ip, prefixLen: 32 });
      pod.setUp(podLink.index);
      pod.routeAdd({ dst: POD_GATEWAY, dstLen: 32, oif: podLink.index, scope: 'link' });
      pod.neighAdd({ index: podLink.index, ip: POD_GATEWAY, mac: hostLink.mac, permanent: true });
      pod.routeAdd({ dstLen: 0, gateway: POD_GATEWAY, oif: podLink.index });
      step('pod-config');
      current = 'host-config';

      this.d.host.setUp(hostLink.index);
      this.d.host.routeAdd({ dst: ip, dstLen: 32, oif: hostLink.index, scope: 'link' });
      this.d.host.neighAdd({ index: hostLink.index, ip, mac: podLink.mac, permanent: true });
      step('host-config');
      current = 'attach';

      this.d.attacher.attach(hostName, hostLink.index);
      rb.push(`detach programs from ${hostName}`, () => this.d.attacher.detach(hostName, hostLink.index));
      step('attach');
      current = 'endpoint-map';

      const endpointId = this.nextId++;
      this.d.endpoints.set(ip, { ifindex: hostLink.index, endpointId, podMac: podLink.mac, hostMac: hostLink.mac, flags: EP_F_READY });
      rb.push(`delete endpoint ${ip}`, () => { this.d.endpoints.delete(ip); });
      step('endpoint-map');
      current = 'meta';

      const meta: EndpointMeta = {
        endpointId, containerId, ifName, netns: req.netns, ip,
        ...(req.podNamespace ? { podNamespace: req.podNamespace } : {}),
        ...(req.podName ? { podName: req.podName } : {}),
        hostIfName: hostName, hostIfIndex: hostLink.index, podMac: podLink.mac, hostMac: hostLink.mac,
        created: new Date().toISOString(),
        ...(req.hostPorts && req.hostPorts.length > 0 ? { hostPorts: req.hostPorts } : {}),
      };
      this.d.meta.put(meta);
      rb.push(`remove metadata of ${hostName}`, () => this.d.meta.remove(hostName));
      step('meta');
      current = 'host-ports';

      if (meta.hostPorts) {
        this.d.hostPorts!.changed();
        // The metadata goes first, so the frontends are written without this pod.
        rb.push(`remove host ports ${meta.hostPorts.map(describe).join(', ')}`, () => { this.d.meta.remove(hostName); this.d.hostPorts!.changed(); });
        log.info({ hostPorts: meta.hostPorts.map(describe) }, 'host ports added');
      }
      step('host-ports');

      rb.commit();
      this.health.delete(hostName);
      log.info({ ip, hostIfName: hostName, endpointId }, 'endpoint added');
      return {
        meta,
        result: {
          cniVersion: '1.1.0',
          interfaces: [
            { name: hostName, mac: hostLink.mac, mtu: req.mtu },
            { name: ifName, mac: podLink.mac, mtu: req.mtu, sandbox: req.netns },
          ],
          ips: [{ address: `${ip}/32`, gateway: POD_GATEWAY, interface: 1 }],
          routes: [{ dst: '0.0.0.0/0', gw: POD_GATEWAY }],
          dns: {},
        },
      };
    } catch (err) {
      // Read the steps before unwinding empties the stack.
      const undone = rb.steps.reverse();
      const failed = await rb.unwind();
      // One line per failed ADD, with everything that was undone and what could not be.
      log.error({
        err, failedStep: current, undone,
        ...(failed.length > 0 ? { undoFailures: failed.map((f) => ({ step: f.what, error: (f.error as Error)?.message ?? String(f.error) })) } : {}),
      }, failed.length > 0 ? 'endpoint add failed; rollback incomplete' : 'endpoint add failed; rolled back');
      if (err instanceof CniError) throw err;
      if (err instanceof PodnetError && err.code === 'POOL_EXHAUSTED') {
        throw new CniError(CniErrorCode.PoolExhausted, err.message, undefined, { cause: err });
      }
      throw new CniError(CniErrorCode.Internal, `add endpoint ${containerId}/${ifName}: ${(err as Error).message}`, undefined, { cause: err });
    } finally {
      pod?.close();
      ns?.close();
    }
  }

  /**
   * Refuses an ADD whose container id and ifname belong to a live endpoint in
   * another network namespace: going on would hand out the same address and
   * replace that pod's veth.
   */
  private refuseLiveElsewhere(req: AddRequest): void {
    const hostName = hostVethName(req.containerId, req.ifName);
    const live = this.d.meta.get(hostName);
    if (!live || live.netns === req.netns || this.teardowns.has(hostName)) return;
    if (!this.d.host.linkByName(hostName) || !existsSync(live.netns)) return; // that pod is gone: its leftovers are replaced below
    throw new CniError(
      CniErrorCode.InvalidEnvironment,
      `add ${req.containerId}/${req.ifName}: CNI_NETNS ${req.netns} differs from the netns ${live.netns} of the live endpoint with this CNI_CONTAINERID and CNI_IFNAME (${live.ip}); DEL it first`,
    );
  }

  /**
   * Refuses host ports with Services off (nothing would serve them) and
   * host ports another live pod holds (an overlapping 0.0.0.0 counts).
   */
  private refuseHostPorts(req: AddRequest): void {
    if (!req.hostPorts || req.hostPorts.length === 0) return;
    if (!this.d.hostPorts) {
      throw new CniError(CniErrorCode.UnsupportedField, `add ${req.containerId}/${req.ifName}: runtimeConfig.portMappings: host ports need podnet's Services (--services on); this agent runs with --services off`);
    }
    const self = hostVethName(req.containerId, req.ifName);
    const holders: HostPortHolder[] = this.hostPortPods().filter((p) => hostVethName(p.containerId, p.ifName) !== self).map((p) => ({
      who: p.podName ? `${p.podNamespace ?? ''}/${p.podName}` : `container ${p.containerId}`, mappings: p.mappings,
    }));
    const conflict = findConflict(req.hostPorts, holders);
    if (conflict) throw new CniError(CniErrorCode.InvalidConfig, `add ${req.containerId}/${req.ifName}: runtimeConfig.portMappings: ${conflict}`);
  }

  /** Live pods with host ports (a DEL that was answered no longer holds them). */
  hostPortPods(): HostPortPod[] {
    const out: HostPortPod[] = [];
    for (const m of this.d.meta.list()) {
      if (m.hostPorts === undefined || this.teardowns.has(m.hostIfName) || this.d.meta.pending(m.hostIfName)) continue;
      let mappings: HostPortMapping[];
      try {
        // The file is written by this agent, but read back from disk: a damaged one must not stop the Services.
        mappings = parsePortMappings(m.hostPorts).mappings;
      } catch (err) {
        this.d.log.error({ err, hostIfName: m.hostIfName, ...podField(m) }, 'endpoint metadata has unreadable host ports; not serving them');
        continue;
      }
      if (mappings.length > 0) out.push({ podNamespace: m.podNamespace, podName: m.podName, containerId: m.containerId, ifName: m.ifName, ip: m.ip, mappings });
    }
    return out;
  }

  /**
   * CNI DEL: idempotent, best effort, never fails because something is
   * already gone (netns deleted, veth gone, address released).
   *
   * It returns as soon as no traffic can reach the pod: endpoint entry
   * removed, host veth down, host route gone. Deleting the veth itself waits
   * for an RCU barrier in the kernel (~20 ms), so that, the address release
   * and the metadata follow right after the answer, the deletion on a worker
   * thread so other CNI requests are not held up; `settled()` awaits them.
   * The address stays allocated until the veth is gone, so it cannot be
   * handed to a new pod whose /32 route would collide with the old one.
   */
  del(containerId: string, ifName: string): void {
    const hostName = hostVethName(containerId, ifName);
    if (this.teardowns.has(hostName)) return;
    const meta = this.d.meta.get(hostName);
    const earlier = this.d.meta.pending(hostName);
    const ip = this.d.ipam.lookup(containerId, ifName) ?? meta?.ip ?? earlier?.ip;
    let endpointId = meta?.endpointId ?? earlier?.endpointId;
    const log = this.d.log.child({ containerId, ifName, hostIfName: hostName, ...podField(meta ?? {}) });
    // Durable before anything changes: an agent restarted after this DEL was
    // answered finishes the teardown instead of repairing the endpoint back.
    this.d.meta.markDeleting({ containerId, ifName, hostIfName: hostName, ...(ip !== undefined ? { ip } : {}), ...(endpointId !== undefined ? { endpointId } : {}) });
    if (ip !== undefined) {
      const e = this.d.endpoints.get(ip);
      // Only remove the entry if it still belongs to this endpoint's veth.
      if (e && (endpointId === undefined || e.endpointId === endpointId)) {
        endpointId ??= e.endpointId;
        this.d.endpoints.delete(ip);
      }
    }
    const link = this.d.host.linkByName(hostName);
    if (link) {
      try {
        this.d.host.setDown(link.index);
      } catch (err) {
        if (!isGone(err)) throw err;
      }
    }
    const teardown = (this.reaperChain = this.reaperChain.then(async () => {
      try {
        this.d.attacher.detach(hostName, link?.index);
        if (link) await this.deleteLinkInBackground(hostName, link.index);
        if (ip !== undefined && this.ownedBy(ip, containerId, ifName)) this.d.ipam.releaseIp(ip);
        if (endpointId !== undefined) this.d.counters?.deleteEndpoint(endpointId);
        this.d.meta.remove(hostName);
        this.d.meta.clearDeleting(hostName);
        this.health.delete(hostName);
        log.info({ ip }, 'endpoint deleted');
      } catch (err) {
        // The pending record stays: the next reconcile finishes what is left.
        log.error({ err }, 'endpoint teardown failed; the next reconcile retries it');
      } finally {
        this.teardowns.delete(hostName);
      }
    }));
    this.teardowns.set(hostName, teardown);
    // Frontends go with the answer: the pod is unreachable from here on.
    if (meta?.hostPorts && meta.hostPorts.length > 0) this.d.hostPorts?.changed();
  }

  /** True when `ip` is allocated to exactly this attachment (never release another pod's address). */
  private ownedBy(ip: string, containerId: string, ifName: string): boolean {
    const o = this.d.ipam.owner(ip);
    return o !== undefined && o.containerId === containerId && o.ifName === ifName;
  }

  /** Answered DELs whose teardown has not finished. */
  pendingTeardowns(): number {
    return this.d.meta.pendingList().length;
  }

  /** Resolves when every DEL so far has finished tearing down its veth and address. */
  async settled(): Promise<void> {
    while (this.teardowns.size > 0) await Promise.all([...this.teardowns.values()]);
  }

  /**
   * CNI CHECK: the pod's address, routes, neighbour, veth and attached
   * programs match what ADD made and what prevResult says.
   * @throws CniError naming the first thing that does not match.
   */
  check(req: { containerId: string; ifName: string; netns: string; prevResult: CniResult; hostPorts?: HostPortMapping[] }): void {
    const { containerId, ifName } = req;
    const fail = (what: string): never => {
      throw new CniError(CniErrorCode.Internal, `check ${containerId}/${ifName}: ${what}`);
    };
    const ip = this.d.ipam.lookup(containerId, ifName);
    if (ip === undefined) fail('no address is allocated to it');
    const want = req.prevResult.ips.map((i) => i.address);
    if (!want.includes(`${ip}/32`)) fail(`allocated ${ip}/32 is not in prevResult.ips (${want.join(', ') || 'none'})`);
    const hostName = hostVethName(containerId, ifName);
    const hostLink = this.d.host.linkByName(hostName);
    if (!hostLink) return fail(`host veth ${hostName} is missing`);
    if (hostLink.kind !== 'veth') fail(`${hostName} is a ${hostLink.kind}, not a veth`);
    if (!hostLink.up) fail(`host veth ${hostName} is down`);
    const hostRoute = this.d.host.routes({ family: 4, oif: hostLink.index }).find((r) => r.dst === ip && r.dstLen === 32);
    if (!hostRoute) fail(`host route ${ip}/32 dev ${hostName} is missing`);
    const ep = this.d.endpoints.get(ip!);
    if (!ep || ep.ifindex !== hostLink.index) fail(`endpoint map entry for ${ip} is missing or points elsewhere`);
    const attach = this.d.attacher.health(hostName, hostLink.index);
    if (attach.length > 0) fail(`datapath programs on ${hostName}: ${attach.join('; ')}`);

    let ns: NetNs;
    try {
      ns = NetNs.open(req.netns);
    } catch (err) {
      return fail(`open netns ${req.netns}: ${(err as Error).message}`);
    }
    try {
      using pod = NetlinkHandle.open({ netns: ns });
      const podLink = pod.linkByName(ifName);
      if (!podLink) return fail(`interface ${ifName} is missing in ${req.netns}`);
      const prevIf = req.prevResult.interfaces.find((i) => i.name === ifName && i.sandbox);
      if (prevIf?.mac && prevIf.mac !== podLink.mac) fail(`${ifName} has MAC ${podLink.mac}, prevResult says ${prevIf.mac}`);
      if (!pod.addrs({ index: podLink.index, family: 4 }).some((a) => a.address === ip && a.prefixLen === 32)) fail(`${ifName} lacks ${ip}/32`);
      const routes = pod.routes({ family: 4, oif: podLink.index });
      if (!routes.some((r) => r.dst === POD_GATEWAY && r.dstLen === 32)) fail(`route to gateway ${POD_GATEWAY} is missing`);
      for (const r of req.prevResult.routes) {
        const [dst, len] = r.dst.split('/');
        const isDefault = Number(len) === 0;
        const found = routes.some((x) => (isDefault ? x.dstLen === 0 : x.dst === dst && x.dstLen === Number(len)) && (!r.gw || x.gateway === r.gw));
        if (!found) fail(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in the pod`);
      }
      const neigh = pod.neighs({ index: podLink.index, family: 4 }).find((n) => n.ip === POD_GATEWAY);
      if (!neigh || neigh.mac !== hostLink.mac || neigh.stateName !== 'permanent') fail(`permanent neighbour ${POD_GATEWAY} -> ${hostLink.mac} is missing`);
    } finally {
      ns.close();
    }
    const meta = this.d.meta.get(hostName);
    const held = meta?.hostPorts ?? [];
    if (req.hostPorts) {
      const key = (l: readonly HostPortMapping[]): string => l.map(describe).sort().join(', ');
      if (key(req.hostPorts) !== key(held)) fail(`runtimeConfig.portMappings (${key(req.hostPorts) || 'none'}) differ from the host ports ADD set up (${key(held) || 'none'})`);
    }
    if (held.length > 0) {
      const problems = this.d.hostPorts
        ? this.d.hostPorts.problems({ podNamespace: meta?.podNamespace, podName: meta?.podName, containerId, ifName, ip: ip!, mappings: held })
        : ['host ports need Services on (--services on)'];
      if (problems.length > 0) fail(problems.join('; '));
    }
  }

  /**
   * CNI GC: removes every endpoint and allocation not in `valid`, and host
   * veths of this agent's that belong to no valid attachment. A `pn*` veth
   * is this agent's only if its metadata, allocation or link pins are: other
   * podnet instances on the same host (tests, demos) keep theirs.
   */
  async gc(valid: Array<{ containerId: string; ifName: string }>): Promise<{ released: string[]; links: string[] }> {
    const keepNames = new Set(valid.map((v) => hostVethName(v.containerId, v.ifName)));
    const released: string[] = [];
    const links: string[] = [];
    for (const a of this.d.ipam.allocations()) {
      if (keepNames.has(hostVethName(a.owner.containerId, a.owner.ifName))) continue;
      this.del(a.owner.containerId, a.owner.ifName);
      released.push(a.ip);
    }
    for (const m of this.d.meta.list()) {
      if (!keepNames.has(m.hostIfName)) this.del(m.containerId, m.ifName);
    }
    await this.settled();
    for (const l of this.d.host.links()) {
      if (l.kind === 'veth' && isHostVethName(l.name) && !keepNames.has(l.name) && this.d.attacher.owns(l.name)) {
        this.d.attacher.detach(l.name, l.index);
        this.deleteLinkQuiet(l.name);
        links.push(l.name);
      }
    }
    this.d.log.info({ released, links, kept: valid.length }, 'gc done');
    return { released, links };
  }

  /**
   * Brings stored state in line with the kernel, at start and then
   * periodically: DELs whose teardown did not finish are finished; endpoints
   * whose netns or host veth vanished (the pod was deleted while no agent
   * ran) are deleted; live ones are checked and repaired one by one (a
   * failure on one endpoint marks it unhealthy and never stops the others);
   * map entries and allocations that belong to no endpoint go.
   */
  async reconcile(): Promise<Omit<ReconcileOutcome, 'at'> & { orphans: number; unhealthy: string[] }> {
    let removed = 0, repaired = 0, orphans = 0;
    const unhealthy: string[] = [];
    for (const p of this.d.meta.pendingList()) {
      if (this.teardowns.has(p.hostIfName)) continue;
      this.del(p.containerId, p.ifName);
      removed++;
    }
    await this.settled();
    for (const m of this.d.meta.list()) {
      if (this.teardowns.has(m.hostIfName)) continue;
      const link = this.d.host.linkByName(m.hostIfName);
      // The kernel destroys a deleted netns (and the veth in it) asynchronously:
      // a missing netns path already means the pod is gone.
      if (!link || !existsSync(m.netns)) {
        this.del(m.containerId, m.ifName);
        await this.settled();
        removed++;
        continue;
      }
      const found = this.problems(m, link);
      if (found.length === 0) {
        this.health.delete(m.hostIfName);
        continue;
      }
      const left = this.repair(m, link, found);
      if (left.length === 0) {
        repaired++;
        this.health.delete(m.hostIfName);
        this.d.log.warn({ containerId: m.containerId, ifName: m.ifName, hostIfName: m.hostIfName, ...podField(m), fixed: found }, 'endpoint repaired');
      } else {
        unhealthy.push(m.hostIfName);
        this.health.set(m.hostIfName, left);
        this.d.log.error({ containerId: m.containerId, ifName: m.ifName, hostIfName: m.hostIfName, ...podField(m), problems: left }, 'endpoint unhealthy: repair failed');
      }
    }
    // From here on nothing awaits: an ADD that finished during the awaits
    // above is in the labels now and keeps its entry and address.
    const live = new Set(this.d.meta.list().map((m) => m.ip));
    for (const [ip] of [...this.d.endpoints.entries()]) {
      if (!live.has(ip)) { this.d.endpoints.delete(ip); orphans++; }
    }
    for (const a of this.d.ipam.allocations()) {
      if (!live.has(a.ip) && !this.teardowns.has(hostVethName(a.owner.containerId, a.owner.ifName))) { this.d.ipam.releaseIp(a.ip); orphans++; }
    }
    for (const host of [...this.health.keys()]) if (!this.d.meta.get(host)) this.health.delete(host);
    const result = unhealthy.length > 0 ? 'failed' : repaired + removed + orphans > 0 ? 'repaired' : 'ok';
    return { result, removed, repaired, failed: unhealthy.length, orphans, unhealthy };
  }

  /** What is wrong with a live endpoint: everything ADD made that is missing or different. */
  private problems(m: EndpointMeta, link: Link): string[] {
    const out: string[] = [];
    if (!link.up) out.push(`host veth ${m.hostIfName} is down`);
    try {
      if (!this.d.host.routes({ family: 4, oif: link.index }).some((r) => r.dst === m.ip && r.dstLen === 32)) out.push(`host route ${m.ip}/32 dev ${m.hostIfName} is missing`);
    } catch (err) {
      out.push(`list routes of ${m.hostIfName}: ${(err as Error).message}`);
    }
    try {
      out.push(...this.d.attacher.health(m.hostIfName, link.index));
    } catch (err) {
      out.push(`inspect programs on ${m.hostIfName}: ${(err as Error).message}`);
    }
    const e = this.d.endpoints.get(m.ip);
    if (!e) out.push(`endpoint map entry for ${m.ip} is missing`);
    else if (e.ifindex !== link.index || e.endpointId !== m.endpointId || e.podMac !== m.podMac || e.hostMac !== link.mac || !(e.flags & EP_F_READY)) {
      out.push(`endpoint map entry for ${m.ip} differs from the endpoint`);
    }
    return out;
  }

  /** Repairs what `problems` found; returns what is still wrong afterwards. */
  private repair(m: EndpointMeta, link: Link, found: string[]): string[] {
    const errors: string[] = [];
    const attempt = (what: string, fn: () => void): void => {
      try { fn(); } catch (err) { errors.push(`${what}: ${(err as Error).message}`); }
    };
    if (!link.up) attempt(`set ${m.hostIfName} up`, () => this.d.host.setUp(link.index));
    if (found.some((f) => f.startsWith('host route'))) {
      attempt(`add route ${m.ip}/32`, () => this.d.host.routeAdd({ dst: m.ip, dstLen: 32, oif: link.index, scope: 'link' }));
    }
    if (this.d.attacher.health(m.hostIfName, link.index).length > 0) attempt(`attach programs to ${m.hostIfName}`, () => this.d.attacher.attach(m.hostIfName, link.index));
    attempt(`write endpoint map entry for ${m.ip}`, () => {
      this.d.endpoints.set(m.ip, { ifindex: link.index, endpointId: m.endpointId, podMac: m.podMac, hostMac: link.mac, flags: EP_F_READY });
    });
    if (link.index !== m.hostIfIndex || link.mac !== m.hostMac) attempt('update labels', () => this.d.meta.put({ ...m, hostIfIndex: link.index, hostMac: link.mac }));
    const now = this.d.host.linkByName(m.hostIfName);
    if (!now) return [...errors, `host veth ${m.hostIfName} vanished during repair`];
    const left = this.problems({ ...m, hostIfIndex: now.index }, now);
    return left.length === 0 ? [] : [...left, ...errors];
  }

  /** Every endpoint with its health: ready, unhealthy (with the problems found) or deleting. */
  list(): EndpointInfo[] {
    return this.d.meta.list()
      .map((m): EndpointInfo => {
        const problems = this.health.get(m.hostIfName) ?? [];
        const state = this.teardowns.has(m.hostIfName) ? 'deleting' : problems.length > 0 ? 'unhealthy' : 'ready';
        return { ...m, state, problems: state === 'unhealthy' ? [...problems] : [] };
      })
      .sort((a, b) => a.endpointId - b.endpointId);
  }

  /** Endpoints that serve traffic or should: every stored one not being deleted. */
  active(): EndpointMeta[] {
    return this.d.meta.list().filter((m) => !this.teardowns.has(m.hostIfName));
  }

  private mustLink(h: NetlinkHandle, name: string, side: string): Link {
    const l = h.linkByName(name);
    if (!l) throw new PodnetError('NO_LINK', `find ${side} interface ${name}: not found right after creating it`);
    return l;
  }

  /** Deletes a host veth on the reaper handle, off the event loop; gone already is fine. */
  private async deleteLinkInBackground(name: string, index: number): Promise<void> {
    if (!this.d.reaper) return this.deleteLinkQuiet(name);
    // Still the same device? ifindexes are not reused quickly, but check.
    if (this.d.host.linkByName(name)?.index !== index) return;
    try {
      await this.d.reaper.deleteLinkAsync(index);
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }

  private deleteLinkQuiet(name: string): void {
    const l = this.d.host.linkByName(name);
    if (!l) return;
    try {
      this.d.host.deleteLink(l.index);
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }
}
