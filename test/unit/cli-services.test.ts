import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer } from '../../agent/src/api/server.js';
import type { ServicesInfo } from '../../agent/src/api/protocol.js';
import { parseFast } from '../../agent/src/cli/fast.js';
import { runServices, servicesJson } from '../../agent/src/cli/read.js';
import { silentLogger } from '../../agent/src/log/index.js';
import { SERVICE_NAME_LABEL, type EndpointSliceObject, type ServiceObject } from '../../agent/src/services/index.js';
import { ServiceReconciler } from '../../agent/src/services/reconciler.js';
import { FakeServiceTables } from '../../agent/src/services/tables.js';
import { servicesView } from '../../agent/src/services/view.js';

const node = { name: 'node-a', addresses: ['192.168.5.4'] };
const web: ServiceObject = {
  metadata: { name: 'web', namespace: 'shop' },
  spec: { type: 'NodePort', clusterIP: '10.96.0.10', sessionAffinity: 'ClientIP', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] },
};
const empty: ServiceObject = { metadata: { name: 'empty', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.11', ports: [{ port: 53, protocol: 'UDP' }] } };
const slice: EndpointSliceObject = {
  metadata: { name: 'web-1', namespace: 'shop', labels: { [SERVICE_NAME_LABEL]: 'web' } }, addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [
    { addresses: ['10.244.0.5'], conditions: { ready: true }, nodeName: 'node-a' },
    { addresses: ['10.244.0.6'], conditions: { ready: true }, nodeName: 'node-b' },
  ],
};

describe('podnet services', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-cli-services-'));
  const socket = join(dir, 'agent.sock');
  const tables = new FakeServiceTables();
  const r = new ServiceReconciler({ tables, defaultServiceCidrs: ['10.96.0.0/12'] });
  const api = new ApiServer(socket, silentLogger());
  let info: ServicesInfo;

  before(async () => {
    const out = r.apply({ services: [web, empty], slices: [slice], serviceCidrs: undefined }, node);
    tables.stats.set(tables.frontend('10.96.0.10', 80, 6)!.frontendId, { connections: 7n, packets: 70n, bytes: 7000n, noBackend: 0n });
    tables.stats.set(tables.frontend('10.96.0.11', 53, 17)!.frontendId, { connections: 0n, packets: 0n, bytes: 0n, noBackend: 3n });
    info = {
      enabled: true, synced: true, sourceError: null, ranges: tables.readRanges(),
      lastReconcile: { at: '2026-01-01T00:00:00.000Z', result: out.result, seconds: 0.0012, errors: [] },
      services: servicesView(tables, r.names()),
    };
    await api.start({ 'GET /v1/services': async () => ({ status: 200, body: info }) });
  });
  after(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows every Service from the maps with its frontends, backends, flags and counters as JSON', async () => {
    let text = '';
    const d = await runServices({ apiSocket: socket, output: 'json', out: (s) => { text += s; } });
    assert.deepEqual(JSON.parse(text), d);
    assert.deepEqual(d.services.map((s) => `${s.namespace}/${s.name}`), ['kube-system/empty', 'shop/web']);
    const port = d.services[1]!.ports[0]!;
    assert.equal(port.portName, 'http');
    assert.equal(port.scope, 'cluster');
    assert.deepEqual(port.frontends.map((f) => `${f.kind} ${f.address}:${f.port}/${f.protocol} ${f.flags.join(',')} ${f.affinitySeconds}`),
      ['ClusterIP 10.96.0.10:80/TCP affinity 10800', 'NodePort 192.168.5.4:30080/TCP affinity,nodeport 10800']);
    assert.equal(port.frontends[0]!.stats.connections, 7);
    assert.deepEqual(port.backends.map((b) => `${b.address}:${b.port} ${b.state} ${b.local}`).sort(), ['10.244.0.5:8080 ready true', '10.244.0.6:8080 ready false']);
    assert.deepEqual(port.problems, []);
    assert.deepEqual(d.services[0]!.ports[0]!.backends, []);
    assert.equal(d.services[0]!.ports[0]!.frontends[0]!.stats.noBackend, 3);
    assert.deepEqual(d.ranges, ['10.96.0.0/12']);
  });

  it('prints a table with one row per frontend and the shared backends once per port', async () => {
    let text = '';
    await runServices({ apiSocket: socket, output: 'table', out: (s) => { text += s; } });
    const lines = text.split('\n');
    assert.equal(lines[0], 'Services:  on, source synced');
    assert.equal(lines[1], 'Ranges:    10.96.0.0/12');
    assert.equal(lines[2], 'Reconcile: changed at 2026-01-01T00:00:00.000Z (1.2 ms)');
    assert.match(lines[4]!, /^SERVICE\s+PORT\s+FRONTEND\s+KIND\s+FLAGS\s+CONNS\s+NO-BACKEND\s+BACKENDS$/);
    assert.match(lines[5]!, /^kube-system\/empty\s+-\/UDP\s+10\.96\.0\.11:53\s+ClusterIP\s+-\s+0\s+3\s+none \(rejects\)$/);
    assert.match(lines[6]!, /^shop\/web\s+http\/TCP\s+10\.96\.0\.10:80\s+ClusterIP\s+affinity\s+7\s+0\s+10\.244\.0\.[56]:8080, 10\.244\.0\.[56]:8080$/);
    assert.match(lines[7]!, /^\s+192\.168\.5\.4:30080\s+NodePort\s+affinity,nodeport\s+0\s+0$/);
  });

  it('narrows to one namespace with --namespace', async () => {
    const d = await runServices({ apiSocket: socket, output: 'json', namespace: 'shop', out: () => {} });
    assert.deepEqual(d.services.map((s) => s.name), ['web']);
  });

  it('reports a slot that names no backend as a problem of its port', () => {
    const t = new FakeServiceTables();
    const rr = new ServiceReconciler({ tables: t, defaultServiceCidrs: [] });
    rr.apply({ services: [web], slices: [slice], serviceCidrs: undefined }, node);
    t.backends.delete([...t.backends.keys()][0]!);
    const v = servicesView(t, rr.names());
    assert.match(v[0]!.ports[0]!.problems.join(';'), /slot \d of group \d+ names backend \d+, which does not exist/);
  });

  it('fills fields an older agent leaves out, so the JSON shape is stable', () => {
    assert.deepEqual(servicesJson({}), { enabled: false, synced: false, sourceError: null, ranges: [], lastReconcile: null, services: [] });
  });

  it('takes the fast path for plain flags', () => {
    assert.deepEqual(parseFast(['services', '-o', 'json', '-n', 'shop'], {}), { command: 'services', apiSocket: '/run/podnet/agent.sock', output: 'json', namespace: 'shop' });
    assert.equal(parseFast(['services', '--state', 'ready'], {}), undefined);
  });
});
