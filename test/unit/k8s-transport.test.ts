/**
 * The API transport against small API servers on loopback: lists with
 * pages, Status messages in errors, a resource the server does not have as
 * a 404 (so the Services source sees "no ServiceCIDR API" instead of
 * retrying forever), watch streams split at any byte, ended by the server
 * or aborted; TLS with a CA and a client certificate from a kubeconfig,
 * token files re-read per request, and the in-cluster config.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiStatusError, KubeconfigError, apiTransport, inClusterConfig, loadKubeconfig,
  type KubeTransport, type WatchEvent,
} from '../../agent/src/k8s/index.js';
import { KubeServiceSource, SERVICES, SERVICE_CIDRS, type ServiceSnapshot } from '../../agent/src/services/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

const svc = (name: string, rv: string) => ({ metadata: { name, namespace: 'default', resourceVersion: rv }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, protocol: 'TCP' }] } });
const NOT_FOUND = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'the server could not find the requested resource' };

/** GET paths the plain server answers; everything else is a 404 Status. */
const ROUTES: Record<string, unknown> = {
  '/api/v1/services': { kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: '10' }, items: [svc('kubernetes', '5')] },
  '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: '10' }, items: [] },
};

function kubeconfig(dir: string, server: string, cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  const path = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 't',
    clusters: [{ name: 't', cluster: { server, ...cluster } }], users: [{ name: 'u', user }], contexts: [{ name: 't', context: { cluster: 't', user: 'u' } }],
  }));
  return path;
}

