import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_AFFINITY_SECONDS, SERVICE_NAME_LABEL, desiredFrontends, diffFrontends, frontendKey,
  type EndpointObject, type EndpointSliceObject, type ServiceObject,
} from '../../agent/src/services/index.js';

const node = { name: 'node-a', addresses: ['10.220.0.1', '192.168.5.4'] };

function svc(name: string, spec: NonNullable<ServiceObject['spec']>, status?: ServiceObject['status']): ServiceObject {
  return { metadata: { name, namespace: 'shop' }, spec, ...(status ? { status } : {}) };
}

type Ep = EndpointObject;
function slice(service: string, ports: EndpointSliceObject['ports'], endpoints: Ep[], name = `${service}-x`): EndpointSliceObject {
  return { metadata: { name, namespace: 'shop', labels: { [SERVICE_NAME_LABEL]: service } }, addressType: 'IPv4', ports, endpoints };
}

const ep = (ip: string, conditions: Ep['conditions'] = { ready: true }, nodeName = 'node-a'): Ep => ({ addresses: [ip], conditions, nodeName });
const backends = (fs: ReturnType<typeof desiredFrontends>, address: string, port: number, protocol = 'TCP'): string[] =>
  fs.find((f) => f.address === address && f.port === port && f.protocol === protocol)?.backends.map((b) => `${b.ip}:${b.port}${b.state === 'terminating' ? ' (terminating)' : ''}`) ?? ['no such frontend'];

