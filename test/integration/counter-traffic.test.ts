/**
 * The counter program's whole path on the real kernel: compile test/fixtures/bpf/counter.bpf.c,
 * load it with its maps pinned in a private bpffs directory, attach it to the
 * receiving end of a veth pair between two namespaces made here (tcx, XDP
 * native, XDP generic, legacy clsact), send an exactly known number of ICMP
 * echo requests, and read pn_ifcount back through the typed view. The pair is
 * silent apart from those requests (no IPv6, permanent neighbours), so every
 * count is checked for equality, bytes included. Traffic stays between the
 * two namespaces.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { compileCounterFixture, IfCountMap, type InterfaceCounter } from '../fixtures/bpf/ifcount.js';
import {
  attachTcLegacy, attachTcx, attachXdp, BpfObject, listLinks, listTcxPrograms, openPinnedLink, probeTcx, probeXdpLink, Program, queryTcLegacy,
  TcLegacyLink, TcxLink, xdpQuery, XdpLink, type Link, type LinkKind, type XdpMode,
} from '../../agent/src/libbpf/index.js';
import { ICMP_ECHO_OVERHEAD, NetnsPair, randomSuffix } from '../lib/netns-pair.js';

const BPF_FS_MAGIC = 0xcafe4a11;
const PAYLOAD = 100;
const FRAME = BigInt(PAYLOAD + ICMP_ECHO_OVERHEAD);

/** One way of hooking the counter program onto a device's receive path. */
interface Mode {
  title: string;
  program: 'count_tc_ingress' | 'count_xdp';
  hook: InterfaceCounter['hook'];
  kind: LinkKind;
  /** Why this kernel cannot run the mode, or undefined when it can. */
  missing(): string | undefined;
  attach(prog: Program, ifindex: number, ifname: string): Link;
  /** Id of the program on the hook now, undefined when the hook is empty (call inside the device's namespace). */
  attached(ifindex: number): number | undefined;
  /** Kind-specific facts about a link, fresh or re-adopted. */
  check(link: Link): void;
}

function xdpMode(mode: XdpMode): Mode {
  return {
    title: `XDP ${mode}`,
    program: 'count_xdp',
    hook: 'xdp',
    kind: 'xdp',
    missing: () => (probeXdpLink() ? undefined : 'XDP links need Linux >= 5.9'),
    attach: (prog, ifindex, ifname) => attachXdp(prog, ifindex, mode, { ifname }),
    attached: (ifindex) => {
      const q = xdpQuery(ifindex);
      // The other mode's slot must stay empty: the program runs where it was asked to.
      assert.equal(mode === 'native' ? q.generic : q.native, 0, `no program in the other XDP mode than ${mode}`);
      return (mode === 'native' ? q.native : q.generic) || undefined;
    },
    check: (link) => {
      assert.ok(link instanceof XdpLink);
      assert.equal(link.mode, mode);
    },
  };
}

const MODES: Mode[] = [
  {
    title: 'tcx ingress',
    program: 'count_tc_ingress',
    hook: 'tc_ingress',
    kind: 'tcx',
    missing: () => (probeTcx() ? undefined : 'tcx links need Linux >= 6.6'),
    attach: (prog, ifindex, ifname) => attachTcx(prog, ifindex, 'ingress', { ifname }),
    attached: (ifindex) => {
      const ids = listTcxPrograms(ifindex, 'ingress');
      assert.ok(ids.length <= 1, `at most one tcx program on the hook, found ${ids.join(', ')}`);
      return ids[0];
    },
    check: (link) => {
      assert.ok(link instanceof TcxLink);
      assert.equal(link.direction, 'ingress');
    },
  },
  xdpMode('native'),
  xdpMode('generic'),
  {
    title: 'legacy clsact ingress',
    program: 'count_tc_ingress',
    hook: 'tc_ingress',
    kind: 'tc',
    missing: () => undefined,
    attach: (prog, ifindex, ifname) => attachTcLegacy(prog, ifindex, 'ingress', { ifname }),
    attached: (ifindex) => queryTcLegacy(ifindex, 'ingress'),
    check: (link) => {
      assert.ok(link instanceof TcLegacyLink);
      assert.equal(link.direction, 'ingress');
    },
  },
];

/** Everything one test creates, torn down in reverse by close(), also after a failure. */
class Scope {
  readonly pinRoot = `/sys/fs/bpf/podnet-test-${randomSuffix(4)}`;
  pair: NetnsPair | undefined;
  obj: BpfObject | undefined;
  readonly links: Link[] = [];
  readonly linkIds: number[] = [];
  readonly programIds: number[] = [];
  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const errors: unknown[] = [];
    const attempt = (fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        errors.push(err);
      }
    };
    // Detach inside B: tc filters and XDP queries resolve the ifindex in the calling namespace.
    for (const l of this.links.reverse()) attempt(() => (this.pair ? this.pair.inB(() => l.detach()) : l.close()));
    for (const l of this.links) attempt(() => l.close());
    attempt(() => this.obj?.close());
    attempt(() => this.pair?.remove());
    attempt(() => rmSync(this.pinRoot, { recursive: true, force: true }));
    if (errors.length > 0) throw new AggregateError(errors, `clean up ${this.pinRoot}`);
  }
}

/** Polls `cond` every 50 ms for at most `ms`; the kernel frees links and programs from a work queue. */
async function eventually(ms: number, cond: () => boolean): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function programExists(id: number): boolean {
  try {
    Program.fromId(id).close();
    return true;
  } catch {
    return false;
  }
}

