#!/usr/bin/env node
/*
 * The traffic program of the Services benchmarks, run inside pods by the
 * agent image's node (mounted from a ConfigMap; plain CommonJS, no
 * dependencies). One file, four roles:
 *
 *   server PORT            TCP server. The first byte of a connection picks
 *                          the mode: 'E' echoes MSG-byte messages (ping-pong),
 *                          'R' sends its own address first (a JSON object
 *                          padded to MSG bytes), then echoes like 'E',
 *                          'S' sinks everything and, once the client
 *                          half-closes, answers the byte count it received
 *                          and its own address.
 *   connect HOST PORT N MS new-connection latency: N connections one after
 *                          another (at most MS milliseconds in all), each
 *                          connect + one MSG-byte request/response + close;
 *                          the time from before connect() to the response.
 *   rr HOST PORT MS        request/response latency on one connection (after
 *                          50 unrecorded exchanges), summarized here: the
 *                          number of exchanges in that time is large.
 *   stream HOST PORT MS    single-stream throughput: writes for MS ms,
 *                          half-closes, waits for the server's count.
 *
 * Every client prints one JSON line: {"samplesUs":[...]} for connect,
 * {"n":N,"p50Us":..,"p90Us":..,"p99Us":..,"server":ADDR} for rr,
 * {"bytes":N,"ms":T,"server":ADDR} for stream (ADDR: the address the
 * connection reached the server on, so the backend a ClusterIP picked),
 * {"error":"..."} on failure (exit 1).
 * Every wait is bounded.
 */
'use strict';
const net = require('node:net');

const MSG = 64;
const [, , role, ...args] = process.argv;

/** Prints one JSON line and exits once it is written (a pipe takes it asynchronously). */
function finish(obj, code) {
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code));
}

function fail(msg) {
  finish({ error: msg }, 1);
}

/** The p-th percentile of sorted values, nearest rank. */
function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function server(port) {
  const srv = net.createServer({ noDelay: true }, (sock) => {
    let mode;
    let pending = Buffer.alloc(0);
    let received = 0;
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk) => {
      if (mode === undefined) {
        mode = String.fromCharCode(chunk[0]);
        chunk = chunk.subarray(1);
        if (mode === 'R') sock.write(Buffer.from(JSON.stringify({ server: sock.localAddress }).padEnd(MSG)));
      }
      if (mode === 'S') {
        received += chunk.length;
        return;
      }
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= MSG) {
        sock.write(pending.subarray(0, MSG));
        pending = pending.subarray(MSG);
      }
    });
    sock.on('end', () => {
      if (mode === 'S') sock.end(JSON.stringify({ bytes: received, server: sock.localAddress }));
      else sock.end();
    });
  });
  srv.listen(port, '0.0.0.0', () => process.stdout.write(JSON.stringify({ listening: port }) + '\n'));
  srv.on('error', (e) => fail(`listen on ${port}: ${e.code || e.message}`));
}

/** One connection; resolves with the socket once connected, or rejects after timeoutMs. */
function dial(host, port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`connect ${host}:${port}: timed out after ${timeoutMs} ms`)); }, timeoutMs);
    sock.once('connect', () => { clearTimeout(timer); resolve(sock); });
    sock.once('error', (e) => { clearTimeout(timer); reject(new Error(`connect ${host}:${port}: ${e.code || e.message}`)); });
  });
}

/** Writes `msg` and resolves once MSG bytes came back. */
function exchange(sock, msg, timeoutMs) {
  return new Promise((resolve, reject) => {
    let got = 0;
    const timer = setTimeout(() => { cleanup(); reject(new Error(`answer: timed out after ${timeoutMs} ms`)); }, timeoutMs);
    const onData = (chunk) => {
      got += chunk.length;
      if (got >= MSG) { cleanup(); resolve(); }
    };
    const onError = (e) => { cleanup(); reject(new Error(`answer: ${e.code || e.message}`)); };
    const onEnd = () => { cleanup(); reject(new Error('answer: connection closed early')); };
    function cleanup() {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', onError);
      sock.off('end', onEnd);
    }
    sock.on('data', onData);
    sock.once('error', onError);
    sock.once('end', onEnd);
    sock.write(msg);
  });
}

