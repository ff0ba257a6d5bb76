/** NetlinkHandle: typed rtnetlink operations over one socket bound to one network namespace. */
import { NetlinkError } from '../errors/index.js';
import { ENODEV } from '../errors/errno.js';
import { decodeAddr, encodeAddr, encodeAddrDump, type AddrRequest } from './addr-codec.js';
import { MessageWriter } from './codec.js';
import { RT_TABLE_MAIN, RTM_DELADDR, RTM_NEWADDR } from './constants.js';
import { decodeLink, encodeDelLink, encodeGetLink, encodeLinkDump, encodeNewVeth, encodeSetLink } from './link-codec.js';
import { decodeNeigh, encodeDelNeigh, encodeNeighDump, encodeNewNeigh, type NeighRequest } from './neigh-codec.js';
import { withNetns, type NetNs } from './netns.js';
import { decodeRoute, encodeRoute, encodeRouteDump, type RouteFilter, type RouteOp, type RouteRequest } from './route-codec.js';
import { NetlinkConn, NetlinkSocket, opText, type NetlinkSocketOptions, type NetlinkTransport, type OpName } from './socket.js';
import type { Addr, Family, Link, Neigh, Route } from './types.js';

/** Options of `NetlinkHandle.open`. */
export interface NetlinkHandleOptions extends NetlinkSocketOptions {
  /** Namespace the handle acts in; default the calling thread's. */
  netns?: NetNs;
}

/** What `addVeth` creates. */
export interface VethOptions {
  name: string;
  peerName: string;
  /** Create the peer directly in this namespace (IFLA_NET_NS_FD), never entering it. */
  peerNetns?: NetNs;
  /** MTU of both ends. */
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

function isMissing(err: unknown): boolean {
  return err instanceof NetlinkError && (err.errnoName === 'ENODEV' || err.errnoName === 'ENOENT');
}

/**
 * One rtnetlink socket bound to one network namespace, after vishvananda/netlink's
 * Handle. Every change asks for an acknowledgement; a refusal throws NetlinkError
 * carrying the errno name and the kernel's extended-ack message. Not re-entrant:
 * one request at a time (Node's single thread guarantees it for synchronous callers).
 */
export class NetlinkHandle implements Disposable {
  private readonly w = new MessageWriter();
  private readonly where: string;

  private constructor(
    private readonly conn: NetlinkConn,
    netns?: NetNs,
  ) {
    this.where = netns ? ` in netns ${netns.path}` : '';
  }

  /**
   * Opens a handle. With `netns`, the socket is opened inside that namespace
   * (through withNetns) and every later request acts there without switching again.
   * Throws SyscallError.
   */
  static open(opts: NetlinkHandleOptions = {}): NetlinkHandle {
    const { netns, ...sockOpts } = opts;
    const sock = netns ? withNetns(netns, () => NetlinkSocket.open(sockOpts)) : NetlinkSocket.open(sockOpts);
    return new NetlinkHandle(new NetlinkConn(sock), netns);
  }

  /** A handle over any transport; for tests with a fake kernel. */
  static fromTransport(transport: NetlinkTransport, opts: { dumpAttempts?: number } = {}): NetlinkHandle {
    return new NetlinkHandle(new NetlinkConn(transport, opts));
  }

  // ---- links ----

  /** The link called `name`, or undefined (`ip link show dev NAME`). */
  linkByName(name: string): Link | undefined {
    return this.getLink({ name }, `get link ${name}`);
  }

  /** The link with ifindex `index`, or undefined (`ip link show` filtered by index). */
  linkByIndex(index: number): Link | undefined {
    return this.getLink({ index }, `get link ifindex ${index}`);
  }

  /** Every link in the namespace (`ip link show`). */
  links(): Link[] {
    return this.conn.dump(this.op(() => 'list links'), encodeLinkDump(this.w), decodeLink);
  }

