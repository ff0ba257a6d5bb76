import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SyscallError } from '../../agent/src/errors/index.js';
import {
  attachTcLegacy, attachTcx, attachXdp, BpfObject, detachTcLegacy, linkInfo, listLinks, listTcxPrograms, openPinnedLink, probeTcx, probeXdpLink,
  queryTcLegacy, TcLegacyLink, TcxLink, updateLink, xdpQuery, XdpLink, type Program,
} from '../../agent/src/libbpf/index.js';
import { bpffsDir, compileFixture, rmBpffsDir, scratchDir, suffix } from '../fixtures/bpf/fixtures.js';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function ifindexOf(name: string): number {
  return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
}

function tryIp(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // already gone
  }
}

/** A veth pair whose peer lives in a network namespace of its own; the host end is what programs attach to. */
interface Veth {
  host: string;
  peer: string;
  netns: string;
  ifindex: number;
}

function makeVeth(): Veth {
  const s = suffix();
  const v = { host: `pnlh${s}`, peer: `pnlp${s}`, netns: `pn-lb-${s}`, ifindex: 0 };
  ip('netns', 'add', v.netns);
  try {
    ip('link', 'add', v.host, 'type', 'veth', 'peer', 'name', v.peer, 'netns', v.netns);
    ip('link', 'set', v.host, 'up');
    ip('-n', v.netns, 'link', 'set', v.peer, 'up');
  } catch (err) {
    removeVeth(v);
    throw err;
  }
  v.ifindex = ifindexOf(v.host);
  return v;
}

function removeVeth(v: Veth): void {
  tryIp('link', 'del', v.host);
  tryIp('netns', 'del', v.netns);
}

