import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../agent/src/log/index.js';
import { ServiceController, nodePortAddresses } from '../../agent/src/services/index.js';
import { FakeServiceTables } from '../../agent/src/services/tables.js';
import { FakeSource, WEB as web } from '../lib/fake-service-source.js';


describe('the service controller', () => {
  it('applies each snapshot the source delivers and answers the API from the maps', async () => {
    const tables = new FakeServiceTables();
    const source = new FakeSource();
    const c = new ServiceController({ tables, source, nodeName: 'n', addresses: () => [], defaultServiceCidrs: ['10.96.0.0/12'], log: silentLogger() });
    c.start();
    assert.equal(c.healthy(), false, 'not healthy before the first snapshot');
    source.push(web);
    await c.settled();
    assert.deepEqual(tables.backendsOf('10.96.0.10', 80, 6), ['10.244.0.5:8080']);
    const info = c.info();
    assert.equal(info.enabled, true);
    assert.equal(info.lastReconcile?.result, 'changed');
    assert.deepEqual(info.services.map((s) => `${s.namespace}/${s.name}`), ['shop/web']);
    assert.equal(c.healthy(), true);
    assert.deepEqual(c.mapFill().find((m) => m.map === 'pn_services'), { map: 'pn_services', entries: 1, capacity: 65536 });
    await c.stop();
    assert.equal(source.stopped, true);
  });

  it('repairs an entry removed behind its back on the periodic resync', async () => {
    const tables = new FakeServiceTables();
    const source = new FakeSource();
    const c = new ServiceController({ tables, source, nodeName: 'n', addresses: () => [], defaultServiceCidrs: [], log: silentLogger(), verifyIntervalMs: 0 });
    c.start();
    source.push(web);
    tables.frontends.clear();
    await c.resync();
    assert.deepEqual(tables.backendsOf('10.96.0.10', 80, 6), ['10.244.0.5:8080']);
    await c.stop();
  });

  it('checks the maps first an interval after the first sync, and says how many entries the check read', async () => {
    const tables = new FakeServiceTables();
    const source = new FakeSource();
    const seen: number[] = [];
    const c = new ServiceController({ tables, source, nodeName: 'n', addresses: () => [], defaultServiceCidrs: ['10.96.0.0/12'], log: silentLogger(), verifyIntervalMs: 60_000, observe: (o) => seen.push(o.read) });
    c.start();
    source.push(web);
    await c.settled();
    tables.frontends.clear();
    await c.resync();
    assert.equal(tables.frontends.size, 0, 'a resync right after the first sync reads nothing back');
    assert.deepEqual(seen, [0], 'the first pass started from empty maps: nothing read back');
    (c as unknown as { lastVerify: number }).lastVerify -= 60_000;
    await c.resync();
    assert.deepEqual(tables.backendsOf('10.96.0.10', 80, 6), ['10.244.0.5:8080'], 'the check an interval later repairs the map');
    assert.ok(seen.length === 2 && seen[1]! > 0, `the checking pass reports what it read back (${seen.join(', ')})`);
    await c.stop();
  });

  it('sweeps idle conntrack entries by the timeouts it was given, counts them, and refreshes the pn_ct fill it reports', async () => {
    const tables = new FakeServiceTables();
    const source = new FakeSource();
    const timeouts = { tcp: 100, syn: 20, closing: 5, other: 30 };
    const c = new ServiceController({ tables, source, nodeName: 'n', addresses: () => [], defaultServiceCidrs: ['10.96.0.0/12'], log: silentLogger(), ctTimeouts: timeouts });
    c.start();
    source.push(web);
    await c.settled();
    const now = 1_000_000n * 1_000_000_000n;
    const ago = (sec: number): bigint => now - BigInt(sec) * 1_000_000_000n;
    tables.ct.set('answered tcp, idle 90 s', { proto: 6, flags: 0x4, lastSeenNs: ago(90) });
    tables.ct.set('closing tcp, idle 6 s', { proto: 6, flags: 0x6, lastSeenNs: ago(6) });
    tables.ct.set('syn only, idle 25 s', { proto: 6, flags: 0, lastSeenNs: ago(25) });
    tables.ct.set('udp, idle 25 s', { proto: 17, flags: 0, lastSeenNs: ago(25) });
    assert.equal(c.mapFill().find((m) => m.map === 'pn_ct')?.entries, 0, 'counted before the entries came (and cached)');
    const st = c.sweepConntrack(now);
    assert.deepEqual([...tables.ct.keys()].sort(), ['answered tcp, idle 90 s', 'udp, idle 25 s']);
    assert.equal(st.sweeps, 1);
    assert.equal(st.removed, 2);
    assert.equal(st.last?.scanned, 4);
    assert.equal(c.mapFill().find((m) => m.map === 'pn_ct')?.entries, 2, 'the sweep refreshes the cached count');
    c.sweepConntrack(now + 10n * 1_000_000_000n);
    assert.deepEqual([...tables.ct.keys()], ['answered tcp, idle 90 s']);
    assert.equal(c.conntrackSweeps().removed, 3);
    await c.stop();
  });

  it('empties the service maps an earlier agent filled when Services are off, ranges included', async () => {
    const tables = new FakeServiceTables();
    const on = new ServiceController({ tables, source: new FakeSource(), nodeName: 'n', addresses: () => [], defaultServiceCidrs: ['10.96.0.0/12'], log: silentLogger() });
    on.start();
    (on as unknown as { d: { source: FakeSource } }).d.source.push(web);
    await on.stop();
    assert.ok(tables.frontends.size > 0 && tables.ranges.size > 0);
    const off = new ServiceController({ tables, source: undefined, nodeName: 'n', addresses: () => [], defaultServiceCidrs: ['10.96.0.0/12'], log: silentLogger() });
    off.start();
    assert.equal(off.enabled, false);
    assert.equal(tables.frontends.size + tables.slots.size + tables.backends.size + tables.ranges.size, 0);
    await off.stop();
  });
});

describe('NodePort addresses', () => {
  it('are every IPv4 address of the node but loopback and link-local by default', () => {
    assert.deepEqual(nodePortAddresses(['192.168.5.4', '127.0.0.1', '169.254.1.1', 'fe80::1', '10.220.0.1', '192.168.5.4'], undefined), ['10.220.0.1', '192.168.5.4']);
  });
  it('are narrowed by CIDRs, which may include loopback', () => {
    assert.deepEqual(nodePortAddresses(['192.168.5.4', '127.0.0.1', '10.220.0.1'], ['10.220.0.0/29', '127.0.0.0/8']), ['10.220.0.1', '127.0.0.1']);
    assert.deepEqual(nodePortAddresses(['192.168.5.4'], ['0.0.0.0/0']), ['192.168.5.4']);
  });
});
