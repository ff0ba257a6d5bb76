/**
 * Two fresh network namespaces joined by one veth pair, built with podnet's
 * netlink library (no `ip` for the setup). The pair is made quiet enough to
 * count packets exactly: IPv6 is off in both namespaces before the veth
 * exists (no ND, MLD or router solicitations) and each end has a permanent
 * neighbour entry for the other (no ARP), so the only packets on the wire are
 * the ones a test sends. Each namespace also carries a unique marker address
 * on its (down) loopback device, so that a namespace found later by inode
 * can be told apart from a new one that reuses the inode number.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_NETNS_DIR, NetlinkHandle, NetNs, withNetns } from '../../agent/src/netlink/index.js';

/** Ethernet (14) + IPv4 (20) + ICMP (8) header bytes in front of an echo request's payload. */
export const ICMP_ECHO_OVERHEAD = 14 + 20 + 8;

/** One side of the pair: its namespace and its veth end. */
export interface PairEnd {
  /** Namespace name under /run/netns. */
  readonly netns: string;
  /** Namespace inode, to prove later that the namespace is gone. */
  readonly inode: bigint;
  readonly ifname: string;
  readonly ifindex: number;
  readonly mac: string;
  /** IPv4 address on the veth end (prefix length 30). */
  readonly ip: string;
  /** 127.x.y.z/32 on the namespace's loopback device, unique to this pair. */
  readonly marker: string;
}

/** What a finished ping reported. */
export interface PingResult {
  transmitted: number;
  received: number;
}

/** A short random hex suffix (2 bytes = 4 characters by default). */
export function randomSuffix(bytes = 2): string {
  return randomBytes(bytes).toString('hex');
}

function writeSysctl(ns: NetNs, key: string, value: string): void {
  const path = join('/proc/sys', ...key.split('.'));
  // /proc/sys/net resolves against the calling thread's namespace, and sync fs calls run on this thread.
  withNetns(ns, () => {
    writeFileSync(path, value);
    const back = readFileSync(path, 'utf8').trim();
    if (back !== value) throw new Error(`set sysctl ${key}=${value} in netns ${ns.path}: reads back ${back}`);
  });
}

/** Two namespaces A and B, with veth end `a` in A and `b` in B on one /30. */
export class NetnsPair {
  private nsA: NetNs | undefined;
  private nsB: NetNs | undefined;
  private removed = false;

  private constructor(
    readonly a: PairEnd,
    readonly b: PairEnd,
    nsA: NetNs,
    nsB: NetNs,
  ) {
    this.nsA = nsA;
    this.nsB = nsB;
  }

  /**
   * Creates both namespaces (`pn<label>a-<rand>`, `pn<label>b-<rand>`), the veth
   * pair (created in A with its peer placed straight into B), 10.236.<octet>.1/30
   * and .2/30 on the ends, permanent neighbours both ways and the marker on
   * both loopbacks, and brings both ends up. Everything made so far is removed
   * again when a step fails.
   */
  static create(label: string, octet = randomBytes(1)[0]!): NetnsPair {
    const m = randomBytes(3);
    const s = m.toString('hex');
    const marker = `127.${m[0]}.${m[1]}.${m[2]}`;
    const names = { a: `pn${label}a-${s}`, b: `pn${label}b-${s}` };
    const ifnames = { a: `pn${label}a${s}`.slice(0, 15), b: `pn${label}b${s}`.slice(0, 15) };
    const ips = { a: `10.236.${octet}.1`, b: `10.236.${octet}.2` };
    let nsA: NetNs | undefined;
    let nsB: NetNs | undefined;
    try {
      nsA = NetNs.create(names.a);
      nsB = NetNs.create(names.b);
      for (const ns of [nsA, nsB]) {
        writeSysctl(ns, 'net.ipv6.conf.all.disable_ipv6', '1');
        writeSysctl(ns, 'net.ipv6.conf.default.disable_ipv6', '1');
      }
      using hA = NetlinkHandle.open({ netns: nsA });
      using hB = NetlinkHandle.open({ netns: nsB });
      const { index: ia } = hA.addVeth({ name: ifnames.a, peerName: ifnames.b, peerNetns: nsB });
      const linkB = hB.linkByName(ifnames.b);
      const linkA = hA.linkByIndex(ia);
      if (!linkA || !linkB) throw new Error(`create veth ${ifnames.a}/${ifnames.b}: an end is missing after creation`);
      hA.addrAdd({ index: linkA.index, address: ips.a, prefixLen: 30 });
      hB.addrAdd({ index: linkB.index, address: ips.b, prefixLen: 30 });
      hA.neighAdd({ index: linkA.index, ip: ips.b, mac: linkB.mac });
      hB.neighAdd({ index: linkB.index, ip: ips.a, mac: linkA.mac });
      for (const h of [hA, hB]) {
        const lo = h.linkByName('lo');
        if (!lo) throw new Error('find lo in a new netns: missing');
        h.addrAdd({ index: lo.index, address: marker, prefixLen: 32 });
      }
      hA.setUp(linkA.index);
      hB.setUp(linkB.index);
      const a: PairEnd = { netns: names.a, inode: nsA.inode(), ifname: linkA.name, ifindex: linkA.index, mac: linkA.mac, ip: ips.a, marker };
      const b: PairEnd = { netns: names.b, inode: nsB.inode(), ifname: linkB.name, ifindex: linkB.index, mac: linkB.mac, ip: ips.b, marker };
      return new NetnsPair(a, b, nsA, nsB);
    } catch (err) {
      nsA?.close();
      nsB?.close();
      NetNs.remove(names.a);
      NetNs.remove(names.b);
      throw err;
    }
  }