/** Waits for `cond` (bounded). */
async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('the API transport over plain HTTP', () => {
  let server: Server;
  let dir: string;
  let transport: KubeTransport;
  let url: string;
  const seen: Array<{ path: string; query: URLSearchParams; auth: string | undefined }> = [];
  const open = new Set<ServerResponse>();
  /** What a watch of /api/v1/services does: keep it open (the test writes to it) or answer a status. */
  let watchMode: 'open' | 'gone' = 'open';

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const u = new URL(req.url ?? '/', 'http://x');
      seen.push({ path: u.pathname, query: u.searchParams, auth: req.headers.authorization });
      if (u.pathname === '/api/v1/forbidden') {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403, message: 'services is forbidden: User "x" cannot list resource' }));
        return;
      }
      if (u.pathname === '/api/v1/paged') {
        const cont = u.searchParams.get('continue');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ metadata: { resourceVersion: '20', ...(cont ? {} : { continue: 'page2' }) }, items: [svc(cont ? 'b' : 'a', '1')] }));
        return;
      }
      if (u.searchParams.get('watch') === 'true' && ROUTES[u.pathname]) {
        if (watchMode === 'gone') {
          res.writeHead(410, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version: 1 (5)' }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        open.add(res);
        res.on('close', () => open.delete(res));
        return;
      }
      const body = ROUTES[u.pathname];
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? NOT_FOUND));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    dir = mkdtempSync(join(tmpdir(), 'podnet-kubeconfig-'));
    transport = apiTransport(kubeconfig(dir, url, { 'insecure-skip-tls-verify': true }, { token: 'test' }));
  });

  after(async () => {
    for (const r of open) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists a resource with the bearer token and the page limit', async () => {
    const page = await transport.list(SERVICES, { labelSelector: 'a=b' }, { limit: 10 });
    assert.deepEqual(page.items.map((o) => o.metadata?.name), ['kubernetes']);
    assert.equal(page.resourceVersion, '10');
    assert.equal(page.continueToken, undefined);
    const req = seen.findLast((s) => s.path === '/api/v1/services')!;
    assert.equal(req.auth, 'Bearer test');
    assert.equal(req.query.get('limit'), '10');
    assert.equal(req.query.get('labelSelector'), 'a=b');
  });

  it('passes the continue token of a page on to the next', async () => {
    const type = { apiVersion: 'v1', kind: 'Paged', plural: 'paged' };
    const first = await transport.list(type, {}, { limit: 1 });
    assert.equal(first.continueToken, 'page2');
    const second = await transport.list(type, {}, { limit: 1, continueToken: first.continueToken! });
    assert.equal(seen.at(-1)!.query.get('continue'), 'page2');
    assert.deepEqual(second.items.map((o) => o.metadata?.name), ['b']);
    assert.equal(second.continueToken, undefined);
  });

  it('fails a refused list with the status code and the API server\'s message', async () => {
    await assert.rejects(transport.list({ apiVersion: 'v1', kind: 'X', plural: 'forbidden' }, {}, { limit: 1 }), (err: unknown) => {
      assert.ok(err instanceof ApiStatusError);
      assert.equal(err.statusCode, 403);
      assert.match(err.message, /^list forbidden from http:\/\/127\.0\.0\.1:\d+: services is forbidden: User "x" cannot list resource \(HTTP 403 Forbidden\)$/);
      return true;
    });
  });

  it('answers both ServiceCIDR versions the server lacks with a 404 ApiStatusError', async () => {
    for (const type of SERVICE_CIDRS) {
      await assert.rejects(transport.list(type, {}, { limit: 1 }), (err: unknown) => {
        assert.ok(err instanceof ApiStatusError, `${type.apiVersion}: ${String(err)}`);
        assert.equal(err.statusCode, 404, `${type.apiVersion}: ${err.message}`);
        return true;
      });
    }
  });

  it('fails a list with status 0 when nothing listens', async () => {
    const dead = apiTransport(kubeconfig(dir, 'http://127.0.0.1:1', {}, {}));
    await assert.rejects(dead.list(SERVICES, {}, { limit: 1 }), (err: unknown) => {
      assert.ok(err instanceof ApiStatusError);
      assert.equal(err.statusCode, 0);
      assert.match(err.message, /^list services from http:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/);
      return true;
    });
  });

  it('delivers watch events split across writes at any byte, and ends with null when the server closes', async () => {
    const events: Array<WatchEvent<unknown>> = [];
    const ends: unknown[] = [];
    const before = open.size;
    await transport.watch(SERVICES, {}, '10', 30, (e) => events.push(e), (err) => ends.push(err));
    await until(() => open.size > before, 'the watch to open');
    const res = [...open].at(-1)!;
    const w = seen.findLast((s) => s.path === '/api/v1/services')!;
    assert.equal(w.query.get('resourceVersion'), '10');
    assert.equal(w.query.get('allowWatchBookmarks'), 'true');
    assert.equal(w.query.get('timeoutSeconds'), '30');
    const stream = [
      { type: 'ADDED', object: svc('a', '11') }, { type: 'BOOKMARK', object: { metadata: { resourceVersion: '12' } } },
      { type: 'MODIFIED', object: svc('a', '13') }, { type: 'DELETED', object: svc('a', '14') },
    ].map((e) => `${JSON.stringify(e)}\n`).join('');
    for (const cut of [1, 17, 40, 90, stream.length - 3]) {
      res.write(stream.slice(0, cut));
      await sleep(5);
      res.write(stream.slice(cut));
      await sleep(5);
    }
    await until(() => events.length === 20, '20 events');
    assert.deepEqual(events.slice(0, 4).map((e) => e.type), ['ADDED', 'BOOKMARK', 'MODIFIED', 'DELETED']);
    assert.equal((events[2]!.object as { metadata: { resourceVersion: string } }).metadata.resourceVersion, '13');
    assert.deepEqual(ends, []);
    res.end();
    await until(() => ends.length === 1, 'the end of the watch');
    assert.equal(ends[0], null);
  });

  it('stops delivering after abort and never reports the end', async () => {
    const events: unknown[] = [];
    const ends: unknown[] = [];
    const before = open.size;
    const h = await transport.watch(SERVICES, {}, '10', 30, (e) => events.push(e), (err) => ends.push(err));
    await until(() => open.size > before, 'the watch to open');
    h.abort();
    await until(() => open.size === before, 'the server to see the client go');
    await sleep(50);
    assert.deepEqual(events, []);
    assert.deepEqual(ends, []);
  });

  it('ends a watch the server answers with 410 Gone with an ApiStatusError of 410', async () => {
    watchMode = 'gone';
    try {
      const ends: unknown[] = [];
      await transport.watch(SERVICES, {}, '1', 30, () => assert.fail('no events'), (err) => ends.push(err));
      await until(() => ends.length === 1, 'the end of the watch');
      assert.ok(ends[0] instanceof ApiStatusError);
      assert.equal(ends[0].statusCode, 410);
      assert.match(ends[0].message, /too old resource version/);
    } finally {
      watchMode = 'open';
    }
  });

  it('lets the Services source find no ServiceCIDR API, asking each version once, and deliver the cluster\'s Services', async () => {
    const snaps: ServiceSnapshot[] = [];
    const asked = (v: string): number => seen.filter((p) => p.path === `/apis/networking.k8s.io/${v}/servicecidrs`).length;
    const was = { v1: asked('v1'), v1beta1: asked('v1beta1') };
    const src = new KubeServiceSource(transport, silentLogger(), { informer: { backoffInitialMs: 5, backoffMaxMs: 20 } });
    src.start((s) => snaps.push(s));
    try {
      await until(() => snaps.length > 0, 'a snapshot', 10_000);
      assert.deepEqual(snaps[0]!.services.map((s) => s.metadata?.name), ['kubernetes']);
      assert.equal(snaps[0]!.serviceCidrs, undefined);
      assert.equal(src.stats()['serviceCidrApi'], 'absent');
      await sleep(100);
      assert.equal(asked('v1') - was.v1, 1, 'v1 was asked about once');
      assert.equal(asked('v1beta1') - was.v1beta1, 1, 'v1beta1 was asked about once');
    } finally {
      await src.stop();
    }
  });
});

