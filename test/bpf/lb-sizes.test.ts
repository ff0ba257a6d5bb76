/**
 * The service maps take the sizes a node configures: the loader sets them
 * before load on every object, so the objects share the pins, and a pin of
 * another size is a clear error naming the map rather than libbpf's EINVAL.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../agent/src/libbpf/index.js';
import { NETDEV_OBJECT, POD_OBJECT, SOCK_OBJECT, loadObject } from '../../agent/src/datapath/index.js';
import { CONNTRACK, DEFAULT_SERVICE_MAP_SIZES, SERVICE_MAP_SIZES, createAgentMaps, openNodeMaps, openPinnedMap, serviceMapSizes } from '../../agent/src/maps/index.js';
import { parsePool } from '../../agent/src/ipam/index.js';
import { bpffsDir, rmBpffsDir, scratchDir } from '../fixtures/bpf/fixtures.js';

const isMismatch = (name: string) => (err: Error & { code?: string }) => err.code === 'MAP_MISMATCH' && err.message.includes(name);

describe('configurable service map sizes', () => {
  const cache = scratchDir();
  const pins = bpffsDir();
  const pool = parsePool('10.9.0.0/24');
  const sizes = serviceMapSizes({ pn_ct: 4096, pn_services: 1024, pn_affinity: 2048 });
  after(() => {
    rmBpffsDir(pins);
    rmSync(cache, { recursive: true, force: true });
  });

  test('sizes not given keep the defaults the C declarations carry', () => {
    assert.deepEqual(serviceMapSizes(), DEFAULT_SERVICE_MAP_SIZES);
    assert.equal(sizes.pn_backends, SERVICE_MAP_SIZES.pn_backends);
    assert.equal(sizes.pn_ct, 4096);
  });

  test('an unknown map or a size that is not a positive integer is refused', () => {
    assert.throws(() => serviceMapSizes({ pn_svc_ranges: 10 }), /not a resizable service map/);
    assert.throws(() => serviceMapSizes({ pn_ct: 0 }), /0 is not an integer in 1\.\.2147483647/);
    assert.throws(() => serviceMapSizes({ pn_ct: 1.5 }), /1\.5 is not an integer/);
  });

  test('every node object loads with the configured sizes and they share one instance of each map', async () => {
    using podObj = await loadObject(POD_OBJECT, { bpffs: pins, cacheDir: cache, node: { pool, serviceMapSizes: sizes } });
    using netObj = await loadObject(NETDEV_OBJECT, { bpffs: pins, cacheDir: cache, node: { pool, serviceMapSizes: sizes } });
    using sockObj = await loadObject(SOCK_OBJECT, { bpffs: pins, cacheDir: cache, node: { pool, serviceMapSizes: sizes } });
    assert.equal(podObj.loaded && netObj.loaded && sockObj.loaded, true);
    using ct = BpfMap.openPinned(join(pins, 'pn_ct'));
    using svc = BpfMap.openPinned(join(pins, 'pn_services'));
    using be = BpfMap.openPinned(join(pins, 'pn_backends'));
    assert.deepEqual([ct.maxEntries, svc.maxEntries, be.maxEntries], [4096, 1024, SERVICE_MAP_SIZES.pn_backends]);
    createAgentMaps(pins);
    const maps = openNodeMaps(pins, sizes);
    try {
      assert.equal(maps.conntrack.maxEntries, 4096);
      assert.equal(maps.affinity.maxEntries, 2048);
    } finally {
      for (const m of Object.values(maps)) m.close();
    }
  });

  test('opening the pins against other sizes fails naming the map', () => {
    assert.throws(() => openPinnedMap(pins, CONNTRACK), isMismatch('pn_ct'));
    assert.throws(() => openNodeMaps(pins), isMismatch('pn_'));
  });

  test('loading an object with other sizes than the pins fails naming the map, also when its programs are pinned already', async () => {
    const other = serviceMapSizes({ pn_ct: 8192, pn_services: 1024, pn_affinity: 2048 });
    await assert.rejects(loadObject(NETDEV_OBJECT, { bpffs: pins, cacheDir: cache, node: { pool, serviceMapSizes: other } }), isMismatch('pn_ct'));
    await assert.rejects(loadObject(POD_OBJECT, { bpffs: pins, cacheDir: cache, node: { pool } }), isMismatch('pn_'));
  });
});