  /** Runs `fn` (synchronous) inside namespace B, where device-bound calls resolve B's ifindex. */
  inB<T>(fn: () => T): T {
    if (!this.nsB) throw new Error(`enter netns ${this.b.netns}: the pair is removed`);
    return withNetns(this.nsB, fn);
  }

  /** Opens a netlink handle in namespace A or B; close it when done. */
  handle(side: 'a' | 'b'): NetlinkHandle {
    const ns = side === 'a' ? this.nsA : this.nsB;
    if (!ns) throw new Error(`open netlink handle in netns ${this[side].netns}: the pair is removed`);
    return NetlinkHandle.open({ netns: ns });
  }

  /**
   * Sends exactly `count` ICMP echo requests of `size` payload bytes from A to
   * B (`ping -c COUNT -s SIZE -i 0.05 -W 1`), bounded to 15 s. Throws when ping
   * fails or any reply is missing, so the caller knows how many requests arrived.
   */
  ping(count: number, size = 100): PingResult {
    const out = execFileSync('ip', ['netns', 'exec', this.a.netns, 'ping', '-n', '-q', '-c', String(count), '-s', String(size), '-i', '0.05', '-W', '1', this.b.ip], {
      encoding: 'utf8',
      timeout: 15_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    if (!m) throw new Error(`ping ${this.b.ip} from netns ${this.a.netns}: unreadable summary:\n${out}`);
    const r = { transmitted: Number(m[1]), received: Number(m[2]) };
    if (r.transmitted !== count || r.received !== count) throw new Error(`ping ${this.b.ip} from netns ${this.a.netns}: ${r.transmitted} sent, ${r.received} answered, wanted ${count}`);
    return r;
  }

  /** Deletes the veth, closes every handle and removes both namespaces; safe to call twice and after a half-failed test. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    const errors: unknown[] = [];
    try {
      if (this.nsA) {
        using h = NetlinkHandle.open({ netns: this.nsA });
        if (h.linkByIndex(this.a.ifindex)) h.deleteLink(this.a.ifindex);
      }
    } catch (err) {
      errors.push(err);
    }
    this.nsA?.close();
    this.nsB?.close();
    this.nsA = undefined;
    this.nsB = undefined;
    for (const name of [this.a.netns, this.b.netns]) {
      try {
        NetNs.remove(name);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `remove netns pair ${this.a.netns}/${this.b.netns}`);
  }

  /** What of this pair is still visible: named namespaces, host links of its names, and anything holding its namespaces. */
  leftovers(): string[] {
    const left: string[] = [];
    for (const end of [this.a, this.b]) {
      if (existsSync(join(DEFAULT_NETNS_DIR, end.netns))) left.push(`netns file ${end.netns}`);
      if (existsSync(join('/sys/class/net', end.ifname))) left.push(`host link ${end.ifname}`);
      for (const holder of netnsHolders(end.inode, end.marker)) left.push(`netns ${end.netns} held by ${holder}`);
    }
    return left;
  }
}

/** True when the namespace behind `path` has `marker` on its loopback device; false when it does not or is gone. */
function carriesMarker(path: string, marker: string): boolean {
  try {
    using ns = NetNs.open(path);
    using h = NetlinkHandle.open({ netns: ns });
    return h.addrs({ family: 4 }).some((a) => a.address === marker);
  } catch {
    return false;
  }
}

/**
 * Who keeps the network namespace with inode `inode` alive, as far as user
 * space can see: nsfs mounts, processes living in it, and this process's
 * open descriptors. The kernel reuses the inode numbers of freed namespaces,
 * so with `marker` a candidate only counts when it carries that loopback
 * address (see the file comment).
 */
export function netnsHolders(inode: bigint, marker?: string): string[] {
  const tag = `net:[${inode}]`;
  const candidates: Array<{ what: string; path: string }> = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[3] === tag && f[4] !== undefined) candidates.push({ what: `mount ${f[4]}`, path: f[4] });
  }
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) === tag) candidates.push({ what: `process ${pid}`, path: `/proc/${pid}/ns/net` });
    } catch {
      // the process exited while we looked
    }
  }
  // An fd opened through a bind mount reads back as that path, not as net:[...]; compare nsfs device and inode instead.
  const nsfsDev = statSync('/proc/self/ns/net', { bigint: true }).dev;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const st = statSync(`/proc/self/fd/${fd}`, { bigint: true });
      if (st.dev === nsfsDev && st.ino === inode) candidates.push({ what: `fd ${fd} of this process`, path: `/proc/self/fd/${fd}` });
    } catch {
      // the descriptor was the directory listing itself
    }
  }
  return candidates.filter((c) => marker === undefined || carriesMarker(c.path, marker)).map((c) => c.what);
}
