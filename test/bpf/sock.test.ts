/**
 * bpf/sock.bpf.c on its own, with real sockets: BPF_PROG_TEST_RUN does not
 * run cgroup_sock_addr programs, so the object is loaded by hand, attached
 * through cgroup links to a private child cgroup, and this test process moves
 * itself into that cgroup while it connects. Frontends live in
 * 10.96.252.0/24, blackholed before anything is sent.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import {
  attachCgroup, BpfObject, CgroupLink, cgroupId, listCgroupPrograms, netnsCookie, openPinnedLink, type CgroupHook, type TypedMap,
} from '../../agent/src/libbpf/index.js';
import { cgroup2Root, compileBpf } from '../../agent/src/datapath/index.js';
import { sockRevKey, sockRevValue } from '../../agent/src/maps/index.js';
import {
  backendKey, backendValue, IP_PROTO, slotKey, slotValue, svcKey, svcRangeKey, svcRangeValue, svcStatsKey, svcStatsValue, svcValue,
} from '../../agent/src/maps/services.js';
import { bpffsDir, rmBpffsDir, scratchDir, suffix } from '../fixtures/bpf/fixtures.js';

const RANGE = '10.96.252.0/24';
const FE = '10.96.252.10';
const WAIT_MS = 3000;
const HOOKS: Array<[string, CgroupHook]> = [
  ['sock_connect4', 'connect4'], ['sock_sendmsg4', 'sendmsg4'], ['sock_recvmsg4', 'recvmsg4'], ['sock_getpeer4', 'getpeername4'],
];

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT_MS} ms`)), WAIT_MS); }),
  ]);
}

/** Connect result: the peer getpeername() shows, or the errno code. */
function tcpConnect(host: string, port: number): Promise<{ peer?: string; code?: string; local?: number }> {
  return bounded(new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code ?? String(err) }));
    s.once('connect', () => { const r = { peer: `${s.remoteAddress}:${s.remotePort}`, local: s.localPort ?? 0 }; s.destroy(); resolve(r); });
  }), `connect to ${host}:${port}`);
}

function udpSocket(): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => { s.removeListener('error', reject); resolve(s); });
  });
}

function nextMessage(s: UdpSocket, what: string): Promise<{ msg: string; from: string }> {
  return bounded(new Promise((resolve) => s.once('message', (m, r) => resolve({ msg: m.toString(), from: `${r.address}:${r.port}` }))), what);
}

/** The cgroup v2 path of this process, relative to the hierarchy's root. */
function ownCgroup(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
  if (!line) throw new Error('this process is in no cgroup v2 hierarchy');
  return line.slice(3);
}