  /**
   * Creates a veth pair (`ip link add NAME [mtu M] [address MAC] type veth peer name PEER [address MAC] [netns NS]`)
   * and returns both ifindexes; the peer's is in its own namespace. Throws NetlinkError (EEXIST when a name is taken).
   */
  addVeth(opts: VethOptions): { index: number; peerIndex?: number } {
    const op = this.op(() => `add veth ${opts.name} (peer ${opts.peerName}${opts.peerNetns ? ` in netns ${opts.peerNetns.path}` : ''})`);
    this.conn.request(
      op,
      encodeNewVeth(
        {
          name: opts.name,
          peerName: opts.peerName,
          ...(opts.peerNetns ? { peerNetnsFd: opts.peerNetns.fd } : {}),
          ...(opts.mtu !== undefined ? { mtu: opts.mtu } : {}),
          ...(opts.mac !== undefined ? { mac: opts.mac } : {}),
          ...(opts.peerMac !== undefined ? { peerMac: opts.peerMac } : {}),
        },
        this.w,
      ),
    );
    const link = this.linkByName(opts.name);
    if (!link) throw new NetlinkError(`${opText(op)}: find it after creation`, ENODEV);
    return { index: link.index, ...(link.kind === 'veth' && link.peerIndex !== undefined ? { peerIndex: link.peerIndex } : {}) };
  }

  /** Sets a link administratively up (`ip link set dev X up`). */
  setUp(index: number): void {
    this.conn.request(this.op(() => `set link ${this.dev(index)} up`), encodeSetLink({ index, up: true }, this.w));
  }

  /** Sets a link administratively down (`ip link set dev X down`). */
  setDown(index: number): void {
    this.conn.request(this.op(() => `set link ${this.dev(index)} down`), encodeSetLink({ index, up: false }, this.w));
  }

  /** Changes a link's MTU (`ip link set dev X mtu M`). */
  setMtu(index: number, mtu: number): void {
    this.conn.request(this.op(() => `set mtu ${mtu} on link ${this.dev(index)}`), encodeSetLink({ index, mtu }, this.w));
  }

  /** Changes a link's hardware address (`ip link set dev X address MAC`). */
  setMac(index: number, mac: string): void {
    this.conn.request(this.op(() => `set address ${mac} on link ${this.dev(index)}`), encodeSetLink({ index, mac }, this.w));
  }

  /** Renames a link, which must be down (`ip link set dev X name NEW`). */
  rename(index: number, name: string): void {
    this.conn.request(this.op(() => `rename link ${this.dev(index)} to ${name}`), encodeSetLink({ index, name }, this.w));
  }

  /** Moves a link into another namespace (`ip link set dev X netns NS`); it gets a new ifindex there only on conflict. */
  setNetns(index: number, ns: NetNs): void {
    this.conn.request(this.op(() => `move link ${this.dev(index)} to netns ${ns.path}`), encodeSetLink({ index, netnsFd: ns.fd }, this.w));
  }

  /**
   * Deletes a link (`ip link del dev X`); deleting one veth end removes both.
   * A missing link throws NetlinkError with errnoName ENODEV, which idempotent callers ignore.
   */
  deleteLink(index: number): void {
    this.conn.request(this.op(() => `delete link ifindex ${index}`), encodeDelLink(index, this.w));
  }

  /**
   * deleteLink with the kernel's work done off the event loop's thread:
   * deleting a veth waits ~20 ms for an RCU barrier. Use a handle of its own
   * for this; do not issue other requests on it while one is pending.
   */
  async deleteLinkAsync(index: number): Promise<void> {
    // A fresh buffer: the writer's is reused by the next request.
    const msg = Buffer.from(encodeDelLink(index, this.w));
    await this.conn.requestAsync(this.op(() => `delete link ifindex ${index}`), msg);
  }

  // ---- addresses ----

  /** Adds an address (`ip addr add A/LEN dev X [scope S] [noprefixroute]`); EEXIST when present. */
  addrAdd(a: AddrRequest): void {
    this.conn.request(this.op(() => `add address ${a.address}/${a.prefixLen} dev ${this.dev(a.index)}`), encodeAddr(RTM_NEWADDR, a, this.w));
  }

  /** Deletes an address (`ip addr del A/LEN dev X`); EADDRNOTAVAIL when absent. */
  addrDel(a: AddrRequest): void {
    this.conn.request(this.op(() => `delete address ${a.address}/${a.prefixLen} dev ${this.dev(a.index)}`), encodeAddr(RTM_DELADDR, a, this.w));
  }

  /** Addresses, optionally of one link and one family (`ip [-4|-6] addr show [dev X]`). */
  addrs(filter: { index?: number; family?: Family } = {}): Addr[] {
    const all = this.conn.dump(this.op(() => 'list addresses'), encodeAddrDump(filter, this.w), decodeAddr);
    // The kernel filters too under strict checking; this keeps results right without it.
    return all.filter((a) => (filter.index === undefined || a.index === filter.index) && (filter.family === undefined || a.family === filter.family));
  }

