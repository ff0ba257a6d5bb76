/**
 * Services through a real agent in standalone mode: a services file is read
 * into the pinned service maps, changes to it are applied, a restart keeps
 * every id, healthCheckNodePort answers over HTTP, and --services off
 * empties the maps. No packet is sent to a Service address here (the
 * datapath tests do that, behind blackhole routes), so no range can leak.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { TestNode, testCidr } from '../lib/agent-fixture.js';
import { apiCall } from '../../agent/src/api/client.js';
import type { ServicesInfo } from '../../agent/src/api/protocol.js';
import { BpfMap } from '../../agent/src/libbpf/index.js';
import { podnet } from '../lib/podnet-cli.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET 127.0.0.1:${port}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function manifest(hcPort: number, endpoints: string[]): string {
  return `# the web Service of the test
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 10.96.239.10
  externalTrafficPolicy: Local
  healthCheckNodePort: ${hcPort}
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30939}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${endpoints.map((ip) => `  - {addresses: [${ip}], conditions: {ready: true}, nodeName: test-node}`).join('\n')}
`;
}

describe('Services in a real agent from a file', () => {
  let node: TestNode;
  let file: string;
  let hcPort: number;
  const services = (): Promise<ServicesInfo> => apiCall<ServicesInfo>(node.socket, 'GET', '/v1/services');
  async function until(what: string, ok: (s: ServicesInfo) => boolean): Promise<ServicesInfo> {
    let last: ServicesInfo | undefined;
    for (let i = 0; i < 100; i++) {
      last = await services();
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`${what}: not within 10 s; last answer ${JSON.stringify(last)}`);
  }
  const backends = (s: ServicesInfo): string[] => s.services.flatMap((x) => x.ports.flatMap((p) => p.backends.map((b) => `${b.address}:${b.port}`))).sort();
  const count = (pin: string): number => { using m = BpfMap.openPinned(join(node.bpffs, pin)); return m.count(); };

  before(async () => {
    hcPort = await freePort();
    node = new TestNode(testCidr(239), { nodeportAddresses: '127.0.0.0/8', serviceCidr: '10.96.239.0/24' });
    file = join(node.dir, 'services.yaml');
    writeFileSync(file, manifest(hcPort, ['10.244.39.5']));
    node.cfg = { ...node.cfg, source: { kind: 'file', path: file } };
  });
  after(() => node.cleanup());

  test('writes the file\'s Service into the pinned maps and shows it as podnet services does', async () => {
    await node.start();
    const s = await until('the Service appears', (x) => x.services.length === 1 && backends(x).length === 2);
    assert.equal(s.enabled, true);
    assert.equal(s.synced, true);
    assert.deepEqual(s.ranges, ['10.96.239.0/24']);
    const web = s.services[0]!;
    assert.equal(`${web.namespace}/${web.name}`, 'shop/web');
    const fes = web.ports.flatMap((p) => p.frontends.map((f) => `${f.kind} ${f.address}:${f.port}/${f.protocol}`)).sort();
    assert.deepEqual(fes, ['ClusterIP 10.96.239.10:80/TCP', 'NodePort 127.0.0.1:30939/TCP']);
    assert.deepEqual(backends(s), ['10.244.39.5:8080', '10.244.39.5:8080'], 'the Cluster and the Local group each hold the local endpoint');
    assert.equal(count('pn_services'), 2);
    assert.equal(count('pn_backends'), 1);
    assert.equal(count('pn_svc_ranges'), 1);
    const metrics = await node.agent!.metrics.registry.metrics();
    assert.match(metrics, /podnet_service_map_pressure_ratio\{map="pn_services"\} 0\.0000305/);
    assert.match(metrics, /podnet_service_reconcile_runs_total\{result="changed"\} [1-9]/);
  });

  test('answers the healthCheckNodePort over HTTP with the local endpoint count', async () => {
    let r = { status: 0, body: '' };
    for (let i = 0; i < 50 && r.status !== 200; i++) {
      r = await get(hcPort).catch(() => r);
      if (r.status !== 200) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { service: { namespace: 'shop', name: 'web' }, localEndpoints: 1, serviceProxyHealthy: true });
  });

  test('applies a new version of the file renamed over it', async () => {
    const tmp = `${file}.new`;
    writeFileSync(tmp, manifest(hcPort, ['10.244.39.5', '10.244.39.6']));
    renameSync(tmp, file);
    await until('the second endpoint appears', (x) => backends(x).length === 4);
    assert.equal(count('pn_backends'), 2);
    assert.equal((JSON.parse((await get(hcPort)).body) as { localEndpoints: number }).localEndpoints, 2);
  });

  test('podnet services prints the same from its own process, as JSON and as a table', async () => {
    const j = await podnet(['services', '-o', 'json', '--api-socket', node.socket]);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout), await services().then((s) => ({ ...s, lastReconcile: JSON.parse(j.stdout).lastReconcile })));
    const t = await podnet(['services', '--api-socket', node.socket, '-n', 'shop']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^shop\/web\s+http\/TCP\s+10\.96\.239\.10:80\s+ClusterIP\s+-\s+0\s+0\s+10\.244\.39\.5:8080, 10\.244\.39\.6:8080$/m);
  });

  test('keeps every frontend, group and backend id across an agent restart', async () => {
    const ids = (s: ServicesInfo): string => JSON.stringify(s.services.map((x) => x.ports.map((p) => [p.groupId, p.frontends.map((f) => f.id), p.backends.map((b) => b.id).sort()])));
    const before = ids(await services());
    await node.stop();
    await node.start();
    const after = await until('the Service is back', (x) => backends(x).length === 4);
    assert.equal(ids(after), before);
    assert.equal(after.lastReconcile?.result, 'ok', 'the restarted agent found the maps right and wrote nothing');
  });

  test('empties the service maps and stops the health checks with --services off', async () => {
    await node.stop();
    await node.start({}, { services: false });
    const s = await services();
    assert.equal(s.enabled, false);
    assert.deepEqual(s.services, []);
    assert.equal(count('pn_services') + count('pn_svc_slots') + count('pn_backends') + count('pn_svc_ranges'), 0);
    await assert.rejects(get(hcPort), /ECONNREFUSED/);
  });
});