describe('socket programs in a cgroup of their own', () => {
  const out = scratchDir();
  const pins = bpffsDir();
  const root = cgroup2Root();
  const cg = join(root, `pn-sock-${suffix()}`);
  const home = join(root, ownCgroup());
  let obj: BpfObject;
  let idle: BpfObject; // loaded with netns cookie 0
  const links: CgroupLink[] = [];
  let routed = false;
  let tcp: Server;
  let udp: UdpSocket;
  let tcpPort = 0;
  let udpPort = 0;
  let services: TypedMap<any, any>;
  let rev: TypedMap<any, any>;
  let stats: TypedMap<any, any>;

  /**
   * Runs `fn` with this process inside the test cgroup, then moves back. The
   * programs apply to sockets created meanwhile (a socket keeps the cgroup
   * it was created in).
   */
  async function inCgroup<T>(fn: () => Promise<T>): Promise<T> {
    writeFileSync(join(cg, 'cgroup.procs'), String(process.pid));
    try {
      return await fn();
    } finally {
      writeFileSync(join(home, 'cgroup.procs'), String(process.pid));
    }
  }

  before(async () => {
    ip('route', 'add', 'blackhole', RANGE);
    routed = true;
    mkdirSync(cg);
    const { path } = await compileBpf('sock', { cacheDir: out });
    obj = BpfObject.open(path, { pinRoot: pins });
    obj.setConstants({ pn_host_netns_cookie: netnsCookie() });
    obj.load();
    idle = BpfObject.open(path, { pinRoot: pins });
    idle.load();
    for (const [name, hook] of HOOKS) links.push(attachCgroup(obj.program(name), cg, hook));

    // Clients hang up at once; a reset of the accepted socket is expected.
    tcp = createServer((c) => { c.on('error', () => {}); c.end('tcp backend'); });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    tcpPort = (tcp.address() as AddressInfo).port;
    udp = await udpSocket();
    udpPort = udp.address().port;

    services = obj.map('pn_services').typed(svcKey, svcValue);
    rev = obj.map('pn_sock_rev').typed(sockRevKey, sockRevValue);
    stats = obj.map('pn_svc_stats').typed(svcStatsKey, svcStatsValue);
    obj.map('pn_backends').typed(backendKey, backendValue).set({ backendId: 1 }, { addr: '127.0.0.1', port: tcpPort, proto: IP_PROTO.TCP, flags: 0 });
    obj.map('pn_backends').typed(backendKey, backendValue).set({ backendId: 2 }, { addr: '127.0.0.1', port: udpPort, proto: IP_PROTO.UDP, flags: 0 });
    obj.map('pn_svc_slots').typed(slotKey, slotValue).set({ groupId: 1, slot: 0 }, { backendId: 1 });
    obj.map('pn_svc_slots').typed(slotKey, slotValue).set({ groupId: 2, slot: 0 }, { backendId: 2 });
    services.set({ addr: FE, port: 80, proto: IP_PROTO.TCP, pad: 0 }, { frontendId: 7, groupId: 1, count: 1, flags: 0, affinitySeconds: 0, pad: 0 });
    services.set({ addr: FE, port: 53, proto: IP_PROTO.UDP, pad: 0 }, { frontendId: 8, groupId: 2, count: 1, flags: 0, affinitySeconds: 0, pad: 0 });
    obj.map('pn_svc_ranges').typed(svcRangeKey, svcRangeValue).set({ prefixLen: 24, data: '10.96.252.0' }, { flags: 0 });
  });

  after(() => {
    for (const l of links) l.detach();
    tcp?.close();
    udp?.close();
    obj?.close();
    idle?.close();
    try { rmdirSync(cg); } catch { /* never made */ }
    rmBpffsDir(pins);
    rmSync(out, { recursive: true, force: true });
    if (routed) ip('route', 'del', 'blackhole', RANGE);
  });

  test('the programs apply to the cgroup they are linked to and nowhere else', async () => {
    assert.deepEqual(await inCgroup(() => tcpConnect(FE, 80)).then((r) => r.peer), `${FE}:80`);
    // Outside the cgroup the blackhole route answers the untranslated connect.
    assert.equal((await tcpConnect(FE, 80)).code, 'EINVAL');
  });

  test('a translated connect is recorded in pn_sock_rev under the socket and its backend, and counted', async () => {
    const before = [...rev.entries()].length;
    const r = await inCgroup(() => tcpConnect(FE, 80));
    assert.equal(r.peer, `${FE}:80`);
    const entries = [...rev.entries()].filter(([k]) => k.port === tcpPort);
    assert.ok(entries.length > 0 && [...rev.entries()].length > before, 'a new reverse entry');
    const [k, v] = entries.at(-1)!;
    assert.equal(k.addr, '127.0.0.1');
    assert.ok(k.cookie > 0n);
    assert.deepEqual({ ...v }, { addr: FE, port: 80, proto: IP_PROTO.TCP, pad: 0, frontendId: 7 });
    const per = stats.getPerCpu({ frontendId: 7 }) as Array<{ connections: bigint }>;
    assert.ok(per.reduce((a, s) => a + s.connections, 0n) >= 2n);
  });

  test('a UDP flow is counted once per socket and backend however many datagrams it sends', async () => {
    const sum = () => ((stats.getPerCpu({ frontendId: 8 }) ?? []) as Array<{ connections: bigint }>).reduce((a, s) => a + s.connections, 0n);
    const before = sum();
    // A socket belongs to the cgroup it was created in: create it inside.
    const c = await inCgroup(udpSocket);
    try {
      await inCgroup(async () => {
        for (let i = 0; i < 3; i++) {
          const got = nextMessage(udp, `datagram ${i} at the backend`);
          c.send(`d${i}`, 53, FE);
          assert.equal((await got).msg, `d${i}`);
        }
      });
    } finally {
      c.close();
    }
    assert.equal(sum(), before + 1n);
  });

  test('recvmsg shows the real peer, and forgets the socket, once the frontend is gone', async () => {
    const c = await inCgroup(udpSocket);
    try {
      await inCgroup(async () => {
        const atBackend = bounded(new Promise<{ port: number }>((resolve) => udp.once('message', (_m, r) => resolve(r))), 'datagram at the backend');
        c.send('q1', 53, FE);
        const client = await atBackend;
        // The answer while the frontend exists carries the frontend.
        let answer = nextMessage(c, 'first answer');
        udp.send('a1', client.port, '127.0.0.1');
        assert.equal((await answer).from, `${FE}:53`);
        const revCount = () => [...rev.entries()].filter(([k, v]) => k.port === udpPort && v.frontendId === 8).length;
        const withEntry = revCount();
        services.delete({ addr: FE, port: 53, proto: IP_PROTO.UDP, pad: 0 });
        try {
          answer = nextMessage(c, 'answer after the frontend went');
          udp.send('a2', client.port, '127.0.0.1');
          assert.equal((await answer).from, `127.0.0.1:${udpPort}`);
          assert.equal(revCount(), withEntry - 1, 'the socket\'s reverse entry is gone');
        } finally {
          services.set({ addr: FE, port: 53, proto: IP_PROTO.UDP, pad: 0 }, { frontendId: 8, groupId: 2, count: 1, flags: 0, affinitySeconds: 0, pad: 0 });
        }
      });
    } finally {
      c.close();
    }
  });

  test('an object loaded without the host netns cookie translates nothing', async () => {
    for (const l of links.splice(0)) l.detach();
    const off = attachCgroup(idle.program('sock_connect4'), cg, 'connect4');
    try {
      assert.equal((await inCgroup(() => tcpConnect(FE, 80))).code, 'EINVAL');
    } finally {
      off.detach();
      for (const [name, hook] of HOOKS) links.push(attachCgroup(obj.program(name), cg, hook));
    }
  });

  test('a cgroup link is pinned, re-opened with its cgroup and hook, updated in place and detached', async () => {
    const pin = join(pins, 'connect4-link');
    const link = links[0]!;
    link.pin(pin);
    const again = openPinnedLink(pin);
    try {
      assert.ok(again instanceof CgroupLink);
      assert.equal(again.cgroupId, cgroupId(cg));
      assert.equal(again.programId, obj.program('sock_connect4').id);
      assert.equal(again.ifindex, 0);
      again.update(idle.program('sock_connect4'));
      assert.deepEqual(listCgroupPrograms(cg, 'connect4'), [idle.program('sock_connect4').id]);
      assert.equal((await inCgroup(() => tcpConnect(FE, 80))).code, 'EINVAL', 'the idle program runs now');
      again.update(obj.program('sock_connect4'));
      assert.equal((await inCgroup(() => tcpConnect(FE, 80))).peer, `${FE}:80`);
    } finally {
      again.close();
    }
    link.unpin();
    const other = links.splice(0, 1)[0]!;
    other.detach();
    assert.deepEqual(listCgroupPrograms(cg, 'connect4'), []);
    links.unshift(attachCgroup(obj.program('sock_connect4'), cg, 'connect4'));
  });
});
