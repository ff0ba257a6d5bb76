/**
 * The client-node transport against a small API server on loopback: a
 * resource the server does not have is a 404 ApiStatusError whether its
 * group version is missing (the server answers 404) or the group version
 * lacks the kind (client-node's discovery finds nothing), so the Services
 * source sees "no ServiceCIDR API" instead of retrying forever.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiStatusError, clientNodeTransport, type KubeTransport } from '../../agent/src/k8s/index.js';
import { KubeServiceSource, SERVICES, SERVICE_CIDRS, type ServiceSnapshot } from '../../agent/src/services/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

const resources = (groupVersion: string, list: Array<[string, string]>) => ({
  kind: 'APIResourceList', apiVersion: 'v1', groupVersion,
  resources: list.map(([name, kind]) => ({ name, singularName: '', namespaced: name !== 'servicecidrs', kind, verbs: ['get', 'list', 'watch'] })),
});

/** GET paths this server answers; everything else is a 404 Status. Watches stay open until the client goes. */
const ROUTES: Record<string, unknown> = {
  '/api/v1': resources('v1', [['services', 'Service'], ['nodes', 'Node']]),
  '/apis/discovery.k8s.io/v1': resources('discovery.k8s.io/v1', [['endpointslices', 'EndpointSlice']]),
  // networking.k8s.io/v1 exists (Ingress) but has no ServiceCIDR, as before Kubernetes 1.33; v1beta1 is not served.
  '/apis/networking.k8s.io/v1': resources('networking.k8s.io/v1', [['ingresses', 'Ingress']]),
  '/api/v1/services': { kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: '10' }, items: [{ metadata: { name: 'kubernetes', namespace: 'default', resourceVersion: '5' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, protocol: 'TCP' }] } }] },
  '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: '10' }, items: [] },
};

describe('clientNodeTransport', () => {
  let server: Server;
  let dir: string;
  let transport: KubeTransport;
  const seen: string[] = [];
  const open = new Set<ServerResponse>();

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push(`${url.pathname}${url.searchParams.get('watch') === 'true' ? '?watch' : ''}`);
      if (url.searchParams.get('watch') === 'true' && ROUTES[url.pathname]) {
        res.writeHead(200, { 'content-type': 'application/json' });
        open.add(res);
        res.on('close', () => open.delete(res));
        return;
      }
      const body = ROUTES[url.pathname];
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'the server could not find the requested resource' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), 'podnet-kubeconfig-'));
    writeFileSync(join(dir, 'kubeconfig'), [
      'apiVersion: v1', 'kind: Config', 'current-context: t',
      `clusters: [{name: t, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]`,
      'users: [{name: t, user: {token: test}}]',
      'contexts: [{name: t, context: {cluster: t, user: t}}]',
    ].join('\n'));
    transport = await clientNodeTransport(join(dir, 'kubeconfig'));
  });

  after(async () => {
    for (const r of open) r.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists a resource the server has', async () => {
    const page = await transport.list(SERVICES, {}, { limit: 10 });
    assert.deepEqual(page.items.map((o) => o.metadata?.name), ['kubernetes']);
    assert.equal(page.resourceVersion, '10');
  });

  it('answers a kind its group version lacks, and a group version the server lacks, with a 404 ApiStatusError', async () => {
    for (const type of SERVICE_CIDRS) {
      await assert.rejects(transport.list(type, {}, { limit: 1 }), (err: unknown) => {
        assert.ok(err instanceof ApiStatusError, `${type.apiVersion}: ${String(err)}`);
        assert.equal(err.statusCode, 404, `${type.apiVersion}: ${err.message}`);
        return true;
      });
    }
  });

  it('lets the Services source find no ServiceCIDR API, asking once, and deliver the cluster\'s Services', async () => {
    const snaps: ServiceSnapshot[] = [];
    const asked = (): number => seen.filter((p) => p === '/apis/networking.k8s.io/v1beta1').length;
    const before = asked();
    const src = new KubeServiceSource(transport, silentLogger(), { informer: { backoffInitialMs: 5, backoffMaxMs: 20 } });
    src.start((s) => snaps.push(s));
    try {
      const end = Date.now() + 10_000;
      while (snaps.length === 0 && Date.now() < end) await sleep(10);
      assert.equal(snaps.length, 1, `a snapshot within 10 s (${String(src.lastError)})`);
      assert.deepEqual(snaps[0]!.services.map((s) => s.metadata?.name), ['kubernetes']);
      assert.equal(snaps[0]!.serviceCidrs, undefined);
      assert.equal(src.stats()['serviceCidrApi'], 'absent');
      await sleep(100);
      assert.equal(seen.filter((p) => p.includes('servicecidrs')).length, 0, 'discovery alone answered for servicecidrs');
      assert.equal(asked() - before, 1, 'v1beta1 was asked about once');
    } finally {
      await src.stop();
    }
  });
});
