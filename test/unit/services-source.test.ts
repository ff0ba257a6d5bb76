import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PackedEndpoints, slimSlice, type EndpointObject, type EndpointSliceObject } from '../../agent/src/services/index.js';

describe('packed endpoints', () => {
  it('yields every endpoint as it was given: several addresses, none, no conditions, no node', () => {
    const given: EndpointObject[] = [
      { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-a' },
      { addresses: ['10.0.0.2', '10.0.0.3'], nodeName: 'node-b' },
      { addresses: [], conditions: { ready: false } },
      { addresses: ['10.0.0.4'], conditions: { ready: null, terminating: true }, nodeName: 'node-a' },
      { addresses: ['10.0.0.5'] },
    ];
    const packed = new PackedEndpoints(given);
    assert.equal(packed.length, 5);
    assert.deepEqual([...packed], given);
    assert.deepEqual([...packed], given, 'iterating twice gives the same endpoints');
    assert.deepEqual(JSON.parse(JSON.stringify({ endpoints: packed })), { endpoints: given });
  });

  it('keeps all 64 combinations of ready, serving and terminating apart', () => {
    const values = [true, false, null, undefined] as const;
    const given: EndpointObject[] = [];
    for (const ready of values) for (const serving of values) for (const terminating of values) {
      const conditions: NonNullable<EndpointObject['conditions']> = {};
      if (ready !== undefined) conditions.ready = ready;
      if (serving !== undefined) conditions.serving = serving;
      if (terminating !== undefined) conditions.terminating = terminating;
      given.push({ addresses: [`10.1.0.${given.length + 1}`], conditions, nodeName: `node-${given.length % 7}` });
    }
    assert.equal(given.length, 64);
    assert.deepEqual([...new PackedEndpoints(given)], given);
  });

  it('refuses an endpoint with more addresses than it can count', () => {
    const addresses = Array.from({ length: 256 }, (_, i) => `10.2.${i >> 8}.${i & 255}`);
    assert.throws(() => new PackedEndpoints([{ addresses }]), /256 addresses \(at most 255\)/);
  });

  it('is what slimSlice keeps of an API EndpointSlice: addresses, conditions and nodeName of each endpoint', () => {
    const api = {
      metadata: { name: 'web-x', namespace: 'shop', resourceVersion: '7', labels: { 'kubernetes.io/service-name': 'web', app: 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
      endpoints: [
        { addresses: ['10.244.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1', zone: 'z', targetRef: { kind: 'Pod', name: 'web-1' } },
        { addresses: ['10.244.0.6'], conditions: { ready: false, serving: true, terminating: true }, hostname: 'h' },
      ],
    } as unknown as EndpointSliceObject;
    const slim = slimSlice(api);
    assert.ok(slim.endpoints instanceof PackedEndpoints);
    assert.deepEqual([...slim.endpoints!], [
      { addresses: ['10.244.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1' },
      { addresses: ['10.244.0.6'], conditions: { ready: false, serving: true, terminating: true } },
    ]);
    assert.deepEqual(slim.metadata.labels, { 'kubernetes.io/service-name': 'web' });
  });
});
