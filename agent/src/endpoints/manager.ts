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
 */
import { existsSync } from 'node:fs';
import { NetlinkError, PodnetError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Ipam } from '../ipam/index.js';
import { NetlinkHandle, NetNs, type Link } from '../netlink/index.js';
import type { CniResult } from '../api/protocol.js';
import { CniErrorCode } from '../api/protocol.js';
import { CniError } from '../api/cni-error.js';
import { EP_F_READY, type EndpointsTable } from '../datapath/maps/index.js';
import { Rollback } from '../util/rollback.js';
import { hostVethName, isHostVethName } from './naming.js';
import type { EndpointMeta, MetaStore } from './meta-store.js';

/** The pod's gateway: a link-local address answered by a permanent neighbour entry, never by ARP. */
export const POD_GATEWAY = '169.254.1.1';

/** Attaches the shared pod programs to host veths; implemented by the Datapath. */
export interface PodAttacher {
  attach(hostIfName: string, ifindex: number): void;
  detach(hostIfName: string, ifindex: number | undefined): void;
  /** Both programs attached to this interface? */
  isAttached(hostIfName: string, ifindex: number): boolean;
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
  /** Test hook: called after each ADD step by name; throwing there simulates a failure at that point. */
  failpoint?: (step: AddStep) => void;
}

/** The ADD steps, in order; names used by the failpoint hook and in logs. */
export const ADD_STEPS = ['ipam', 'veth', 'pod-config', 'host-config', 'attach', 'endpoint-map', 'meta'] as const;
export type AddStep = (typeof ADD_STEPS)[number];

const isGone = (err: unknown): boolean =>
  err instanceof NetlinkError && ['ENODEV', 'ENOENT', 'ESRCH', 'EADDRNOTAVAIL'].includes(err.errnoName);

/** Owns every pod endpoint on this node. */
export class EndpointManager {
  private nextId: number;
  /** DELs whose veth and address are still being released, by host veth name. */
  private readonly teardowns = new Map<string, Promise<void>>();
  /** Teardowns run one after another: the reaper handle takes one request at a time. */
  private reaperChain: Promise<void> = Promise.resolve();

  constructor(private readonly d: EndpointManagerDeps) {
    let max = 0;
    for (const [, e] of d.endpoints.entries()) max = Math.max(max, e.endpointId);
    for (const m of d.meta.list()) max = Math.max(max, m.endpointId);
    this.nextId = max + 1;
  }