describe('the counter program counts traffic arriving at a veth', () => {
  let workDir: string;
  let objectPath: string;
  const scopes: Scope[] = [];

  before(async () => {
    assert.equal(statfsSync('/sys/fs/bpf').type, BPF_FS_MAGIC, 'bpffs is mounted at /sys/fs/bpf');
    workDir = mkdtempSync(join(tmpdir(), 'pn-counter-'));
    objectPath = (await compileCounterFixture(workDir)).path;
  });

  after(() => {
    const errors: unknown[] = [];
    for (const s of scopes) {
      try {
        s.close();
      } catch (err) {
        errors.push(err);
      }
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    if (errors.length > 0) throw new AggregateError(errors, 'clean up the counter tests');
  });

  function setUp(t: TestContext, mode: Mode): { scope: Scope; prog: Program; counters: IfCountMap } {
    const scope = new Scope();
    scopes.push(scope);
    t.after(() => scope.close());
    scope.pair = NetnsPair.create('ct');
    mkdirSync(scope.pinRoot);
    scope.obj = BpfObject.open(objectPath, { pinRoot: scope.pinRoot });
    scope.obj.load();
    assert.ok(existsSync(join(scope.pinRoot, 'pn_ifcount')), 'pn_ifcount is pinned under the test pin root');
    const prog = scope.obj.program(mode.program);
    scope.programIds.push(prog.id);
    return { scope, prog, counters: new IfCountMap(scope.obj.map('pn_ifcount')) };
  }

  for (const mode of MODES) {
    test(`${mode.title}: counts exactly the echo requests, keeps counting through a pin, and stops after detach`, (t) => {
      const why = mode.missing();
      if (why) return t.skip(why);
      const { scope, prog, counters } = setUp(t, mode);
      const pair = scope.pair!;
      const b = pair.b;
      const row = (packets: bigint): InterfaceCounter[] => [{ ifindex: b.ifindex, hook: mode.hook, packets, bytes: packets * FRAME }];
      const onHook = (): number | undefined => pair.inB(() => mode.attached(b.ifindex));

      pair.ping(3);
      assert.deepEqual(counters.readAll(), [], 'nothing is counted before the program is attached');
      assert.equal(onHook(), undefined, 'the hook starts empty');

      const link = pair.inB(() => mode.attach(prog, b.ifindex, b.ifname));
      scope.links.push(link);
      if (link.id !== undefined) scope.linkIds.push(link.id);
      assert.equal(link.kind, mode.kind);
      assert.equal(link.ifindex, b.ifindex);
      assert.equal(link.programId, prog.id);
      mode.check(link);
      assert.equal(onHook(), prog.id, 'the kernel reports the program on the hook');

      pair.ping(7);
      assert.deepEqual(counters.readAll(), row(7n), '7 echo requests of one frame size each, nothing else');

      const pin = join(scope.pinRoot, `link-${mode.kind}`);
      link.pin(pin);
      link.close();
      assert.ok(existsSync(pin));
      assert.equal(onHook(), prog.id, 'the pin keeps the attachment after the handle is closed');
      pair.ping(4);
      assert.deepEqual(counters.readAll(), row(11n), 'a pinned attachment without a handle still counts');

      const again = pair.inB(() => openPinnedLink(pin));
      scope.links.push(again);
      assert.equal(again.kind, mode.kind);
      assert.equal(again.ifindex, b.ifindex, 're-adopted link hooks the same device');
      assert.equal(again.programId, prog.id);
      assert.equal(again.pinnedPath, pin);
      if (link.id !== undefined) assert.equal(again.id, link.id, 're-adopted link is the same kernel link');
      mode.check(again);
      pair.ping(5);
      assert.deepEqual(counters.readAll(), row(16n), 'the re-adopted attachment counts');

      again.unpin();
      assert.equal(existsSync(pin), false, 'unpin removes the pin');
      assert.equal(onHook(), prog.id, 'the held handle keeps the attachment after unpin');

      pair.inB(() => again.detach());
      assert.equal(onHook(), undefined, 'detach empties the hook');
      pair.ping(6);
      assert.deepEqual(counters.readAll(), row(16n), 'nothing is counted after detach');
    });
  }

  test('leaves no namespace, veth, pin directory, link or program behind', async () => {
    const ran = scopes.filter((s) => s.pair !== undefined);
    assert.ok(ran.length > 0, 'at least one attach mode ran on this kernel');
    for (const s of scopes) s.close();
    for (const s of ran) {
      assert.deepEqual(s.pair!.leftovers(), [], `nothing of ${s.pair!.a.netns}/${s.pair!.b.netns} remains`);
      assert.equal(existsSync(s.pinRoot), false, `${s.pinRoot} is removed`);
    }
    const linkIds = ran.flatMap((s) => s.linkIds);
    const progIds = ran.flatMap((s) => s.programIds);
    assert.ok(progIds.length > 0);
    const linksGone = await eventually(3000, () => !listLinks().some((l) => linkIds.includes(l.id)));
    assert.ok(linksGone, `BPF links ${linkIds.join(', ')} are freed`);
    const progsGone = await eventually(3000, () => !progIds.some(programExists));
    assert.ok(progsGone, `programs ${progIds.join(', ')} are unloaded`);
  });
});
