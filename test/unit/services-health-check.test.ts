import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { silentLogger } from '../../agent/src/log/index.js';
import { desiredFrontends, SERVICE_NAME_LABEL, type EndpointObject, type EndpointSliceObject, type ServiceObject } from '../../agent/src/services/index.js';
import { HealthCheckServers, healthCheckBody, healthCheckTargets } from '../../agent/src/services/health-check.js';

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function get(port: number, path = '/'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET 127.0.0.1:${port}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const node = { name: 'node-a', addresses: ['127.0.0.1'] };
type Ep = EndpointObject;
const lb = (name: string, hc: number, etp = 'Local'): ServiceObject => ({
  metadata: { name, namespace: 'shop' },
  spec: { type: 'LoadBalancer', clusterIP: '10.96.0.10', externalTrafficPolicy: etp, healthCheckNodePort: hc, ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
});
const slice = (name: string, eps: Ep[]): EndpointSliceObject => ({
  metadata: { name: `${name}-x`, namespace: 'shop', labels: { [SERVICE_NAME_LABEL]: name } }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080 }], endpoints: eps,
});

describe('healthCheckNodePort', () => {
  const servers = new HealthCheckServers({ healthy: () => healthy, log: silentLogger() });
  let healthy = true;
  after(() => servers.close());

  it('counts the ready endpoints on this node of Services with externalTrafficPolicy Local only', () => {
    const svcs = [lb('web', 31000), lb('cluster', 31001, 'Cluster')];
    const eps: Ep[] = [
      { addresses: ['10.244.0.5'], conditions: { ready: true }, nodeName: 'node-a' },
      { addresses: ['10.244.0.6'], conditions: { ready: true }, nodeName: 'node-a' },
      { addresses: ['10.244.9.9'], conditions: { ready: true }, nodeName: 'node-b' },
    ];
    const t = healthCheckTargets(svcs, desiredFrontends(svcs, [slice('web', eps)], node), 'node-a');
    assert.deepEqual(t, [{ namespace: 'shop', name: 'web', port: 31000, localEndpoints: 2 }]);
  });

  it('answers 200 with kube-proxy\'s body while a local endpoint exists, and 503 when none does, over real HTTP', async () => {
    const port = await freePort();
    assert.deepEqual(await servers.update([{ namespace: 'shop', name: 'web', port, localEndpoints: 2 }], ['127.0.0.1']), []);
    const ok = await get(port, '/healthz');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['content-type'], 'application/json');
    assert.equal(ok.headers['x-load-balancing-endpoint-weight'], '2');
    assert.deepEqual(JSON.parse(ok.body), { service: { namespace: 'shop', name: 'web' }, localEndpoints: 2, serviceProxyHealthy: true });
    assert.equal(ok.body, healthCheckBody({ namespace: 'shop', name: 'web', localEndpoints: 2 }, true));
    assert.match(ok.body, /^{\n\t"service": {\n\t\t"namespace": "shop",/);

    await servers.update([{ namespace: 'shop', name: 'web', port, localEndpoints: 0 }], ['127.0.0.1']);
    const none = await get(port);
    assert.equal(none.status, 503);
    assert.equal(JSON.parse(none.body).localEndpoints, 0);

    healthy = false;
    await servers.update([{ namespace: 'shop', name: 'web', port, localEndpoints: 1 }], ['127.0.0.1']);
    const sick = await get(port);
    healthy = true;
    assert.equal(sick.status, 503);
    assert.equal(JSON.parse(sick.body).serviceProxyHealthy, false);
  });

  it('stops listening when the Service no longer asks for it', async () => {
    const port = await freePort();
    await servers.update([{ namespace: 'shop', name: 'web', port, localEndpoints: 1 }], ['127.0.0.1']);
    assert.deepEqual(servers.listening(), [`127.0.0.1:${port}`]);
    await servers.update([], ['127.0.0.1']);
    assert.deepEqual(servers.listening(), []);
    await assert.rejects(get(port), /ECONNREFUSED/);
  });

  it('says which port it could not listen on and for which Service, and tries again on the next update', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    const errors = await servers.update([{ namespace: 'shop', name: 'web', port, localEndpoints: 1 }], ['127.0.0.1']);
    assert.deepEqual(errors, [`listen on 127.0.0.1:${port} for the healthCheckNodePort of shop/web: EADDRINUSE`]);
    await new Promise<void>((r) => busy.close(() => r()));
    assert.deepEqual(await servers.update([{ namespace: 'shop', name: 'web', port, localEndpoints: 1 }], ['127.0.0.1']), []);
    assert.equal((await get(port)).status, 200);
    await servers.update([], []);
  });
});