async function connectLatency(host, port, n, budgetMs) {
  const first = Buffer.alloc(MSG + 1, 0x61);
  first[0] = 0x45; // 'E'
  const samples = [];
  const end = Date.now() + budgetMs;
  for (let i = 0; i < n && Date.now() < end; i++) {
    const t0 = process.hrtime.bigint();
    const sock = await dial(host, port, 3000);
    await exchange(sock, first, 3000);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    sock.destroy();
  }
  return { samplesUs: samples.map((v) => Math.round(v * 10) / 10) };
}

async function rr(host, port, ms) {
  const sock = await dial(host, port, 3000);
  // The server's address first: the backend a ClusterIP connection reached.
  const head = await new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.off('data', onData); reject(new Error('rr: no address from the server within 3 s')); }, 3000);
    const onData = (c) => {
      got = Buffer.concat([got, c]);
      if (got.length >= MSG) { clearTimeout(timer); sock.off('data', onData); resolve(got); }
    };
    sock.on('data', onData);
    sock.write('R');
  });
  if (head.length !== MSG) throw new Error(`rr: the server sent ${head.length} bytes before any request, not ${MSG}`);
  const { server } = JSON.parse(head.toString().trim());
  const msg = Buffer.alloc(MSG, 0x62);
  const samples = [];
  const end = Date.now() + ms;
  // Warm-up exchanges, not recorded.
  for (let i = 0; i < 50; i++) await exchange(sock, msg, 3000);
  while (Date.now() < end) {
    const t0 = process.hrtime.bigint();
    await exchange(sock, msg, 3000);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  sock.destroy();
  samples.sort((a, b) => a - b);
  const r = (v) => Math.round(v * 10) / 10;
  return { n: samples.length, p50Us: r(pct(samples, 50)), p90Us: r(pct(samples, 90)), p99Us: r(pct(samples, 99)), server };
}

async function stream(host, port, ms) {
  const sock = await dial(host, port, 3000);
  const chunk = Buffer.alloc(128 * 1024, 0x63);
  const t0 = process.hrtime.bigint();
  const end = Date.now() + ms;
  sock.write('S');
  await new Promise((resolve, reject) => {
    sock.once('error', (e) => reject(new Error(`stream: ${e.code || e.message}`)));
    const pump = () => {
      while (Date.now() < end) {
        if (!sock.write(chunk)) { sock.once('drain', pump); return; }
      }
      sock.end();
      resolve();
    };
    pump();
  });
  const answer = await new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('stream: no byte count from the server within 10 s')); }, 10_000);
    sock.on('data', (c) => (text += c));
    sock.once('end', () => { clearTimeout(timer); resolve(text); });
  });
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const { bytes, server } = JSON.parse(answer);
  sock.destroy();
  return { bytes, ms: Math.round(elapsedMs * 100) / 100, server };
}

async function main() {
  const int = (v, what) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) fail(`parse ${what}: ${v} is not a positive integer`);
    return n;
  };
  switch (role) {
    case 'server':
      return server(int(args[0], 'PORT'));
    case 'connect':
      return connectLatency(args[0], int(args[1], 'PORT'), int(args[2], 'N'), int(args[3], 'MS'));
    case 'rr':
      return rr(args[0], int(args[1], 'PORT'), int(args[2], 'MS'));
    case 'stream':
      return stream(args[0], int(args[1], 'PORT'), int(args[2], 'MS'));
    default:
      return fail(`unknown role ${role}: use server, connect, rr or stream`);
  }
}

main().then(
  (out) => {
    if (out) finish(out, 0);
  },
  (e) => fail(e.message),
);