describe('the API transport over TLS', () => {
  let dir: string;
  let server: ReturnType<typeof createTlsServer>;
  let url: string;
  const seen: Array<{ cn: string | undefined; auth: string | undefined }> = [];

  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'podnet-tls-'));
    // A CA, a server certificate for 127.0.0.1 and a client certificate, all made here.
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=podnet-test-ca');
    for (const [name, subj, ext] of [['server', '/CN=apiserver', 'subjectAltName=IP:127.0.0.1,DNS:kubernetes.default'], ['client', '/CN=system:node:test/O=system:nodes', 'extendedKeyUsage=clientAuth']] as const) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
      writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
    }
    server = createTlsServer({ key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.crt')), ca: readFileSync(join(dir, 'ca.crt')), requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const sock = req.socket as TLSSocket;
      seen.push({ cn: sock.authorized ? String(sock.getPeerCertificate().subject?.CN) : undefined, auth: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ROUTES['/api/v1/services']));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies the server with the kubeconfig\'s CA (a relative path) and presents its client certificate', async () => {
    const t = apiTransport(kubeconfig(dir, url, { 'certificate-authority': 'ca.crt' }, {
      'client-certificate-data': readFileSync(join(dir, 'client.crt')).toString('base64'), 'client-key': join(dir, 'client.key'),
    }));
    const page = await t.list(SERVICES, {}, { limit: 5 });
    assert.equal(page.items.length, 1);
    assert.deepEqual(seen.at(-1), { cn: 'system:node:test', auth: undefined });
  });

  it('refuses a server its CA did not sign, naming the TLS failure', async () => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.crt', '-days', '1', '-subj', '/CN=other-ca');
    const t = apiTransport(kubeconfig(dir, url, { 'certificate-authority': join(dir, 'other.crt') }, { token: 'x' }));
    await assert.rejects(t.list(SERVICES, {}, { limit: 5 }), (err: unknown) => {
      assert.ok(err instanceof ApiStatusError);
      assert.equal(err.statusCode, 0);
      assert.match(err.message, /certificate/i);
      return true;
    });
  });

  it('reads a token file for every request, so a rotated token is used at once', async () => {
    writeFileSync(join(dir, 'token'), 'first\n');
    const t = apiTransport(kubeconfig(dir, url, { 'certificate-authority': 'ca.crt' }, { tokenFile: 'token' }));
    await t.list(SERVICES, {}, { limit: 5 });
    assert.equal(seen.at(-1)!.auth, 'Bearer first');
    writeFileSync(join(dir, 'token'), 'second\n');
    await t.list(SERVICES, {}, { limit: 5 });
    assert.equal(seen.at(-1)!.auth, 'Bearer second');
  });

  it('uses the in-cluster service account: server from the environment, its CA and token', async () => {
    const sa = mkdtempSync(join(tmpdir(), 'podnet-sa-'));
    try {
      writeFileSync(join(sa, 'ca.crt'), readFileSync(join(dir, 'ca.crt')));
      writeFileSync(join(sa, 'token'), 'sa-token');
      const port = new URL(url).port;
      const ep = inClusterConfig({ host: '127.0.0.1', port, dir: sa });
      assert.equal(ep.server, `https://127.0.0.1:${port}`);
      assert.equal(inClusterConfig({ host: 'fd00::1', port: '443', dir: sa }).server, 'https://[fd00::1]:443');
      const t = apiTransport(undefined, { host: '127.0.0.1', port, dir: sa });
      await t.list(SERVICES, {}, { limit: 5 });
      assert.equal(seen.at(-1)!.auth, 'Bearer sa-token');
    } finally {
      rmSync(sa, { recursive: true, force: true });
    }
  });
});

describe('kubeconfigs the agent cannot use', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'podnet-kubeconfig-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const refused = (path: string, re: RegExp): void => {
    assert.throws(() => loadKubeconfig(path), (err: unknown) => {
      assert.ok(err instanceof KubeconfigError, String(err));
      assert.match(err.message, re);
      return true;
    });
  };

  it('names an exec credential plugin and says what to use instead', () => {
    refused(kubeconfig(dir, 'https://127.0.0.1:6443', {}, { exec: { command: 'aws' } }), /user "u" uses an exec credential plugin, which the podnet agent does not run; give it a token, a tokenFile or a client certificate/);
  });

  it('names a missing context, a server that is not a URL, a key without a certificate and an unreadable CA file', () => {
    const p = join(dir, 'no-context');
    writeFileSync(p, JSON.stringify({ 'current-context': 'gone', contexts: [], clusters: [], users: [] }));
    refused(p, /no-context: contexts has no entry named "gone"/);
    refused(kubeconfig(dir, '127.0.0.1:6443', {}, {}), /cluster "t" server must be an http\(s\) URL, got "127\.0\.0\.1:6443"/);
    refused(kubeconfig(dir, 'https://127.0.0.1:6443', {}, { 'client-key-data': 'eA==' }), /user "u" has a client key without a certificate/);
    refused(kubeconfig(dir, 'https://127.0.0.1:6443', { 'certificate-authority': 'missing.crt' }, {}), /read certificate-authority .*missing\.crt: ENOENT/);
  });

  it('says the in-cluster config needs the service environment', () => {
    assert.throws(() => inClusterConfig({ dir }), /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/);
    assert.throws(() => inClusterConfig({ host: '10.0.0.1', port: '443', dir }), /read the service account in .*: ENOENT/);
  });
});
