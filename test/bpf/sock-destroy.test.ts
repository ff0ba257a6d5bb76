/**
 * The socket destroyer (bpf/sock_destroy.bpf.c through
 * agent/src/datapath/sock-destroy.ts) with real sockets on 127.0.0.1: only
 * sockets whose peer is a target go, and their owners see the error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SocketDestroyer } from '../../agent/src/datapath/index.js';
import { probeSockDestroy } from '../../agent/src/libbpf/index.js';
import { IP_PROTO } from '../../agent/src/maps/services.js';
import { scratchDir } from '../fixtures/bpf/fixtures.js';

const WAIT_MS = 3000;
const skip = probeSockDestroy() ? false : 'needs the bpf_sock_destroy kfunc (Linux >= 6.5)';

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT_MS} ms`)), WAIT_MS); }),
  ]);
}

function udpSocket(): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => { s.removeListener('error', reject); resolve(s); });
  });
}

function udpConnected(port: number): Promise<UdpSocket> {
  return udpSocket().then((s) => bounded(new Promise((resolve, reject) => s.connect(port, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)))), 'udp connect'));
}

/** Resolves with the first error code the socket reports, or 'none' when none came within `ms`. */
function firstError(s: UdpSocket | Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('none'), ms);
    s.once('error', (err: NodeJS.ErrnoException) => { clearTimeout(t); resolve(err.code ?? String(err)); });
  });
}

describe('destroying sockets connected to removed backends', { skip }, () => {
  const out = scratchDir();
  let d: SocketDestroyer;
  const a: UdpSocket[] = [];
  let b: UdpSocket;
  let server: Server;
  let serverPort = 0;
  const accepted: Socket[] = [];

  before(async () => {
    d = await SocketDestroyer.open({ cacheDir: out });
    b = await udpSocket();
    for (let i = 0; i < 2; i++) a.push(await udpSocket());
    server = createServer((c) => { c.on('error', () => {}); accepted.push(c); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverPort = (server.address() as AddressInfo).port;
  });

  after(() => {
    d?.close();
    for (const s of [...a, b]) s?.close();
    for (const c of accepted) c.destroy();
    server?.close();
    rmSync(out, { recursive: true, force: true });
  });

  test('only connected UDP sockets whose peer is a target are destroyed, and their owner gets ECONNABORTED', async () => {
    const [t1, t2] = a as [UdpSocket, UdpSocket];
    const toT1 = await udpConnected(t1.address().port);
    const toT1Again = await udpConnected(t1.address().port);
    const toT2 = await udpConnected(t2.address().port);
    const unconnected = await udpSocket();
    try {
      const errs = [toT1, toT1Again, toT2, unconnected].map((s) => firstError(s, 500));
      const gone = d.destroySocketsTo('127.0.0.1', t1.address().port, IP_PROTO.UDP);
      assert.equal(gone.length, 2);
      assert.deepEqual(gone.map((g) => ({ addr: g.addr, port: g.port, proto: g.proto, error: g.error })), [
        { addr: '127.0.0.1', port: t1.address().port, proto: IP_PROTO.UDP, error: undefined },
        { addr: '127.0.0.1', port: t1.address().port, proto: IP_PROTO.UDP, error: undefined },
      ]);
      assert.equal(new Set(gone.map((g) => g.cookie)).size, 2, 'two distinct sockets');
      assert.deepEqual(await Promise.all(errs), ['ECONNABORTED', 'ECONNABORTED', 'none', 'none']);
      // The server socket itself is not connected to anyone: it still receives.
      const got = bounded(new Promise<string>((resolve) => t1.once('message', (m) => resolve(m.toString()))), 'datagram at the target');
      unconnected.send('still here', t1.address().port, '127.0.0.1');
      assert.equal(await got, 'still here');
    } finally {
      for (const s of [toT1, toT1Again, toT2, unconnected]) s.close();
    }
  });

  test('an established TCP connection to a target is aborted; the listener and other targets stay', async () => {
    const client = await bounded(new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: serverPort });
      s.once('error', reject);
      s.once('connect', () => resolve(s));
    }), 'tcp connect');
    try {
      const err = firstError(client, WAIT_MS);
      const gone = d.destroy([
        { addr: '127.0.0.1', port: serverPort, proto: IP_PROTO.TCP },
        { addr: '127.0.0.1', port: 9, proto: IP_PROTO.UDP },
      ]);
      assert.deepEqual(gone.map((g) => ({ port: g.port, proto: g.proto, error: g.error })), [{ port: serverPort, proto: IP_PROTO.TCP, error: undefined }]);
      assert.equal(await err, 'ECONNABORTED');
      const again = await bounded(new Promise<Socket>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: serverPort });
        s.once('error', reject);
        s.once('connect', () => resolve(s));
      }), 'tcp connect after the abort');
      again.destroy();
    } finally {
      client.destroy();
    }
  });

  test('a run leaves no target behind: the next run with other targets destroys nothing it was not asked to', async () => {
    const t = a[0]!;
    const s = await udpConnected(t.address().port);
    try {
      assert.deepEqual(d.destroySocketsTo('127.0.0.1', 1, IP_PROTO.UDP), []);
      assert.equal(await firstError(s, 200), 'none');
    } finally {
      s.close();
    }
  });

  test('a protocol other than TCP or UDP is refused before anything runs', () => {
    assert.throws(() => d.destroySocketsTo('127.0.0.1', 53, IP_PROTO.SCTP), /destroy sockets to 127\.0\.0\.1:53: protocol 132 is neither TCP \(6\) nor UDP \(17\)/);
  });
});
