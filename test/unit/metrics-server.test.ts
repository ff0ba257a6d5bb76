/** The metrics listener on loopback: GET and HEAD only, readiness, and a busy port named as the setting. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Gauge, Registry } from 'prom-client';
import { MetricsServer } from '../../agent/src/metrics/index.js';
import { PodnetError } from '../../agent/src/errors/index.js';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** One request to 127.0.0.1:port, bounded to 5 s. */
function call(port: number, method: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

describe('MetricsServer', () => {
  let ready = false;
  let collects = 0;
  const registry = new Registry();
  new Gauge({ name: 'podnet_test_collects', help: 'Times the registry was collected.', registers: [registry], collect() { this.set(++collects); } });
  const server = new MetricsServer({ host: '127.0.0.1', port: 0 }, () => ready);
  before(() => server.start(registry));
  after(() => server.close());

  test('GET /metrics answers the exposition in the Prometheus text format', async () => {
    const r = await call(server.port, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^podnet_test_collects \d+$/m);
  });

  test('HEAD /metrics answers the headers without a body and without collecting', async () => {
    const before = collects;
    const r = await call(server.port, 'HEAD', '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.equal(r.body, '');
    assert.equal(collects, before, 'no collect for HEAD');
  });

  for (const path of ['/metrics', '/healthz', '/readyz']) {
    test(`every method but GET and HEAD on ${path} answers 405 with Allow: GET, HEAD`, async () => {
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
        const r = await call(server.port, method, path);
        assert.equal(r.status, 405, `${method} ${path}`);
        assert.equal(r.headers['allow'], 'GET, HEAD', `${method} ${path}`);
      }
    });
  }

  test('a POST to /metrics does not collect the registry', async () => {
    const before = collects;
    assert.equal((await call(server.port, 'POST', '/metrics')).status, 405);
    assert.equal(collects, before);
  });

  test('/readyz answers 503 until the agent is ready and 200 after; /healthz is always 200', async () => {
    ready = false;
    assert.equal((await call(server.port, 'GET', '/readyz')).status, 503);
    assert.equal((await call(server.port, 'HEAD', '/readyz')).status, 503);
    assert.equal((await call(server.port, 'GET', '/healthz')).status, 200);
    ready = true;
    const r = await call(server.port, 'GET', '/readyz?verbose=1');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ready\n');
  });

  test('an unknown path answers 404 whatever the method', async () => {
    assert.equal((await call(server.port, 'GET', '/')).status, 404);
    assert.equal((await call(server.port, 'POST', '/metricsx')).status, 404);
  });

  test('a second server on the same port fails to start with EADDRINUSE naming metrics-addr', async () => {
    const other = new MetricsServer({ host: '127.0.0.1', port: server.port }, () => true);
    await assert.rejects(other.start(registry), (err: unknown) => {
      assert.ok(err instanceof PodnetError, String(err));
      assert.equal(err.code, 'IN_USE');
      assert.match(err.message, new RegExp(`^listen on 127\\.0\\.0\\.1:${server.port} for metrics \\(metrics-addr\\): EADDRINUSE`));
      return true;
    });
    await other.close();
  });
});