describe('desired frontends from Services and EndpointSlices', () => {
  it('gives a ClusterIP each port, with the slice port of the same name as the target (named target ports need no pod lookup)', () => {
    const fs = desiredFrontends(
      [svc('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'metrics', port: 9100, protocol: 'TCP' }] })],
      [slice('web', [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'metrics', port: 9000, protocol: 'TCP' }], [ep('10.244.0.5'), ep('10.244.0.6')])],
      node,
    );
    assert.deepEqual(fs.map(frontendKey), ['10.96.0.10:80/TCP', '10.96.0.10:9100/TCP']);
    assert.deepEqual(backends(fs, '10.96.0.10', 80), ['10.244.0.5:8080', '10.244.0.6:8080']);
    assert.deepEqual(backends(fs, '10.96.0.10', 9100), ['10.244.0.5:9000', '10.244.0.6:9000']);
    assert.equal(fs[0]!.service, 'shop/web');
    assert.equal(fs[0]!.kind, 'ClusterIP');
  });

  it('keeps TCP and UDP on the same port apart (DNS 53)', () => {
    const fs = desiredFrontends(
      [svc('dns', { clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] })],
      [slice('dns', [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }], [ep('10.244.0.9')])],
      node,
    );
    assert.deepEqual(fs.map(frontendKey), ['10.96.0.10:53/TCP', '10.96.0.10:53/UDP']);
    assert.deepEqual(backends(fs, '10.96.0.10', 53, 'UDP'), ['10.244.0.9:53']);
    assert.deepEqual(backends(fs, '10.96.0.10', 53, 'TCP'), ['10.244.0.9:53']);
  });

  it('adds NodePort on every node address, externalIPs and LoadBalancer ingress IPs', () => {
    const fs = desiredFrontends(
      [svc('lb', { type: 'LoadBalancer', clusterIP: '10.96.1.1', externalIPs: ['203.0.113.7'], ports: [{ port: 443, nodePort: 30443 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.2' }] } })],
      [slice('lb', [{ port: 8443 }], [ep('10.244.0.5')])],
      node,
    );
    assert.deepEqual(fs.map((f) => `${f.kind} ${frontendKey(f)}`).sort(), [
      'ClusterIP 10.96.1.1:443/TCP',
      'ExternalIP 203.0.113.7:443/TCP',
      'LoadBalancer 198.51.100.2:443/TCP',
      'NodePort 10.220.0.1:30443/TCP',
      'NodePort 192.168.5.4:30443/TCP',
    ]);
    for (const f of fs) assert.deepEqual(f.backends.map((b) => `${b.ip}:${b.port}`), ['10.244.0.5:8443']);
  });

  it('uses serving-terminating endpoints only when no ready one is left, and never terminating ones that stopped serving', () => {
    const service = svc('roll', { clusterIP: '10.96.2.2', ports: [{ port: 80 }] });
    const mixed = desiredFrontends([service], [slice('roll', [{ port: 80 }], [
      ep('10.244.0.1', { ready: true }),
      ep('10.244.0.2', { ready: false, serving: true, terminating: true }),
      ep('10.244.0.3', { ready: false, serving: false, terminating: true }),
    ])], node);
    assert.deepEqual(backends(mixed, '10.96.2.2', 80), ['10.244.0.1:80']);
    const draining = desiredFrontends([service], [slice('roll', [{ port: 80 }], [
      ep('10.244.0.2', { ready: false, serving: true, terminating: true }),
      ep('10.244.0.3', { ready: false, serving: false, terminating: true }),
    ])], node);
    assert.deepEqual(backends(draining, '10.96.2.2', 80), ['10.244.0.2:80 (terminating)']);
    const gone = desiredFrontends([service], [slice('roll', [{ port: 80 }], [ep('10.244.0.3', { ready: false, serving: false, terminating: true })])], node);
    assert.deepEqual(backends(gone, '10.96.2.2', 80), [], 'a frontend without backends stays, so the datapath can reject');
  });

  it('treats an endpoint with unset conditions as ready, as the EndpointSlice API defines', () => {
    const fs = desiredFrontends([svc('a', { clusterIP: '10.96.3.3', ports: [{ port: 80 }] })], [slice('a', [{ port: 80 }], [{ addresses: ['10.244.0.8'] }])], node);
    assert.deepEqual(backends(fs, '10.96.3.3', 80), ['10.244.0.8:80']);
  });

  it('limits external frontends to this node\'s endpoints with externalTrafficPolicy Local, and the ClusterIP with internalTrafficPolicy Local', () => {
    const eps = [ep('10.244.0.5', { ready: true }, 'node-a'), ep('10.244.1.5', { ready: true }, 'node-b')];
    const ext = desiredFrontends([svc('e', { type: 'NodePort', clusterIP: '10.96.4.4', externalTrafficPolicy: 'Local', ports: [{ port: 80, nodePort: 30080 }] })], [slice('e', [{ port: 80 }], eps)], node);
    assert.deepEqual(backends(ext, '10.220.0.1', 30080), ['10.244.0.5:80']);
    assert.equal(ext.find((f) => f.kind === 'NodePort')!.localOnly, true);
    assert.deepEqual(backends(ext, '10.96.4.4', 80), ['10.244.0.5:80', '10.244.1.5:80'], 'the ClusterIP keeps every endpoint');
    const int = desiredFrontends([svc('i', { clusterIP: '10.96.5.5', internalTrafficPolicy: 'Local', ports: [{ port: 80 }] })], [slice('i', [{ port: 80 }], eps)], node);
    assert.deepEqual(backends(int, '10.96.5.5', 80), ['10.244.0.5:80']);
  });

  it('carries ClientIP affinity with its timeout, 10800 s by default', () => {
    const fs = desiredFrontends([
      svc('s1', { clusterIP: '10.96.6.1', sessionAffinity: 'ClientIP', ports: [{ port: 80 }] }),
      svc('s2', { clusterIP: '10.96.6.2', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }, ports: [{ port: 80 }] }),
      svc('s3', { clusterIP: '10.96.6.3', ports: [{ port: 80 }] }),
    ], [], node);
    assert.deepEqual(fs.map((f) => f.affinitySeconds), [DEFAULT_AFFINITY_SECONDS, 60, undefined]);
  });

  it('gives headless and ExternalName Services no frontend, and ignores slices of other Services and namespaces', () => {
    const fs = desiredFrontends([
      svc('headless', { clusterIP: 'None', ports: [{ port: 80 }] }),
      svc('ext', { type: 'ExternalName', ports: [{ port: 80 }] }),
      svc('web', { clusterIP: '10.96.7.7', ports: [{ port: 80 }] }),
    ], [
      slice('other', [{ port: 80 }], [ep('10.244.0.1')]),
      { ...slice('web', [{ port: 80 }], [ep('10.244.0.2')]), metadata: { name: 'web-y', namespace: 'elsewhere', labels: { [SERVICE_NAME_LABEL]: 'web' } } },
      slice('web', [{ port: 80 }], [ep('10.244.0.3')]),
    ], node);
    assert.deepEqual(fs.map(frontendKey), ['10.96.7.7:80/TCP']);
    assert.deepEqual(backends(fs, '10.96.7.7', 80), ['10.244.0.3:80']);
  });

  it('merges the slices of one Service and lists a backend once', () => {
    const fs = desiredFrontends([svc('big', { clusterIP: '10.96.8.8', ports: [{ port: 80 }] })], [
      slice('big', [{ port: 80 }], [ep('10.244.0.2'), ep('10.244.0.1')], 'big-1'),
      slice('big', [{ port: 80 }], [ep('10.244.0.3'), ep('10.244.0.1')], 'big-2'),
    ], node);
    assert.deepEqual(backends(fs, '10.96.8.8', 80), ['10.244.0.1:80', '10.244.0.2:80', '10.244.0.3:80']);
  });
});

describe('the difference between two desired states', () => {
  const services = [svc('web', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] }), svc('api', { clusterIP: '10.96.0.11', ports: [{ port: 80 }] })];
  const before = desiredFrontends(services, [slice('web', [{ port: 80 }], [ep('10.244.0.5')]), slice('api', [{ port: 80 }], [ep('10.244.0.6')])], node);

  it('is empty for the same input', () => {
    assert.deepEqual(diffFrontends(before, desiredFrontends(services, [slice('web', [{ port: 80 }], [ep('10.244.0.5')]), slice('api', [{ port: 80 }], [ep('10.244.0.6')])], node)), { add: [], update: [], remove: [] });
  });

  it('names one update when one Service\'s backends change, an add for a new Service and a remove for a deleted one', () => {
    const after = desiredFrontends(
      [services[0]!, svc('new', { clusterIP: '10.96.0.12', ports: [{ port: 81 }] })],
      [slice('web', [{ port: 80 }], [ep('10.244.0.5'), ep('10.244.0.7')])],
      node,
    );
    const d = diffFrontends(before, after);
    assert.deepEqual(d.add.map(frontendKey), ['10.96.0.12:81/TCP']);
    assert.deepEqual(d.update.map(frontendKey), ['10.96.0.10:80/TCP']);
    assert.deepEqual(d.update[0]!.backends.map((b) => b.ip), ['10.244.0.5', '10.244.0.7']);
    assert.deepEqual(d.remove.map(frontendKey), ['10.96.0.11:80/TCP']);
  });
});