describe('attaching programs to a veth', () => {
  let dir: string;
  let pins: string;
  let objA: BpfObject;
  let objB: BpfObject;
  let tcA: Program;
  let tcB: Program;
  let xdpA: Program;
  let xdpB: Program;
  let veth: Veth;
  const extraVeths: Veth[] = [];

  before(() => {
    dir = scratchDir();
    pins = bpffsDir();
    const path = compileFixture('fixture', dir);
    // Two loads of one object: two distinct program ids to swap between.
    objA = BpfObject.open(path, { pinRoot: pins });
    objA.load();
    objB = BpfObject.open(path, { pinRoot: pins });
    objB.setConstants({ fx_tc_drop: true });
    objB.load();
    tcA = objA.program('fx_tc');
    tcB = objB.program('fx_tc');
    xdpA = objA.program('fx_xdp');
    xdpB = objB.program('fx_xdp');
    veth = makeVeth();
  });

  after(() => {
    objA?.close();
    objB?.close();
    for (const v of [veth, ...extraVeths]) if (v) removeVeth(v);
    rmBpffsDir(pins);
    rmSync(dir, { recursive: true, force: true });
    for (const v of [veth, ...extraVeths]) {
      if (!v) continue;
      assert.equal(existsSync(`/sys/class/net/${v.host}`), false, `${v.host} removed`);
      assert.equal(existsSync(`/run/netns/${v.netns}`), false, `${v.netns} removed`);
    }
    assert.equal(existsSync(pins), false, 'bpffs scratch directory removed');
  });

  it('attaches through tcx, survives as a pin, re-adopts, swaps programs and detaches', (t) => {
    if (!probeTcx()) return t.skip('tcx links need Linux >= 6.6');
    const pin = `${pins}/tcx-in`;
    {
      const link = attachTcx(tcA, veth.ifindex, 'ingress', { ifname: veth.host });
      assert.equal(link.kind, 'tcx');
      assert.equal(link.ifindex, veth.ifindex);
      assert.equal(link.direction, 'ingress');
      assert.equal(link.programId, tcA.id);
      assert.deepEqual(listTcxPrograms(veth.ifindex, 'ingress'), [tcA.id]);
      const info = linkInfo(link.fd);
      assert.deepEqual(info, { id: link.id, type: 'tcx', typeId: 11, programId: tcA.id, ifindex: veth.ifindex, attachType: 46 });
      assert.ok(listLinks().some((l) => l.id === link.id && l.type === 'tcx'));
      link.pin(pin);
      link.close();
    }
    assert.deepEqual(listTcxPrograms(veth.ifindex, 'ingress'), [tcA.id], 'the pin keeps the link after its fd is closed');

    using again = openPinnedLink(pin);
    assert.ok(again instanceof TcxLink);
    assert.equal(again.ifindex, veth.ifindex);
    assert.equal(again.direction, 'ingress');
    assert.equal(again.programId, tcA.id);
    assert.equal(again.pinnedPath, pin);

    updateLink(again, tcB);
    assert.equal(again.programId, tcB.id);
    assert.deepEqual(listTcxPrograms(veth.ifindex, 'ingress'), [tcB.id]);

    again.detach();
    assert.deepEqual(listTcxPrograms(veth.ifindex, 'ingress'), []);
    assert.equal(existsSync(pin), false, 'detach removes the pin');
  });

  it('detaches an unpinned tcx link when its handle is closed', (t) => {
    if (!probeTcx()) return t.skip('tcx links need Linux >= 6.6');
    const link = attachTcx(tcA, veth.ifindex, 'egress');
    assert.equal(link.direction, 'egress');
    assert.equal(linkInfo(link.fd).attachType, 47);
    assert.deepEqual(listTcxPrograms(veth.ifindex, 'egress'), [tcA.id]);
    link.close();
    assert.deepEqual(listTcxPrograms(veth.ifindex, 'egress'), []);
  });

  it('detaches a pinned tcx link without error after its device is gone', (t) => {
    if (!probeTcx()) return t.skip('tcx links need Linux >= 6.6');
    const v = makeVeth();
    extraVeths.push(v);
    const pin = `${pins}/tcx-gone`;
    attachTcx(tcA, v.ifindex, 'ingress').pin(pin);
    removeVeth(v);
    using link = openPinnedLink(pin);
    assert.equal(link.kind, 'tcx');
    assert.equal(link.ifindex, 0, 'the kernel reports a defunct link with ifindex 0');
    link.detach();
    assert.equal(existsSync(pin), false);
  });

  it('names the device and step when tcx attach fails', (t) => {
    if (!probeTcx()) return t.skip('tcx links need Linux >= 6.6');
    // An XDP program on a tc hook: the kernel refuses the program type.
    assert.throws(() => attachTcx(xdpA, veth.ifindex, 'ingress', { ifname: veth.host }), (e: unknown) => {
      assert.ok(e instanceof SyscallError);
      assert.match(e.message, new RegExp(`^attach tcx ingress to ${veth.host} \\(ifindex ${veth.ifindex}\\): create link: E[A-Z]+`));
      return true;
    });
  });

  it('attaches through a legacy clsact filter, pins a record, re-adopts, replaces and detaches', () => {
    const pin = `${pins}/tc-in`;
    const link = attachTcLegacy(tcA, veth.ifindex, 'ingress', { priority: 7, handle: 3 });
    assert.equal(link.kind, 'tc');
    assert.deepEqual([link.ifindex, link.direction, link.handle, link.priority, link.programId], [veth.ifindex, 'ingress', 3, 7, tcA.id]);
    assert.equal(queryTcLegacy(veth.ifindex, 'ingress', { priority: 7, handle: 3 }), tcA.id);
    assert.equal(queryTcLegacy(veth.ifindex, 'egress', { priority: 7, handle: 3 }), undefined);

    assert.throws(() => attachTcLegacy(tcB, veth.ifindex, 'ingress', { priority: 7, handle: 3, ifname: veth.host }), (e: unknown) => {
      assert.ok(e instanceof SyscallError);
      assert.equal(e.message, `attach tc ingress to ${veth.host} (ifindex ${veth.ifindex}): add filter: EEXIST`);
      return true;
    });

    link.pin(pin);
    link.close();
    assert.equal(queryTcLegacy(veth.ifindex, 'ingress', { priority: 7, handle: 3 }), tcA.id, 'the filter outlives the handle');

    using again = openPinnedLink(pin);
    assert.ok(again instanceof TcLegacyLink);
    assert.deepEqual([again.ifindex, again.direction, again.handle, again.priority, again.programId], [veth.ifindex, 'ingress', 3, 7, tcA.id]);

    updateLink(again, tcB);
    assert.equal(again.programId, tcB.id);
    assert.equal(queryTcLegacy(veth.ifindex, 'ingress', { priority: 7, handle: 3 }), tcB.id);

    again.detach();
    assert.equal(queryTcLegacy(veth.ifindex, 'ingress', { priority: 7, handle: 3 }), undefined);
    assert.equal(existsSync(pin), false);
    assert.equal(detachTcLegacy(veth.ifindex, 'ingress', { priority: 7, handle: 3 }), false, 'a second detach finds nothing');
  });

  it('refuses to re-adopt a pinned tc record whose filter was deleted', () => {
    const pin = `${pins}/tc-stale`;
    const link = attachTcLegacy(tcA, veth.ifindex, 'egress');
    link.pin(pin);
    assert.equal(detachTcLegacy(veth.ifindex, 'egress'), true);
    assert.throws(() => openPinnedLink(pin), (e: unknown) => e instanceof SyscallError && e.is('ENOENT') && /filter handle 1 priority 1 .* is gone/.test(e.message));
    link.unpin();
  });

  for (const mode of ['native', 'generic'] as const) {
    it(`attaches XDP in ${mode} mode, pins, re-adopts with the mode, swaps and detaches`, (t) => {
      if (!probeXdpLink()) return t.skip('XDP links need Linux >= 5.9');
      const pin = `${pins}/xdp-${mode}`;
      {
        const link = attachXdp(xdpA, veth.ifindex, mode);
        assert.equal(link.kind, 'xdp');
        assert.equal(link.mode, mode);
        assert.equal(link.programId, xdpA.id);
        const q = xdpQuery(veth.ifindex);
        assert.equal(mode === 'native' ? q.native : q.generic, xdpA.id);
        assert.equal(mode === 'native' ? q.generic : q.native, 0);
        assert.deepEqual(linkInfo(link.fd), { id: link.id, type: 'xdp', typeId: 6, programId: xdpA.id, ifindex: veth.ifindex });
        link.pin(pin);
        link.close();
      }
      using again = openPinnedLink(pin);
      assert.ok(again instanceof XdpLink);
      assert.equal(again.mode, mode);
      assert.equal(again.ifindex, veth.ifindex);
      updateLink(again, xdpB);
      const q = xdpQuery(veth.ifindex);
      assert.equal(mode === 'native' ? q.native : q.generic, xdpB.id);
      again.detach();
      assert.deepEqual(xdpQuery(veth.ifindex), { native: 0, generic: 0, offloaded: 0 });
      assert.equal(existsSync(pin), false);
    });
  }

  it('refuses a second XDP link on the same device with EBUSY', (t) => {
    if (!probeXdpLink()) return t.skip('XDP links need Linux >= 5.9');
    using first = attachXdp(xdpA, veth.ifindex, 'generic');
    assert.throws(() => attachXdp(xdpB, veth.ifindex, 'generic', { ifname: veth.host }), (e: unknown) => {
      assert.ok(e instanceof SyscallError);
      assert.equal(e.message, `attach xdp (generic) to ${veth.host} (ifindex ${veth.ifindex}): create link: EBUSY`);
      return true;
    });
    first.detach();
  });

  it('refuses to treat a pinned map as a link', () => {
    const m = objA.map('pn_fx_pinned');
    assert.throws(() => openPinnedLink(m.pinnedPath!), /open pinned link .*pn_fx_pinned: it is a pinned map, not a link/);
  });

  it('leaves no pins behind but the map pinned by name', () => {
    assert.deepEqual(readdirSync(pins), ['pn_fx_pinned']);
    if (probeTcx()) {
      assert.deepEqual(listTcxPrograms(veth.ifindex, 'ingress'), []);
      assert.deepEqual(listTcxPrograms(veth.ifindex, 'egress'), []);
    }
  });
});
