import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HOST_VETH_PREFIX, hostVethName, isHostVethName } from '../../agent/src/endpoints/naming.js';

const CID = '4f8c0a2e91b35d7c6e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7';

describe('hostVethName', () => {
  it('fits the kernel limit of 15 characters, even for very long inputs', () => {
    for (const [cid, ifn] of [[CID, 'eth0'], ['x', 'y'], ['c'.repeat(4096), 'net1'], ['', '']] as const) {
      const name = hostVethName(cid, ifn);
      assert.equal(name.length <= 15, true, `${name} is ${name.length} characters`);
      assert.equal(name.length, 14);
    }
  });

  it('is deterministic, so DEL finds the interface ADD made without stored state', () => {
    assert.equal(hostVethName(CID, 'eth0'), hostVethName(CID, 'eth0'));
  });

  it('keeps the names of earlier releases, so an upgraded agent still finds veths made before', () => {
    assert.equal(hostVethName(CID, 'eth0'), 'pnb5fde34963df');
    assert.equal(hostVethName('abc', 'net1'), 'pn9524a1c51759');
  });

  it('starts with the podnet prefix followed by lower-case hex', () => {
    const name = hostVethName(CID, 'eth0');
    assert.equal(HOST_VETH_PREFIX, 'pn');
    assert.equal(name.startsWith(HOST_VETH_PREFIX), true, name);
    assert.match(name, /^pn[0-9a-f]{12}$/);
  });

  it('differs by container and by pod interface', () => {
    const names = new Set([
      hostVethName(CID, 'eth0'),
      hostVethName(CID, 'net1'),
      hostVethName(`${CID.slice(0, -1)}0`, 'eth0'),
      hostVethName('other', 'eth0'),
    ]);
    assert.equal(names.size, 4);
  });

  it('spreads a thousand containers over a thousand distinct names', () => {
    const names = new Set<string>();
    for (let i = 0; i < 1000; i++) names.add(hostVethName(`container-${i}`, 'eth0'));
    assert.equal(names.size, 1000);
  });
});

describe('isHostVethName', () => {
  it('accepts every name hostVethName makes', () => {
    for (let i = 0; i < 50; i++) {
      const name = hostVethName(`c${i}`, i % 2 ? 'eth0' : 'net1');
      assert.equal(isHostVethName(name), true, name);
    }
  });

  it('rejects names that only look similar', () => {
    for (const name of ['eth0', 'pn', 'pn12345', 'pn0123456789ab0', 'pn0123456789a', 'pn0123456789AB', 'xpn0123456789ab', 'pn0123456789ag', 'PN0123456789ab', 'veth0123456789', 'pn0123456789ab\n']) {
      assert.equal(isHostVethName(name), false, JSON.stringify(name));
    }
    assert.equal(isHostVethName('pn0123456789ab'), true);
  });
});