  // ---- routes ----

  /**
   * Adds a route (`ip route add DST/LEN [via GW] [dev X] [onlink] [scope S] [table T] [proto P] [src S] [metric M]`).
   * Defaults: table main, protocol boot, scope universe, type unicast. Unlike `ip`, a route
   * without a gateway is not made link-scoped implicitly: pass scope 'link'. EEXIST when present.
   */
  routeAdd(r: RouteRequest): void {
    this.route('add', r);
  }

  /** Adds or replaces a route (`ip route replace ...`), same defaults as routeAdd. */
  routeReplace(r: RouteRequest): void {
    this.route('replace', r);
  }

  /** Deletes a route (`ip route del ...`); unset scope, protocol and type match any. ESRCH when absent. */
  routeDel(r: RouteRequest): void {
    this.route('del', r);
  }

  /** Routes of one table (default main; 0 for all), optionally one family and output link (`ip route show [table T] [dev X]`). */
  routes(filter: RouteFilter = {}): Route[] {
    const table = filter.table ?? RT_TABLE_MAIN;
    const all = this.conn.dump(this.op(() => 'list routes'), encodeRouteDump(filter, this.w), decodeRoute);
    return all.filter(
      (r) =>
        (table === 0 || r.table === table) &&
        (filter.family === undefined || r.family === filter.family) &&
        (filter.oif === undefined || r.oif === filter.oif),
    );
  }

  // ---- neighbours ----

  /** Adds or replaces a neighbour entry, permanent by default (`ip neigh replace IP lladdr MAC dev X nud permanent`). */
  neighAdd(n: NeighRequest): void {
    this.conn.request(this.op(() => `add neighbour ${n.ip} lladdr ${n.mac} dev ${this.dev(n.index)}`), encodeNewNeigh(n, this.w));
  }

  /** Deletes a neighbour entry (`ip neigh del IP dev X`); ENOENT when absent. */
  neighDel(n: { index: number; ip: string }): void {
    this.conn.request(this.op(() => `delete neighbour ${n.ip} dev ${this.dev(n.index)}`), encodeDelNeigh(n, this.w));
  }

  /** Neighbour entries, optionally of one link and one family (`ip neigh show [dev X]`). */
  neighs(filter: { index?: number; family?: Family } = {}): Neigh[] {
    const all = this.conn.dump(this.op(() => 'list neighbours'), encodeNeighDump(filter, this.w), decodeNeigh);
    return all.filter((n) => (filter.index === undefined || n.index === filter.index) && (filter.family === undefined || n.family === filter.family));
  }

  /** Closes the socket; later calls fail with EBADF. Safe to call twice. */
  close(): void {
    this.conn.close();
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }

  private getLink(q: { index: number } | { name: string }, what: string): Link | undefined {
    try {
      return this.conn.request(this.op(() => what), encodeGetLink(q, this.w), decodeLink)[0];
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  private route(op: RouteOp, r: RouteRequest): void {
    const verb = op === 'del' ? 'delete' : op;
    this.conn.request(
      this.op(() => {
        const parts = [`${verb} route ${r.dst === undefined ? 'default' : `${r.dst}/${r.dstLen}`}`];
        if (r.gateway !== undefined) parts.push(`via ${r.gateway}`);
        if (r.oif !== undefined) parts.push(`dev ${this.dev(r.oif)}`);
        if (r.onlink) parts.push('onlink');
        if (r.table !== undefined && r.table !== RT_TABLE_MAIN) parts.push(`table ${r.table}`);
        return parts.join(' ');
      }),
      encodeRoute(op, r, this.w),
    );
  }

  /** Adds the namespace to an operation's description. */
  private op(describe: () => string): OpName {
    return () => describe() + this.where;
  }

  /** A link's name for error messages, looked up only on the error path; 'ifindex N' when that fails. */
  private dev(index: number): string {
    if (this.conn.broken) return `ifindex ${index}`;
    try {
      const link = this.linkByIndex(index);
      return link ? link.name : `ifindex ${index}`;
    } catch {
      return `ifindex ${index}`;
    }
  }
}