  /** CNI ADD. @throws CniError with a spec code; on any failure nothing is left behind. */
  async add(req: AddRequest): Promise<{ result: CniResult; meta: EndpointMeta }> {
    const { containerId, ifName } = req;
    const log = this.d.log.child({ containerId, ifName });
    // A DEL of the same attachment may still be releasing its veth.
    await this.teardowns.get(hostVethName(containerId, ifName));
    const rb = new Rollback();
    const step = (s: AddStep): void => this.d.failpoint?.(s);
    let ns: NetNs | undefined;
    let pod: NetlinkHandle | undefined;
    try {
      try {
        ns = NetNs.open(req.netns);
      } catch (err) {
        throw new CniError(CniErrorCode.InvalidEnvironment, `open CNI_NETNS ${req.netns}: ${(err as Error).message}`, undefined, { cause: err });
      }
      pod = NetlinkHandle.open({ netns: ns });
      if (pod.linkByName(ifName)) {
        throw new CniError(CniErrorCode.Internal, `add ${ifName} to ${req.netns}: an interface named ${ifName} already exists in the pod`);
      }

      const ip = this.d.ipam.allocate(containerId, ifName);
      rb.push(`release ${ip}`, () => { this.d.ipam.release(containerId, ifName); });
      step('ipam');

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

      const podLink = this.mustLink(pod, ifName, 'pod');
      pod.addrAdd({ index: podLink.index, address: ip, prefixLen: 32 });
      pod.setUp(podLink.index);
      pod.routeAdd({ dst: POD_GATEWAY, dstLen: 32, oif: podLink.index, scope: 'link' });
      pod.neighAdd({ index: podLink.index, ip: POD_GATEWAY, mac: hostLink.mac, permanent: true });
      pod.routeAdd({ dstLen: 0, gateway: POD_GATEWAY, oif: podLink.index });
      step('pod-config');

      this.d.host.setUp(hostLink.index);
      this.d.host.routeAdd({ dst: ip, dstLen: 32, oif: hostLink.index, scope: 'link' });
      this.d.host.neighAdd({ index: hostLink.index, ip, mac: podLink.mac, permanent: true });
      step('host-config');

      this.d.attacher.attach(hostName, hostLink.index);
      rb.push(`detach programs from ${hostName}`, () => this.d.attacher.detach(hostName, hostLink.index));
      step('attach');

      const endpointId = this.nextId++;
      this.d.endpoints.set(ip, { ifindex: hostLink.index, endpointId, podMac: podLink.mac, hostMac: hostLink.mac, flags: EP_F_READY });
      rb.push(`delete endpoint ${ip}`, () => { this.d.endpoints.delete(ip); });
      step('endpoint-map');

      const meta: EndpointMeta = {
        endpointId, containerId, ifName, netns: req.netns, ip,
        ...(req.podNamespace ? { podNamespace: req.podNamespace } : {}),
        ...(req.podName ? { podName: req.podName } : {}),
        hostIfName: hostName, hostIfIndex: hostLink.index, podMac: podLink.mac, hostMac: hostLink.mac,
        created: new Date().toISOString(),
      };
      this.d.meta.put(meta);
      rb.push(`remove metadata of ${hostName}`, () => this.d.meta.remove(hostName));
      step('meta');

      rb.commit();
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
      const failed = await rb.unwind();
      for (const f of failed) log.error({ err: f.error, step: f.what }, 'rollback step failed');
      log.warn({ err, undone: rb.steps }, 'endpoint add failed; rolled back');
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
    const ip = this.d.ipam.lookup(containerId, ifName) ?? meta?.ip;
    let endpointId = meta?.endpointId;
    if (ip !== undefined) {
      const e = this.d.endpoints.get(ip);
      // Only remove the entry if it still belongs to this endpoint's veth.
      if (e && (meta === undefined || e.endpointId === meta.endpointId)) {
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
        if (ip !== undefined) this.d.ipam.release(containerId, ifName);
        if (endpointId !== undefined) this.d.counters?.deleteEndpoint(endpointId);
        this.d.meta.remove(hostName);
        this.d.log.info({ containerId, ifName, ip, hostIfName: hostName }, 'endpoint deleted');
      } catch (err) {
        // Reconcile at the next start, or GC, finishes what is left.
        this.d.log.error({ err, containerId, ifName, hostIfName: hostName }, 'endpoint teardown failed');
      } finally {
        this.teardowns.delete(hostName);
      }
    }));
    this.teardowns.set(hostName, teardown);
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
  check(req: { containerId: string; ifName: string; netns: string; prevResult: CniResult }): void {
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
    if (!this.d.attacher.isAttached(hostName, hostLink.index)) fail(`datapath programs are not attached to ${hostName}`);

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
   * Brings stored state in line with the kernel after an agent (re)start:
   * endpoints whose netns or host veth vanished (the pod was deleted while no
   * agent ran) are deleted; live ones get their map entry and programs back
   * if missing; map entries and allocations that belong to no endpoint go.
   */
  async reconcile(): Promise<{ removed: number; repaired: number; orphans: number }> {
    let removed = 0, repaired = 0, orphans = 0;
    const live = new Set<string>();
    for (const m of this.d.meta.list()) {
      const link = this.d.host.linkByName(m.hostIfName);
      // The kernel destroys a deleted netns (and the veth in it) asynchronously:
      // a missing netns path already means the pod is gone.
      if (!link || !existsSync(m.netns)) {
        this.del(m.containerId, m.ifName);
        await this.settled();
        removed++;
        continue;
      }
      live.add(m.ip);
      let fixed = false;
      if (!this.d.attacher.isAttached(m.hostIfName, link.index)) {
        this.d.attacher.attach(m.hostIfName, link.index);
        fixed = true;
      }
      const e = this.d.endpoints.get(m.ip);
      if (!e || e.ifindex !== link.index || e.endpointId !== m.endpointId) {
        this.d.endpoints.set(m.ip, { ifindex: link.index, endpointId: m.endpointId, podMac: m.podMac, hostMac: link.mac, flags: EP_F_READY });
        fixed = true;
      }
      if (link.index !== m.hostIfIndex) this.d.meta.put({ ...m, hostIfIndex: link.index });
      if (fixed) repaired++;
    }
    for (const [ip] of [...this.d.endpoints.entries()]) {
      if (!live.has(ip)) { this.d.endpoints.delete(ip); orphans++; }
    }
    for (const a of this.d.ipam.allocations()) {
      if (!live.has(a.ip)) { this.d.ipam.releaseIp(a.ip); orphans++; }
    }
    return { removed, repaired, orphans };
  }

  /** Every endpoint as stored. */
  list(): EndpointMeta[] {
    return this.d.meta.list().filter((m) => !this.teardowns.has(m.hostIfName)).sort((a, b) => a.endpointId - b.endpointId);
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
