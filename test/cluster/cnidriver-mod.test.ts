/**
 * The module-mode libcni driver (test/cluster/tools/cnidriver-mod, libcni at
 * the version scripts/harness/versions.env pins) with the reference plugins
 * built from their modules: GC and STATUS are libcni's own, on a CNI 1.1.0
 * list. Needs root; the namespaces, veths and files it makes are removed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Netns,
  cniAdd,
  cniDriver,
  cniMustSucceed,
  freeSubnet24,
  hostLinks,
  randomSuffix,
  resultIPv4,
  writeConflist,
  type CniDriverOptions,
  type CniGcSummary,
  type CniStatusSummary,
} from '../e2e/tools/index.js';
import { buildHarness, harnessBin, harnessBinDir } from './tools/harness.js';

describe('module-mode libcni driver with the reference plugins built from modules', () => {
  let driver = '';
  let pluginDir = '';
  let work = '';
  let cacheDir = '';
  let ipamDir = '';
  let subnetPrefix = '';
  let list110 = '';
  let net110 = '';
  const namespaces: Netns[] = [];
  const hostVeths = new Set<string>();

  function opts(conflist: string, extra: Partial<CniDriverOptions> = {}): CniDriverOptions {
    return { conflist, cniPath: [pluginDir], cacheDir, driver, ifname: 'eth0', ...extra };
  }

  async function pod(id: string): Promise<{ ns: Netns; ip: string; o: CniDriverOptions; cniVersion: string }> {
    const ns = await Netns.create('pncm');
    namespaces.push(ns);
    const o = opts(list110, { containerId: id, netns: ns.path });
    const { result } = await cniAdd(o);
    for (const i of result.interfaces ?? []) if (i.sandbox === undefined) hostVeths.add(i.name);
    return { ns, ip: resultIPv4(result), o, cniVersion: result.cniVersion };
  }

  async function reservations(): Promise<string[]> {
    return (await readdir(join(ipamDir, net110)).catch(() => [] as string[])).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort();
  }

  before(async () => {
    const bins = await buildHarness(['cnidriver', 'cni-plugins']);
    driver = harnessBin(bins, 'cnidriver');
    pluginDir = harnessBinDir(bins, 'ptp');
    work = await mkdtemp(join(tmpdir(), 'podnet-cnimod-'));
    cacheDir = join(work, 'cache');
    ipamDir = join(work, 'ipam');
    subnetPrefix = (await freeSubnet24()).prefix;
    net110 = `pncm-${randomSuffix()}`;
    list110 = await writeConflist(work, {
      cniVersion: '1.1.0',
      name: net110,
      plugins: [{ type: 'ptp', ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: `${subnetPrefix}.0/24` }]], dataDir: ipamDir } }],
    });
  });

  after(async () => {
    for (const ns of namespaces) await ns.close().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('ADD on a 1.1.0 list returns a 1.1.0 result from plugins built at the pinned release', async () => {
    const { ns, ip, o, cniVersion } = await pod(`c-${randomSuffix()}`);
    try {
      assert.equal(cniVersion, '1.1.0');
      assert.ok(ip.startsWith(`${subnetPrefix}.`), `${ip} is inside ${subnetPrefix}.0/24`);
      assert.equal(await ns.ipv4('eth0'), ip);
    } finally {
      await cniMustSucceed('del', o);
    }
  });

  test('GC through libcni deletes every cached attachment outside the valid set and keeps the rest', async () => {
    const keep = await pod(`keep-${randomSuffix()}`);
    const stale = await pod(`stale-${randomSuffix()}`);
    try {
      assert.deepEqual(await reservations(), [keep.ip, stale.ip].sort());
      const valid = [{ containerID: keep.o.containerId ?? '', ifname: 'eth0' }];
      const call = await cniDriver('gc', opts(list110, { valid }));
      assert.equal(call.ok, true, call.ok ? '' : call.error.msg);
      const summary = (call.ok ? call.output : undefined) as CniGcSummary;
      assert.deepEqual(summary, { staleDeleted: [{ containerID: stale.o.containerId, ifname: 'eth0' }], pluginsGC: true });

      // libcni ran DEL for the stale one: its address, reservation and veth are gone.
      assert.equal(await stale.ns.ipv4('eth0'), undefined);
      assert.deepEqual(await reservations(), [keep.ip]);
      assert.equal(await keep.ns.ipv4('eth0'), keep.ip);

      // A second GC with the same valid set finds nothing more to delete.
      const again = await cniDriver('gc', opts(list110, { valid }));
      assert.deepEqual(again.ok ? again.output : again.error, { staleDeleted: [], pluginsGC: true });
    } finally {
      await cniMustSucceed('del', keep.o);
      await cniMustSucceed('del', stale.o);
    }
    const links = await hostLinks();
    for (const v of hostVeths) assert.ok(!links.has(v), `host veth ${v} is gone`);
  });

  test('STATUS through libcni asks the plugins of a 1.1.0 list and reports a missing IPAM plugin as an error', async () => {
    const ok = await cniDriver('status', opts(list110));
    assert.deepEqual(ok.ok ? (ok.output as CniStatusSummary) : ok.error, { pluginsAsked: true });

    const broken = await writeConflist(work, {
      cniVersion: '1.1.0',
      name: `pncm-broken-${randomSuffix()}`,
      plugins: [{ type: 'ptp', ipam: { type: 'pn-missing-ipam' } }],
    });
    const bad = await cniDriver('status', opts(broken));
    assert.equal(bad.ok, false, 'STATUS fails when ptp cannot find its IPAM plugin');
    if (!bad.ok) assert.match(bad.error.msg, /pn-missing-ipam/);
  });

  test('STATUS on a 1.0.0 list succeeds without running any plugin, as the spec has no STATUS before 1.1.0', async () => {
    const old = await writeConflist(work, {
      cniVersion: '1.0.0',
      name: `pncm-old-${randomSuffix()}`,
      plugins: [{ type: 'pn-no-such-plugin' }],
    });
    const call = await cniDriver('status', opts(old));
    assert.deepEqual(call.ok ? (call.output as CniStatusSummary) : call.error, { pluginsAsked: false });
  });
});
