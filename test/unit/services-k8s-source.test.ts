/**
 * The Kubernetes Services source against the in-memory API server
 * (test/lib/fake-kube.ts): the first snapshot after every informer listed,
 * updates coalesced into one snapshot, deletions missed during a 410 Gone
 * seen after the relist, only the fields the model reads kept, and the
 * ServiceCIDR API found at v1 or v1beta1 or known to be absent without an
 * error loop.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeServiceSource, desiredFrontends, type ServiceSnapshot } from '../../agent/src/services/index.js';
import type { KubeObject } from '../../agent/src/k8s/index.js';
import { silentLogger } from '../../agent/src/log/index.js';
import { FakeKube, serviceCidrObject, serviceObject, sliceObject } from '../lib/fake-kube.js';

const fast = { informer: { backoffInitialMs: 5, backoffMaxMs: 40, random: () => 0.5, watchTimeoutSeconds: 100 }, coalesceMs: 10 };

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(2);
  }
}

function started(kube: FakeKube) {
  const snaps: ServiceSnapshot[] = [];
  const src = new KubeServiceSource(kube, silentLogger(), fast);
  src.start((s) => snaps.push(s));
  const last = (): ServiceSnapshot => snaps.at(-1)!;
  const names = (): string[] => last().services.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`).sort();
  return { src, snaps, last, names };
}

/** A kube with the ServiceCIDR API at neither version. */
function kubeWithoutCidrs(): FakeKube {
  const kube = new FakeKube();
  kube.unserved.add('networking.k8s.io/v1/servicecidrs');
  kube.unserved.add('networking.k8s.io/v1beta1/servicecidrs');
  return kube;
}

