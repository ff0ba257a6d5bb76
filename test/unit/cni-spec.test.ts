import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CniErrorCode } from '../../agent/src/api/protocol.js';
import {
  CniError,
  ErrorCode,
  SUPPORTED_VERSIONS,
  compareVersions,
  convertResult,
  mergeResults,
  normaliseResult,
  versionInfo,
  type Result,
} from '../../cni/src/spec.js';

const ours: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'pnhost0', mac: '6e:00:00:00:00:01', mtu: 1450 },
    { name: 'eth0', mac: '0a:00:00:00:00:02', mtu: 1450, sandbox: '/var/run/netns/p', socketPath: '/run/x.sock', pciID: '0000:00:01.0' },
  ],
  ips: [
    { address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 1 },
    { address: 'fd00::5/128', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 }],
  dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
};

describe('CNI error codes', () => {
  it('are the agent protocol\'s codes, one definition for both sides', () => {
    assert.equal(ErrorCode, CniErrorCode);
    assert.equal(ErrorCode.TryAgainLater, 11);
    assert.equal(ErrorCode.NotReady, 50);
  });

  it('print as the spec error object with the given cniVersion', () => {
    const e = new CniError(7, 'invalid config mtu: 12 is not an integer in 68..65535', 'more');
    assert.deepEqual(e.toJSON('0.4.0'), { cniVersion: '0.4.0', code: 7, msg: 'invalid config mtu: 12 is not an integer in 68..65535', details: 'more' });
    assert.deepEqual(new CniError(4, 'x').toJSON(), { cniVersion: '1.1.0', code: 4, msg: 'x' });
  });
});

describe('CNI versions', () => {
  it('VERSION lists 0.4.0, 1.0.0 and 1.1.0 and speaks 1.1.0', () => {
    assert.deepEqual(versionInfo(), { cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });

  it('orders versions oldest first', () => {
    assert.ok(compareVersions('0.4.0', '1.0.0') < 0);
    assert.ok(compareVersions('1.1.0', '1.0.0') > 0);
    assert.equal(compareVersions('1.0.0', '1.0.0'), 0);
    assert.deepEqual([...SUPPORTED_VERSIONS], ['0.4.0', '1.0.0', '1.1.0']);
  });
});

describe('convertResult', () => {
  it('keeps a 1.1.0 result whole, including the fields 1.1.0 added', () => {
    assert.deepEqual(convertResult(ours, '1.1.0'), {
      cniVersion: '1.1.0',
      interfaces: ours.interfaces,
      ips: ours.ips,
      routes: ours.routes,
      dns: ours.dns,
    });
  });

  it('drops the 1.1.0-only interface and route fields for 1.0.0', () => {
    assert.deepEqual(convertResult(ours, '1.0.0'), {
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'pnhost0', mac: '6e:00:00:00:00:01' },
        { name: 'eth0', mac: '0a:00:00:00:00:02', sandbox: '/var/run/netns/p' },
      ],
      ips: [
        { address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 1 },
        { address: 'fd00::5/128', interface: 1 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
      dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
    });
  });

  it('adds version "4" or "6" to each IP for 0.4.0 and keeps the interface index', () => {
    const r = convertResult(ours, '0.4.0');
    assert.equal(r['cniVersion'], '0.4.0');
    assert.deepEqual(r['ips'], [
      { version: '4', address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 1 },
      { version: '6', address: 'fd00::5/128', interface: 1 },
    ]);
    assert.deepEqual(r['interfaces'], [
      { name: 'pnhost0', mac: '6e:00:00:00:00:01' },
      { name: 'eth0', mac: '0a:00:00:00:00:02', sandbox: '/var/run/netns/p' },
    ]);
    assert.deepEqual(r['routes'], [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
  });
});

describe('normaliseResult', () => {
  it('reads a 0.4.0 result into 1.x shape, dropping the per-IP version', () => {
    const r = normaliseResult(
      {
        cniVersion: '0.4.0',
        interfaces: [{ name: 'eth0', mac: '0a:00:00:00:00:09', sandbox: '/proc/1/ns/net' }],
        ips: [{ version: '4', address: '192.168.1.9/24', gateway: '192.168.1.1', interface: 0 }],
        routes: [{ dst: '0.0.0.0/0' }],
        dns: {},
      },
      'prevResult',
    );
    assert.deepEqual(r, {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', mac: '0a:00:00:00:00:09', sandbox: '/proc/1/ns/net' }],
      ips: [{ address: '192.168.1.9/24', gateway: '192.168.1.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: {},
    });
  });

  it('treats missing lists as empty', () => {
    assert.deepEqual(normaliseResult({ cniVersion: '1.0.0' }, 'prevResult'), { cniVersion: '1.1.0', interfaces: [], ips: [], routes: [], dns: {} });
  });

  it('rejects a malformed result with code 7 naming the field', () => {
    const cases: Array<[unknown, RegExp]> = [
      ['text', /prevResult: not an object/],
      [{ interfaces: {} }, /prevResult\.interfaces: not a list/],
      [{ interfaces: [{ mac: 'x' }] }, /prevResult\.interfaces\[0\]\.name/],
      [{ ips: [{ address: '10.0.0.1' }] }, /prevResult\.ips\[0\]\.address/],
      [{ ips: [{ address: '10.0.0.1/32', interface: 2 }] }, /prevResult\.ips\[0\]\.interface: index 2/],
      [{ routes: [{ gw: '1.1.1.1' }] }, /prevResult\.routes\[0\]\.dst/],
      [{ dns: { nameservers: 'x' } }, /prevResult\.dns\.nameservers/],
    ];
    for (const [raw, msg] of cases) {
      assert.throws(
        () => normaliseResult(raw, 'prevResult'),
        (e: unknown) => e instanceof CniError && e.cniCode === 7 && msg.test(e.message),
        JSON.stringify(raw),
      );
    }
  });

  it('uses the code it is given for a malformed agent answer', () => {
    assert.throws(() => normaliseResult([], 'agent result', 999), (e: unknown) => e instanceof CniError && e.cniCode === 999 && /agent result/.test(e.message));
  });
});

describe('mergeResults', () => {
  it('keeps the earlier plugin entries first and shifts podnet interface indexes past them', () => {
    const prev: Result = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'lo0' }, { name: 'net1', sandbox: '/var/run/netns/p' }],
      ips: [{ address: '192.168.5.2/24', interface: 1 }],
      routes: [{ dst: '192.168.0.0/16' }],
      dns: { nameservers: ['192.168.5.1', '10.96.0.10'], domain: 'example.internal' },
    };
    const m = mergeResults(prev, ours);
    assert.deepEqual(
      m.interfaces.map((i) => i.name),
      ['lo0', 'net1', 'pnhost0', 'eth0'],
    );
    assert.deepEqual(m.ips, [
      { address: '192.168.5.2/24', interface: 1 },
      { address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 3 },
      { address: 'fd00::5/128', interface: 3 },
    ]);
    assert.deepEqual(
      m.routes.map((r) => r.dst),
      ['192.168.0.0/16', '0.0.0.0/0'],
    );
    assert.deepEqual(m.dns, { nameservers: ['192.168.5.1', '10.96.0.10'], domain: 'example.internal', search: ['svc.cluster.local'] });
  });

  it('leaves an IP without an interface index unindexed', () => {
    const m = mergeResults({ cniVersion: '1.1.0', interfaces: [{ name: 'a' }], ips: [], routes: [], dns: {} }, { ...ours, ips: [{ address: '10.0.0.1/32' }] });
    assert.deepEqual(m.ips, [{ address: '10.0.0.1/32' }]);
  });
});
