/** Where the socket programs attach and how their pins are named. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cgroup2Root, cgroupPin, findCgroup2Root, resolveCgroup2Dir, hookSection, isCgroupHook, linkKindFor, parseAttachPin, SOCK_OBJECT,
} from '../../agent/src/datapath/index.js';
import { PodnetError } from '../../agent/src/errors/index.js';

const HYBRID = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw',
].join('\n');

describe('the cgroup v2 root', () => {
  it('is the cgroup2 mount of a hybrid host, past optional fields', () => {
    assert.equal(findCgroup2Root(HYBRID), '/sys/fs/cgroup/unified');
  });

  it('is never a mount of a subtree, and mount points with spaces are unescaped', () => {
    const text = [
      '50 23 0:38 /kubepods/pod1 /var/lib/sub rw - cgroup2 cgroup2 rw',
      '51 23 0:38 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw',
    ].join('\n');
    assert.equal(findCgroup2Root(text), '/mnt/my cgroup');
  });

  it('is the host hierarchy mounted into a private cgroup namespace when no mount of "/" exists', () => {
    const text = [
      '60 23 0:38 /../../.. /host/cgroup rw - cgroup2 cgroup2 rw',
      '61 23 0:38 /kubepods/x /sys/fs/cgroup rw - cgroup2 cgroup2 rw',
    ].join('\n');
    assert.equal(findCgroup2Root(text), '/host/cgroup');
    assert.equal(findCgroup2Root(`${text}\n62 23 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw`), '/sys/fs/cgroup/unified', 'a mount of "/" wins');
  });

  it('is missing without a cgroup2 mount, and the error says how to get one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pn-cg-'));
    try {
      const f = join(dir, 'mountinfo');
      writeFileSync(f, HYBRID.split('\n').slice(0, 2).join('\n'));
      assert.equal(findCgroup2Root(readFileSync(f, 'utf8')), undefined);
      assert.throws(() => cgroup2Root(f), (err: unknown) => err instanceof PodnetError && err.code === 'NO_CGROUP' && /lists no cgroup2 mount.*mount -t cgroup2/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an operator-named cgroup root', () => {
  it('is the directory itself when it is cgroup v2, or its unified/ on a hybrid layout', () => {
    const root = cgroup2Root();
    assert.equal(resolveCgroup2Dir(root), root);
    if (root.endsWith('/unified')) assert.equal(resolveCgroup2Dir(root.slice(0, -'/unified'.length)), root);
  });

  it('is refused with NO_CGROUP naming the directory when it holds no cgroup v2 mount', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pn-cg-'));
    try {
      assert.throws(() => resolveCgroup2Dir(dir), (e: unknown) => e instanceof PodnetError && e.code === 'NO_CGROUP' && e.message.includes(dir) && e.message.includes('unified'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('socket program pins and hooks', () => {
  it('every socket program is a cgroup program whose pin parses back to its program and hook', () => {
    for (const p of SOCK_OBJECT.programs) {
      assert.equal(p.target, 'cgroup');
      assert.ok(isCgroupHook(p.hook));
      assert.equal(linkKindFor(p.hook, 'tcx'), 'cgroup');
      const file = cgroupPin('/sys/fs/bpf/podnet', p.name, p.hook).split('/').at(-1)!;
      assert.deepEqual(parseAttachPin(file), { program: p.name, hook: p.hook });
    }
    assert.equal(cgroupPin('/sys/fs/bpf/podnet', 'sock_connect4', 'cgroup_connect4'), '/sys/fs/bpf/podnet/cgroup/sock_connect4-cgroup_connect4');
  });

  it('hooks map to the ELF sections libbpf reads the program type from', () => {
    assert.deepEqual(['cgroup_connect4', 'cgroup_sendmsg4', 'cgroup_recvmsg4', 'cgroup_getpeername4', 'tc_ingress', 'xdp'].map((h) => hookSection(h as never)),
      ['cgroup/connect4', 'cgroup/sendmsg4', 'cgroup/recvmsg4', 'cgroup/getpeername4', 'tc', 'xdp']);
  });
});