describe('KubeServiceSource', () => {
  it('delivers one first snapshot of every Service and EndpointSlice once all informers listed', async () => {
    const kube = kubeWithoutCidrs();
    kube.put('services', serviceObject('default', 'web', '10.96.0.10'));
    kube.put('services', serviceObject('shop', 'web', '10.96.0.11'));
    kube.put('endpointslices', sliceObject('default', 'web-1', 'web', ['10.244.0.5', '10.244.0.6'], 8080));
    const w = started(kube);
    try {
      assert.equal(w.src.synced, false);
      await until('the first snapshot', () => w.snaps.length > 0);
      await sleep(30);
      assert.equal(w.snaps.length, 1, 'the list events of all informers are one snapshot');
      assert.equal(w.src.synced, true);
      assert.deepEqual(w.names(), ['default/web', 'shop/web'], 'namespaced objects of the same name are two');
      assert.equal(w.last().slices.length, 1);
      assert.equal(w.last().serviceCidrs, undefined);
      assert.equal(w.src.lastError, undefined);
      const fe = desiredFrontends(w.last().services, w.last().slices, { name: 'node-1', addresses: [] });
      assert.deepEqual(fe.filter((f) => f.service === 'default/web').map((f) => [f.address, f.port, f.backends.map((b) => `${b.ip}:${b.port}`)]), [['10.96.0.10', 80, ['10.244.0.5:8080', '10.244.0.6:8080']]]);
      assert.deepEqual(w.src.stats()['resources'], ['services', 'endpointslices']);
      assert.equal(w.src.stats()['serviceCidrApi'], 'absent');
      assert.equal(w.src.stats()['endpoints'], 2);
    } finally {
      await w.src.stop();
    }
  });

  it('keeps only the fields the model reads, in the informers\' stores too', async () => {
    const kube = kubeWithoutCidrs();
    kube.put('services', serviceObject('default', 'web', '10.96.0.10', [80, 443], { externalTrafficPolicy: 'Local', type: 'NodePort' }));
    kube.put('endpointslices', sliceObject('default', 'web-1', 'web', ['10.244.0.5']));
    const w = started(kube);
    try {
      await until('the first snapshot', () => w.snaps.length > 0);
      const s = w.last().services[0] as KubeObject;
      assert.deepEqual(Object.keys(s).sort(), ['metadata', 'spec']);
      assert.deepEqual(Object.keys(s.metadata!).sort(), ['name', 'namespace', 'resourceVersion']);
      assert.deepEqual(s['spec'], {
        type: 'NodePort', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], externalTrafficPolicy: 'Local',
        ports: [{ name: 'p0', protocol: 'TCP', port: 80 }, { name: 'p1', protocol: 'TCP', port: 443 }],
      });
      const sl = w.last().slices[0]!;
      assert.deepEqual([...sl.endpoints!], [{ addresses: ['10.244.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1' }]);
      assert.deepEqual(Object.keys(sl.metadata!).sort(), ['labels', 'name', 'namespace', 'resourceVersion']);
    } finally {
      await w.src.stop();
    }
  });

  it('coalesces a burst of watch events into one snapshot with all of them', async () => {
    const kube = kubeWithoutCidrs();
    const w = started(kube);
    try {
      await until('the first snapshot', () => w.snaps.length === 1);
      assert.deepEqual(w.last().services, []);
      await until('watches open', () => kube.openWatches('services') === 1 && kube.openWatches('endpointslices') === 1);
      for (let i = 0; i < 50; i++) kube.put('services', serviceObject('default', `s${i}`, `10.96.1.${i}`));
      kube.put('endpointslices', sliceObject('default', 's0-1', 's0', ['10.244.0.9']));
      kube.remove('services', 'default/s49');
      await until('a second snapshot', () => w.snaps.length >= 2);
      await sleep(40);
      assert.equal(w.snaps.length, 2, 'one snapshot for the whole burst');
      assert.equal(w.last().services.length, 49);
      assert.equal(w.last().slices.length, 1);
      assert.ok(!w.names().includes('default/s49'));
    } finally {
      await w.src.stop();
    }
  });

  it('relists after 410 Gone and drops what was deleted while its watch was gone', async () => {
    const kube = kubeWithoutCidrs();
    kube.put('services', serviceObject('default', 'a', '10.96.0.1'));
    kube.put('services', serviceObject('default', 'b', '10.96.0.2'));
    const w = started(kube);
    try {
      await until('the first snapshot', () => w.snaps.length === 1);
      await until('watches open', () => kube.openWatches('services') === 1);
      // The connection drops; while it is down b is deleted, c created, and
      // the server compacts its history: the resumed watch gets 410 Gone.
      kube.dropWatches(new Error('connection reset'));
      kube.remove('services', 'default/b');
      kube.put('services', serviceObject('default', 'c', '10.96.0.3'));
      kube.compact();
      await until('a snapshot without b', () => w.names().join() === 'default/a,default/c');
      assert.ok((w.src.stats()['relists'] as number) >= 1);
      // And the ERROR event form of 410 on an open watch.
      await until('watches open again', () => kube.openWatches('services') === 1);
      kube.expireWatches();
      kube.remove('services', 'default/a');
      await until('a snapshot without a', () => w.names().join() === 'default/c');
      assert.ok((w.src.stats()['relists'] as number) >= 2);
    } finally {
      await w.src.stop();
    }
  });

  it('reads service CIDRs from the v1 ServiceCIDR API and follows their changes', async () => {
    const kube = new FakeKube();
    kube.put('servicecidrs', serviceCidrObject('kubernetes', ['10.96.0.0/16']));
    const w = started(kube);
    try {
      await until('the first snapshot', () => w.snaps.length > 0);
      assert.deepEqual(w.last().serviceCidrs, ['10.96.0.0/16']);
      assert.equal(w.src.stats()['serviceCidrApi'], 'networking.k8s.io/v1');
      await until('the servicecidrs watch', () => kube.openWatches('servicecidrs') === 1);
      kube.put('servicecidrs', serviceCidrObject('extra', ['10.97.0.0/16', '10.96.0.0/16']));
      await until('the second ServiceCIDR', () => w.last().serviceCidrs?.length === 2);
      assert.deepEqual(w.last().serviceCidrs, ['10.96.0.0/16', '10.97.0.0/16'], 'sorted, without duplicates');
    } finally {
      await w.src.stop();
    }
  });

  it('falls back to v1beta1 ServiceCIDRs when v1 is not served', async () => {
    const kube = new FakeKube();
    kube.unserved.add('networking.k8s.io/v1/servicecidrs');
    kube.put('servicecidrs', serviceCidrObject('kubernetes', ['10.96.0.0/12']));
    const w = started(kube);
    try {
      await until('the first snapshot', () => w.snaps.length > 0);
      assert.deepEqual(w.last().serviceCidrs, ['10.96.0.0/12']);
      assert.equal(w.src.stats()['serviceCidrApi'], 'networking.k8s.io/v1beta1');
    } finally {
      await w.src.stop();
    }
  });

  it('asks once per version when the server has no ServiceCIDR API, and reports no error', async () => {
    const kube = kubeWithoutCidrs();
    const w = started(kube);
    try {
      await until('the first snapshot', () => w.snaps.length > 0);
      await sleep(100);
      assert.equal(kube.listCalls.get('networking.k8s.io/v1/servicecidrs'), 1);
      assert.equal(kube.listCalls.get('networking.k8s.io/v1beta1/servicecidrs'), 1);
      assert.equal(w.src.lastError, undefined);
      assert.equal(w.src.stats()['errors'], 0);
    } finally {
      await w.src.stop();
    }
  });

  it('treats a forbidden ServiceCIDR list as no API, and retries a failing probe until it answers', async () => {
    const forbidden = new FakeKube();
    forbidden.failNextList.set('servicecidrs', [403]);
    const a = started(forbidden);
    const flaky = new FakeKube();
    flaky.failNextList.set('servicecidrs', [503, 503]);
    flaky.put('servicecidrs', serviceCidrObject('kubernetes', ['10.96.0.0/16']));
    const b = started(flaky);
    try {
      await until('the first snapshot with 403', () => a.snaps.length > 0);
      assert.equal(a.last().serviceCidrs, undefined);
      assert.equal(a.src.stats()['serviceCidrApi'], 'forbidden');
      await until('the first snapshot after two 503s', () => b.snaps.length > 0);
      assert.deepEqual(b.last().serviceCidrs, ['10.96.0.0/16']);
      assert.equal(b.src.stats()['errors'], 2);
      assert.match(b.src.lastError ?? '', /^probe networking\.k8s\.io\/v1 servicecidrs: .*status 503$/);
    } finally {
      await a.src.stop();
      await b.src.stop();
    }
  });

  it('delivers nothing until the first lists succeed, and nothing after stop()', async () => {
    const kube = kubeWithoutCidrs();
    kube.failNextList.set('services', [503, 503]);
    kube.put('services', serviceObject('default', 'a', '10.96.0.1'));
    const w = started(kube);
    try {
      await until('the first snapshot', () => w.snaps.length === 1);
      assert.deepEqual(w.names(), ['default/a']);
      assert.match(w.src.lastError ?? '', /status 503/, 'the failed lists are reported');
    } finally {
      await w.src.stop();
    }
    kube.put('services', serviceObject('default', 'b', '10.96.0.2'));
    await sleep(40);
    assert.equal(w.snaps.length, 1);
  });
});
