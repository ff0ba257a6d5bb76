/**
 * What a CNI ADD does, for real (root), between two namespaces this file
 * creates: a "host" and a "pod". The veth peer goes straight into the pod,
 * both ends get addresses and /32 routes, the pod gets a link-scope route and
 * a permanent neighbour for 169.254.1.1 and a default route via it; ping
 * crosses the pair; listings are cross-checked with `ip -j`; everything is
 * deleted through the library. The `after` hook removes both namespaces
 * (and with them every link) whatever happened.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NetlinkHandle, NetNs, rtnl, type Addr, type Link, type Neigh, type Route } from '../../agent/src/netlink/index.js';
import { NetlinkError } from '../../agent/src/errors/index.js';

const sfx = randomBytes(3).toString('hex');
const HOST_NS = `pnh-${sfx}`;
const POD_NS = `pnp-${sfx}`;
const HOST_VETH = `pnv${sfx}`;
const HOST_IP = '10.244.9.1';
const POD_IP = '10.244.9.2';
const GW = '169.254.1.1';
const HOST_MAC = '02:aa:00:00:00:01';
const POD_MAC = '02:bb:00:00:00:02';

let hostNs: NetNs | undefined;
let podNs: NetNs | undefined;
let host: NetlinkHandle;
let pod: NetlinkHandle;
let hostIndex = 0;
let podIndex = 0;

/** Runs a command with a hard time limit; returns status and output. */
function exec(cmd: string, args: string[], timeout = 10_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  return { status: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** `ip -n NS -j ARGS` parsed; fails the test when ip fails. */
function ipJson<T>(ns: string, ...args: string[]): T {
  const r = exec('ip', ['-n', ns, '-j', ...args]);
  assert.equal(r.status, 0, `ip -n ${ns} -j ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout || '[]') as T;
}

/** One ping from inside `ns`, retried at most 3 times (the first may wait for ARP), each bounded to a second or so. */
function ping(ns: string, ip: string): boolean {
  for (let i = 0; i < 3; i++) {
    if (exec('ip', ['netns', 'exec', ns, 'ping', '-n', '-q', '-c', '1', '-W', '1', ip], 5_000).status === 0) return true;
  }
  return false;
}

before(() => {
  hostNs = NetNs.create(HOST_NS);
  podNs = NetNs.create(POD_NS);
  host = NetlinkHandle.open({ netns: hostNs });
  pod = NetlinkHandle.open({ netns: podNs });
});

after(() => {
  // Sockets and fds keep a namespace alive: close them before removing.
  host?.close();
  pod?.close();
  hostNs?.close();
  podNs?.close();
  NetNs.remove(HOST_NS);
  NetNs.remove(POD_NS);
});

test('addVeth creates the pair with its peer straight in the pod namespace', () => {
  const r = host.addVeth({ name: HOST_VETH, peerName: 'eth0', peerNetns: podNs, mtu: 1400, mac: HOST_MAC, peerMac: POD_MAC });
  hostIndex = r.index;
  assert.ok(r.peerIndex, 'the peer index is reported');
  podIndex = r.peerIndex;

  const hl = host.linkByName(HOST_VETH);
  assert.ok(hl && hl.kind === 'veth');
  assert.equal(hl.index, hostIndex);
  assert.equal(hl.mtu, 1400);
  assert.equal(hl.mac, HOST_MAC);
  assert.equal(hl.peerIndex, podIndex);
  assert.notEqual(hl.netnsId, undefined, 'the peer lives in another namespace');

  const pl = pod.linkByName('eth0');
  assert.ok(pl && pl.kind === 'veth');
  assert.equal(pl.index, podIndex);
  assert.equal(pl.mtu, 1400);
  assert.equal(pl.mac, POD_MAC);
  assert.equal(pl.peerIndex, hostIndex);
  assert.equal(host.linkByName('eth0'), undefined, 'eth0 was never in the host namespace');

  const [seen] = ipJson<Array<{ ifindex: number; mtu: number; address: string; link_index: number }>>(POD_NS, 'link', 'show', 'eth0');
  assert.ok(seen);
  assert.equal(seen.ifindex, podIndex);
  assert.equal(seen.mtu, 1400);
  assert.equal(seen.address, POD_MAC);
  assert.equal(seen.link_index, hostIndex);
});

test('adding the same veth again fails with EEXIST and names both ends', () => {
  assert.throws(
    () => host.addVeth({ name: HOST_VETH, peerName: 'eth0', peerNetns: podNs }),
    (e: unknown) =>
      e instanceof NetlinkError &&
      e.errnoName === 'EEXIST' &&
      e.message.startsWith(`add veth ${HOST_VETH} (peer eth0 in netns /run/netns/${POD_NS}) in netns /run/netns/${HOST_NS}: EEXIST`),
  );
});

test('the CNI ADD configuration lets the pod and the host ping each other', () => {
  assert.ok(podIndex && hostIndex, 'needs the veth from the first test');
  const lo = pod.linkByName('lo');
  assert.ok(lo);
  pod.setUp(lo.index);
  pod.setUp(podIndex);
  pod.addrAdd({ index: podIndex, address: POD_IP, prefixLen: 32 });
  pod.routeAdd({ dst: GW, dstLen: 32, oif: podIndex, scope: 'link' });
  pod.neighAdd({ index: podIndex, ip: GW, mac: HOST_MAC });
  pod.routeAdd({ dstLen: 0, gateway: GW, oif: podIndex });

  host.setUp(hostIndex);
  host.addrAdd({ index: hostIndex, address: HOST_IP, prefixLen: 32 });
  host.routeAdd({ dst: POD_IP, dstLen: 32, oif: hostIndex, scope: 'link' });

  assert.ok(ping(POD_NS, HOST_IP), `ping ${HOST_IP} from the pod`);
  assert.ok(ping(HOST_NS, POD_IP), `ping ${POD_IP} from the host`);
});

type IpLink = { ifindex: number; ifname: string; mtu: number; address?: string; flags: string[]; operstate: string };
type IpAddr = { ifindex: number; addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string; label?: string }> };
type IpRoute = { dst: string; gateway?: string; dev?: string; scope?: string; flags: string[] };
type IpNeigh = { dst: string; dev: string; lladdr?: string; state: string[] };

/** Compares the library's view of namespace `ns` with what `ip -j` prints. */
function crossCheck(h: NetlinkHandle, ns: string): void {
  const links = h.links();
  const ipLinks = ipJson<IpLink[]>(ns, 'link', 'show');
  assert.deepEqual(
    links.map((l: Link) => [l.index, l.name, l.mtu, l.mac, l.up, l.operState]),
    ipLinks.map((l) => [l.ifindex, l.ifname, l.mtu, l.address ?? '', l.flags.includes('UP'), l.operstate.toLowerCase()]),
  );
  const nameOf = new Map(links.map((l) => [l.index, l.name]));

  const scopeOf = (s: string): Addr['scope'] => (s === 'global' ? 'universe' : s === 'link' || s === 'host' ? s : Number(s));
  const key = (a: Pick<Addr, 'index' | 'family' | 'address' | 'prefixLen' | 'scope'>): string => `${a.index} ${a.family} ${a.address}/${a.prefixLen} ${a.scope}`;
  assert.deepEqual(
    h.addrs().map(key).sort(),
    ipJson<IpAddr[]>(ns, 'addr', 'show')
      .flatMap((l) => l.addr_info.map((a) => ({ index: l.ifindex, family: a.family === 'inet' ? 4 : 6, address: a.local, prefixLen: a.prefixlen, scope: scopeOf(a.scope) })))
      .map((a) => key(a as Addr))
      .sort(),
  );
  for (const a of h.addrs({ family: 4 })) assert.equal(a.label, nameOf.get(a.index), 'IPv4 addresses carry the link name as label');

  const routeKey = (r: Route): string =>
    [r.dst === undefined ? 'default' : r.dstLen === 32 ? r.dst : `${r.dst}/${r.dstLen}`, r.gateway ?? '-', r.oif === undefined ? '-' : nameOf.get(r.oif), r.scope, r.onlink].join(' ');
  const ipRouteKey = (r: IpRoute): string => [r.dst, r.gateway ?? '-', r.dev ?? '-', r.scope ?? 'universe', r.flags.includes('onlink')].join(' ');
  assert.deepEqual(h.routes({ family: 4 }).map(routeKey).sort(), ipJson<IpRoute[]>(ns, '-4', 'route', 'show', 'table', 'main').map(ipRouteKey).sort());

  const neighKey = (n: Neigh): string => [n.ip, nameOf.get(n.index), n.mac ?? '-', n.stateName].join(' ');
  assert.deepEqual(
    h
      .neighs({ family: 4 })
      .filter((n) => n.stateName !== 'noarp')
      .map(neighKey)
      .sort(),
    ipJson<IpNeigh[]>(ns, '-4', 'neigh', 'show')
      .map((n) => [n.dst, n.dev, n.lladdr ?? '-', n.state.map((s) => s.toLowerCase()).join(',')].join(' '))
      .sort(),
  );
}

test('links, addresses, routes and neighbours listed by the library agree with ip -j in both namespaces', () => {
  crossCheck(pod, POD_NS);
  crossCheck(host, HOST_NS);
  assert.deepEqual(
    pod.addrs({ index: podIndex, family: 4 }).map((a) => [a.address, a.prefixLen, a.scope, a.label]),
    [[POD_IP, 32, 'universe', 'eth0']],
  );
  // The pod's routing table is exactly what a CNI ADD installs.
  const routes = pod.routes({ family: 4 });
  assert.deepEqual(
    routes.map((r) => ({ dst: r.dst, dstLen: r.dstLen, gateway: r.gateway, oif: r.oif, scope: r.scope, table: r.table, protocol: r.protocol })).sort((a, b) => a.dstLen - b.dstLen),
    [
      { dst: undefined, dstLen: 0, gateway: GW, oif: podIndex, scope: 'universe', table: rtnl.RT_TABLE_MAIN, protocol: rtnl.RTPROT_BOOT },
      { dst: GW, dstLen: 32, gateway: undefined, oif: podIndex, scope: 'link', table: rtnl.RT_TABLE_MAIN, protocol: rtnl.RTPROT_BOOT },
    ],
  );
  // The pod may also have learned the host's address from the pings; the gateway entry is the one ADD made.
  assert.deepEqual(
    pod
      .neighs({ index: podIndex, family: 4 })
      .filter((n) => n.ip === GW)
      .map((n) => [n.ip, n.mac, n.stateName]),
    [[GW, HOST_MAC, 'permanent']],
  );
});

test('a refused request carries the kernel extended-ack message and names the link', () => {
  assert.throws(
    () => pod.setMtu(podIndex, 70000),
    (e: unknown) =>
      e instanceof NetlinkError &&
      e.errnoName === 'EINVAL' &&
      e.extAck === 'mtu greater than device maximum' &&
      e.message === `set mtu 70000 on link eth0 in netns /run/netns/${POD_NS}: EINVAL (mtu greater than device maximum)`,
  );
  assert.throws(
    () => pod.routeAdd({ dst: '10.9.0.0', dstLen: 16, gateway: '10.99.0.1', oif: podIndex }),
    (e: unknown) =>
      e instanceof NetlinkError &&
      e.errnoName === 'ENETUNREACH' &&
      e.extAck === 'Nexthop has invalid gateway' &&
      e.message.startsWith('add route 10.9.0.0/16 via 10.99.0.1 dev eth0 in netns'),
  );
  assert.equal(pod.linkByIndex(podIndex)?.mtu, 1400, 'the refused change left the link alone');
});

test('onlink, replace and IPv6 routes round-trip through the kernel', () => {
  pod.routeAdd({ dst: '10.50.0.0', dstLen: 16, gateway: GW, oif: podIndex, onlink: true });
  const find = (): Route[] => pod.routes({ family: 4 }).filter((r) => r.dst === '10.50.0.0');
  assert.deepEqual(
    find().map((r) => [r.gateway, r.onlink, r.protocol]),
    [[GW, true, rtnl.RTPROT_BOOT]],
  );
  const [ipView] = ipJson<IpRoute[]>(POD_NS, 'route', 'show', '10.50.0.0/16');
  assert.ok(ipView?.flags.includes('onlink'));
  assert.throws(
    () => pod.routeAdd({ dst: '10.50.0.0', dstLen: 16, gateway: GW, oif: podIndex, onlink: true }),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'EEXIST',
  );
  pod.routeReplace({ dst: '10.50.0.0', dstLen: 16, gateway: GW, oif: podIndex, onlink: true, protocol: rtnl.RTPROT_STATIC });
  assert.deepEqual(
    find().map((r) => [r.gateway, r.onlink, r.protocol]),
    [[GW, true, rtnl.RTPROT_STATIC]],
  );
  pod.routeDel({ dst: '10.50.0.0', dstLen: 16 });
  assert.deepEqual(find(), []);

  pod.addrAdd({ index: podIndex, address: 'fd00:9::2', prefixLen: 128, noPrefixRoute: true });
  assert.ok(pod.addrs({ index: podIndex, family: 6 }).some((a) => a.address === 'fd00:9::2' && a.prefixLen === 128));
  pod.routeAdd({ dst: 'fd00:10::', dstLen: 64, oif: podIndex });
  const v6 = pod.routes({ family: 6, oif: podIndex }).find((r) => r.dst === 'fd00:10::');
  assert.ok(v6);
  assert.equal(v6.dstLen, 64);
  assert.equal(v6.family, 6);
  const ip6 = ipJson<IpRoute[]>(POD_NS, '-6', 'route', 'show', 'fd00:10::/64');
  assert.equal(ip6.length, 1);
  pod.routeDel({ dst: 'fd00:10::', dstLen: 64, oif: podIndex });
  pod.addrDel({ index: podIndex, address: 'fd00:9::2', prefixLen: 128 });
  assert.equal(pod.routes({ family: 6 }).find((r) => r.dst === 'fd00:10::'), undefined);
  assert.equal(pod.addrs({ family: 6 }).find((a) => a.address === 'fd00:9::2'), undefined);
});

test('link changes made through the library are what ip sees, and setNetns moves a link', () => {
  const a = `pna${sfx}`;
  const b = `pnb${sfx}`;
  const renamed = `pnr${sfx}`;
  const { index, peerIndex } = host.addVeth({ name: a, peerName: b });
  assert.ok(peerIndex);
  host.setMtu(index, 1300);
  host.setMac(index, '02:cc:00:00:00:03');
  host.setUp(index);
  let [seen] = ipJson<IpLink[]>(HOST_NS, 'link', 'show', a);
  assert.deepEqual([seen?.mtu, seen?.address, seen?.flags.includes('UP')], [1300, '02:cc:00:00:00:03', true]);
  host.setDown(index);
  host.rename(index, renamed);
  [seen] = ipJson<IpLink[]>(HOST_NS, 'link', 'show', renamed);
  assert.deepEqual([seen?.ifindex, seen?.flags.includes('UP')], [index, false]);
  assert.equal(host.linkByName(a), undefined);

  host.setNetns(peerIndex, podNs!);
  assert.equal(host.linkByName(b), undefined);
  const moved = pod.linkByName(b);
  assert.ok(moved && moved.kind === 'veth');
  assert.ok(ipJson<IpLink[]>(POD_NS, 'link', 'show').some((l) => l.ifname === b));

  pod.deleteLink(moved.index);
  assert.equal(pod.linkByName(b), undefined);
  assert.equal(host.linkByName(renamed), undefined, 'deleting one end removed the other');
});


test('everything deletes through the library and a second delete reports the object missing', () => {
  pod.neighDel({ index: podIndex, ip: GW });
  assert.deepEqual(ipJson<IpNeigh[]>(POD_NS, '-4', 'neigh', 'show').filter((n) => n.dst === GW), []);
  assert.throws(
    () => pod.neighDel({ index: podIndex, ip: GW }),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'ENOENT',
  );

  pod.routeDel({ dstLen: 0, gateway: GW, oif: podIndex });
  pod.routeDel({ dst: GW, dstLen: 32, oif: podIndex });
  assert.deepEqual(ipJson<IpRoute[]>(POD_NS, '-4', 'route', 'show', 'table', 'main'), []);
  assert.throws(
    () => pod.routeDel({ dst: GW, dstLen: 32, oif: podIndex }),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'ESRCH',
  );

  pod.addrDel({ index: podIndex, address: POD_IP, prefixLen: 32 });
  assert.deepEqual(pod.addrs({ index: podIndex, family: 4 }), []);
  assert.throws(
    () => pod.addrDel({ index: podIndex, address: POD_IP, prefixLen: 32 }),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'EADDRNOTAVAIL',
  );

  host.routeDel({ dst: POD_IP, dstLen: 32, oif: hostIndex });
  host.deleteLink(hostIndex);
  assert.equal(pod.linkByName('eth0'), undefined, 'the pod end went with the host end');
  assert.deepEqual(
    ipJson<IpLink[]>(POD_NS, 'link', 'show').map((l) => l.ifname),
    ['lo'],
  );
  assert.throws(
    () => host.deleteLink(hostIndex),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'ENODEV',
  );
});
