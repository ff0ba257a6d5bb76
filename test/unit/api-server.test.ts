import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer, request, type IncomingHttpHeaders, type RequestListener } from 'node:http';
import { connect, Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiCall } from '../../agent/src/api/client.js';
import { CniError } from '../../agent/src/api/cni-error.js';
import { cniErrorResponse, cniRoutes } from '../../agent/src/api/cni-routes.js';
import { CniErrorCode } from '../../agent/src/api/protocol.js';
import { ApiServer, type ApiRequest, type ErrorMapper, type Routes } from '../../agent/src/api/server.js';
import type { EndpointManager } from '../../agent/src/endpoints/index.js';
import { PodnetError } from '../../agent/src/errors/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

interface RawAnswer { status: number; headers: IncomingHttpHeaders; text: string; json: unknown }

/** One HTTP request on a unix socket with a raw body; bounded by a timeout. */
function raw(socketPath: string, method: string, path: string, body?: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, agent: false, timeout: 5000, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Leaves a socket file nobody listens on, as a killed agent does. */
function makeStaleSocket(path: string): void {
  // process.exit skips libuv's close, which is what would unlink the file.
  execFileSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`], { timeout: 20_000 });
}

describe('ApiServer', () => {
  let dir: string;
  let n = 0;
  const open: ApiServer[] = [];
  const sock = (): string => join(dir, `s${n++}.sock`);

  async function start(routes: Routes, mapper?: ErrorMapper, path = sock()): Promise<{ server: ApiServer; path: string }> {
    const server = new ApiServer(path, silentLogger(), mapper);
    open.push(server);
    await server.start(routes);
    return { server, path };
  }

  before(() => { dir = mkdtempSync(join(tmpdir(), 'pn-api-')); });
  afterEach(async () => { await Promise.all(open.splice(0).map((s) => s.close())); });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  it('hands a route the method, path, query and parsed JSON body and answers its JSON', async () => {
    const seen: ApiRequest[] = [];
    const { path } = await start({
      'POST /v1/echo': async (req) => { seen.push(req); return { status: 200, body: { got: req.body, q: req.query.get('verbose') } }; },
    });
    const res = await raw(path, 'POST', '/v1/echo?verbose=yes', JSON.stringify({ a: [1, 'é'] }));
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(res.text)));
    assert.deepEqual(res.json, { got: { a: [1, 'é'] }, q: 'yes' });
    assert.equal(seen[0]?.method, 'POST');
    assert.equal(seen[0]?.path, '/v1/echo');
    assert.deepEqual(await apiCall(path, 'POST', '/v1/echo', { b: 2 }), { got: { b: 2 }, q: null });
  });

  it('gives a route an undefined body when the request has none, and answers {} for an undefined body', async () => {
    let body: unknown = 'unset';
    const { path } = await start({ 'GET /v1/none': async (req) => { body = req.body; return { status: 200, body: undefined }; } });
    const res = await raw(path, 'GET', '/v1/none');
    assert.equal(body, undefined);
    assert.equal(res.status, 200);
    assert.equal(res.text, '{}');
  });

  it('creates the socket with mode 0600 and its missing parent directory with 0700', async () => {
    const path = join(dir, 'nested', 'run', 'agent.sock');
    await start({}, undefined, path);
    const st = statSync(path);
    assert.equal(st.isSocket(), true, 'is a socket');
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'nested', 'run')).mode & 0o777, 0o700);
  });

  it('answers 404 naming the method and path for an unknown route or a known path with another method', async () => {
    const { path } = await start({ 'GET /v1/status': async () => ({ status: 200, body: {} }) });
    for (const [method, p] of [['GET', '/nope'], ['POST', '/v1/status'], ['GET', '/v1/status/']] as const) {
      const res = await raw(path, method, p);
      assert.equal(res.status, 404);
      assert.deepEqual(res.json, { msg: `no route ${method} ${p}` });
    }
  });

  it('maps a thrown error through a custom ErrorMapper, which sees the error and the request', async () => {
    class Teapot extends PodnetError { constructor() { super('ETEAPOT' as never, 'brew coffee: I am a teapot'); } }
    const thrown = new Teapot();
    const mapped: Array<[unknown, ApiRequest]> = [];
    const mapper: ErrorMapper = (err, req) => {
      mapped.push([err, req]);
      return err instanceof PodnetError ? { status: 418, body: { code: err.code, msg: err.message } } : { status: 500, body: {} };
    };
    const { path } = await start({ 'POST /v1/brew': async () => { throw thrown; } }, mapper);
    const res = await raw(path, 'POST', '/v1/brew', '{"kind":"coffee"}');
    assert.equal(res.status, 418);
    assert.deepEqual(res.json, { code: 'ETEAPOT', msg: 'brew coffee: I am a teapot' });
    assert.equal(mapped.length, 1);
    assert.equal(mapped[0]![0], thrown);
    assert.equal(mapped[0]![1].path, '/v1/brew');
    assert.deepEqual(mapped[0]![1].body, { kind: 'coffee' });
    await assert.rejects(apiCall(path, 'POST', '/v1/brew', {}), (err: unknown) => {
      assert.equal(err instanceof PodnetError, true);
      assert.equal((err as PodnetError).code, 'API_ERROR');
      assert.equal((err as Error).message, 'POST /v1/brew: agent answered 418: brew coffee: I am a teapot');
      return true;
    });
  });

  it('answers 500 with the message when no mapper is given', async () => {
    const { path } = await start({ 'GET /v1/fail': async () => { throw new Error('read map pn_endpoints: EPERM'); } });
    const res = await raw(path, 'GET', '/v1/fail');
    assert.equal(res.status, 500);
    assert.deepEqual(res.json, { msg: 'read map pn_endpoints: EPERM' });
  });

  it('turns a body that is not JSON into an EBADJSON error without calling the route', async () => {
    let called = 0;
    const errs: unknown[] = [];
    const { path } = await start(
      { 'POST /v1/x': async () => { called++; return { status: 200, body: {} }; } },
      (err) => { errs.push(err); return { status: 400, body: { code: (err as PodnetError).code, msg: (err as Error).message } }; },
    );
    const res = await raw(path, 'POST', '/v1/x', '{"containerId": ');
    assert.equal(res.status, 400);
    assert.equal((res.json as { code: string }).code, 'BAD_JSON');
    assert.match((res.json as { msg: string }).msg, /^parse request body: /);
    assert.equal(called, 0);
    assert.equal(errs[0] instanceof PodnetError, true);
    assert.equal((errs[0] as Error).cause instanceof SyntaxError, true, 'cause is the SyntaxError');

    const { path: p2 } = await start({ 'POST /v1/x': async () => ({ status: 200, body: {} }) });
    const dflt = await raw(p2, 'POST', '/v1/x', 'not json');
    assert.equal(dflt.status, 500);
    assert.match((dflt.json as { msg: string }).msg, /^parse request body: /);
  });

  it('refuses a body larger than 1 MiB with ETOOBIG', async () => {
    const { path } = await start(
      { 'POST /v1/x': async () => ({ status: 200, body: {} }) },
      (err) => ({ status: 413, body: { code: (err as PodnetError).code } }),
    );
    const res = await raw(path, 'POST', '/v1/x', Buffer.alloc((1 << 20) + 1, 0x20));
    assert.equal(res.status, 413);
    assert.deepEqual(res.json, { code: 'TOO_BIG' });
    const ok = await raw(path, 'POST', '/v1/x', `${' '.repeat((1 << 20) - 2)}{}`);
    assert.equal(ok.status, 200);
  });

  it('CNI routes answer a body that is not JSON with decode-failure code 6', async () => {
    const { path } = await start(cniRoutes({} as EndpointManager, { readiness: () => ({ ready: true as const }), defaultMtu: 1500, log: silentLogger() }), cniErrorResponse);
    const res = await raw(path, 'POST', '/v1/cni/add', '{"containerId": ');
    assert.deepEqual({ status: res.status, code: (res.json as { code: number }).code }, { status: 400, code: CniErrorCode.DecodeFailure });
  });

  it('answers a CNI error over the socket with its code, message and HTTP status', async () => {
    const { path } = await start({ 'GET /v1/cni/status': async () => { throw new CniError(CniErrorCode.NotReady, 'podnet agent is not ready'); } }, cniErrorResponse);
    const res = await raw(path, 'GET', '/v1/cni/status');
    assert.equal(res.status, 503);
    assert.deepEqual(res.json, { code: 50, msg: 'podnet agent is not ready' });
  });

  it('refuses with EINUSE to start on a socket another server is serving, which keeps serving', async () => {
    const { path } = await start({ 'GET /v1/ping': async () => ({ status: 200, body: { who: 'first' } }) });
    const second = new ApiServer(path, silentLogger());
    open.push(second);
    await assert.rejects(second.start({}), (err: unknown) => {
      assert.equal(err instanceof PodnetError, true);
      assert.equal((err as PodnetError).code, 'IN_USE');
      assert.equal((err as Error).message, `listen on ${path}: another agent is serving it`);
      return true;
    });
    assert.equal(existsSync(path), true, 'the live socket is still there');
    assert.deepEqual(await apiCall(path, 'GET', '/v1/ping'), { who: 'first' });
  });

  it('replaces a stale socket file left by a dead agent', async () => {
    const path = sock();
    makeStaleSocket(path);
    assert.equal(statSync(path).isSocket(), true, 'stale socket exists');
    await assert.rejects(apiCall(path, 'GET', '/v1/ping'), /ECONNREFUSED: is the agent running\?/);
    await start({ 'GET /v1/ping': async () => ({ status: 200, body: { who: 'new' } }) }, undefined, path);
    assert.deepEqual(await apiCall(path, 'GET', '/v1/ping'), { who: 'new' });
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it('close() removes the socket, a second close() is a no-op, and clients then hear ENOENT', async () => {
    const { server, path } = await start({ 'GET /v1/ping': async () => ({ status: 200, body: {} }) });
    // No pooled keep-alive connection, so the call below really connects to the path.
    assert.equal((await raw(path, 'GET', '/v1/ping')).status, 200);
    await server.close();
    assert.equal(existsSync(path), false);
    await server.close();
    await assert.rejects(apiCall(path, 'GET', '/v1/ping'), (err: unknown) => {
      assert.equal((err as PodnetError).code, 'AGENT_UNREACHABLE');
      assert.equal((err as Error).message, `connect to agent at ${path}: ENOENT: is the agent running?`);
      assert.equal(((err as Error).cause as NodeJS.ErrnoException).code, 'ENOENT');
      return true;
    });
  });

  it('close() before start() does nothing', async () => {
    const path = sock();
    await new ApiServer(path, silentLogger()).close();
    assert.equal(existsSync(path), false);
  });

  it('never lets the socket exist at its path with a mode other than 0600, even under umask 000', async () => {
    const path = sock();
    const seen: number[] = [];
    // Look at the path the moment the server is bound, before start() goes on.
    const origListen = NetServer.prototype.listen;
    NetServer.prototype.listen = function (this: NetServer, ...args: unknown[]) {
      const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
      const rest = args.filter((a) => a !== cb);
      return (origListen as (...a: unknown[]) => NetServer).call(this, ...rest, () => {
        if (existsSync(path)) seen.push(statSync(path).mode & 0o777);
        cb?.();
      });
    } as typeof origListen;
    const oldMask = process.umask(0);
    try {
      await start({ 'GET /v1/ping': async () => ({ status: 200, body: {} }) }, undefined, path);
    } finally {
      process.umask(oldMask);
      NetServer.prototype.listen = origListen;
    }
    seen.push(statSync(path).mode & 0o777);
    assert.deepEqual(seen.filter((m) => m !== 0o600), [], `modes seen at ${path}: ${seen.map((m) => m.toString(8)).join(', ')}`);
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.podnet-api-')), [], 'the private directory is gone');
  });

  it('holds requests that arrive between listen() and serve() and answers them once serving', async () => {
    const path = sock();
    const server = new ApiServer(path, silentLogger());
    open.push(server);
    await server.listen();
    const pending = apiCall<{ ok: boolean }>(path, 'GET', '/v1/ping');
    await sleep(50);
    server.serve({ 'GET /v1/ping': async () => ({ status: 200, body: { ok: true } }) });
    assert.deepEqual(await pending, { ok: true });
  });

  it('answers held and later requests with the unavailable answer after fail()', async () => {
    const path = sock();
    const server = new ApiServer(path, silentLogger(), undefined, () => ({ status: 503, body: { code: 11, msg: 'not serving' } }));
    open.push(server);
    await server.listen();
    const pending = raw(path, 'GET', '/v1/ping');
    await sleep(20);
    server.fail();
    const res = await pending;
    assert.equal(res.status, 503);
    assert.deepEqual(res.json, { code: 11, msg: 'not serving' });
  });

  it('close() returns promptly while a client is stuck in the middle of a request', async () => {
    const { server, path } = await start({ 'POST /v1/x': async () => ({ status: 200, body: {} }) });
    const client = connect(path);
    client.on('error', () => {});
    try {
      await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
      client.write('POST /v1/x HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
      await sleep(100);
      const outcome = await Promise.race([server.close().then(() => 'closed'), sleep(2000).then(() => 'still waiting after 2 s')]);
      assert.equal(outcome, 'closed');
    } finally {
      client.destroy();
    }
  });
});

describe('apiCall', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'pn-cli-')); });
  after(() => { rmSync(dir, { recursive: true, force: true }); });

  async function plainServer(path: string, handler: RequestListener): Promise<() => Promise<void>> {
    const s = createHttpServer(handler);
    await new Promise<void>((resolve) => s.listen(path, resolve));
    return () => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); });
  }

  it('names the socket and asks whether the agent runs when the socket does not exist', async () => {
    const path = join(dir, 'absent.sock');
    await assert.rejects(apiCall(path, 'GET', '/v1/status'), (err: unknown) => {
      assert.equal(err instanceof PodnetError, true);
      assert.equal((err as PodnetError).code, 'AGENT_UNREACHABLE');
      assert.equal((err as Error).message, `connect to agent at ${path}: ENOENT: is the agent running?`);
      return true;
    });
  });

  it('names the socket and asks whether the agent runs when nobody listens on it', async () => {
    const path = join(dir, 'stale.sock');
    makeStaleSocket(path);
    await assert.rejects(apiCall(path, 'GET', '/v1/status'), (err: unknown) => {
      assert.equal((err as PodnetError).code, 'AGENT_UNREACHABLE');
      assert.equal((err as Error).message, `connect to agent at ${path}: ECONNREFUSED: is the agent running?`);
      return true;
    });
  });

  it('gives up after the timeout, naming the socket and the wait', async () => {
    const path = join(dir, 'slow.sock');
    const pending: Array<() => void> = [];
    const close = await plainServer(path, (_req, res) => { pending.push(() => res.end('{}')); });
    try {
      const t0 = Date.now();
      await assert.rejects(apiCall(path, 'GET', '/v1/status', undefined, 150), (err: unknown) => {
        assert.equal((err as PodnetError).code, 'AGENT_UNREACHABLE');
        assert.equal((err as Error).message, `connect to agent at ${path}: no answer within 150 ms`);
        return true;
      });
      assert.equal(Date.now() - t0 < 4000, true, 'timed out promptly');
    } finally {
      for (const p of pending) p();
      await close();
    }
  });

  it('sends the JSON body with its length and resolves 200 answers, an empty one as {}', async () => {
    const path = join(dir, 'plain.sock');
    const got: Array<{ method?: string; url?: string; type?: string; len?: string; body: string }> = [];
    const close = await plainServer(path, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        got.push({ method: req.method, url: req.url, type: req.headers['content-type'], len: req.headers['content-length'], body });
        res.writeHead(200).end(req.url === '/empty' ? '' : '{"ok":true}');
      });
    });
    try {
      assert.deepEqual(await apiCall(path, 'POST', '/v1/cni/add', { id: 'é' }), { ok: true });
      assert.deepEqual(await apiCall(path, 'GET', '/empty'), {});
      assert.deepEqual(got[0], { method: 'POST', url: '/v1/cni/add', type: 'application/json', len: String(Buffer.byteLength('{"id":"é"}')), body: '{"id":"é"}' });
      assert.equal(got[1]?.body, '');
      assert.equal(got[1]?.type, undefined);
    } finally {
      await close();
    }
  });

  it('rejects a non-200 answer with its status and the body text when it is not JSON', async () => {
    const path = join(dir, 'text.sock');
    const close = await plainServer(path, (_req, res) => { res.writeHead(502).end('upstream broke'); });
    try {
      await assert.rejects(apiCall(path, 'GET', '/v1/status'), (err: unknown) => {
        assert.equal((err as PodnetError).code, 'API_ERROR');
        assert.equal((err as Error).message, 'GET /v1/status: agent answered 502: upstream broke');
        return true;
      });
    } finally {
      await close();
    }
  });

  it('rejects a non-200 JSON answer without msg with the raw body', async () => {
    const path = join(dir, 'nomsg.sock');
    const close = await plainServer(path, (_req, res) => { res.writeHead(400).end('{"code":7}'); });
    try {
      await assert.rejects(apiCall(path, 'POST', '/v1/cni/check', {}), /POST \/v1\/cni\/check: agent answered 400: \{"code":7\}/);
    } finally {
      await close();
    }
  });
});
