import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotSupportedError, SyscallError, VerifierError } from '../../agent/src/errors/index.js';
import { libbpfError } from '../../agent/src/libbpf/fail.js';
import {
  AttachType, attachTypeName, BPF_ANY, BPF_EXIST, BPF_NOEXIST, FEATURES, isPerCpuMapType, linkTypeName, mapTypeId, mapTypeName, programTypeId, programTypeName,
} from '../../agent/src/libbpf/index.js';
import { notSupported } from '../../agent/src/libbpf/probe.js';

describe('libbpf type names', () => {
  it('maps map type names to the kernel numbers and back', () => {
    const known: Array<[Parameters<typeof mapTypeId>[0], number]> = [
      ['hash', 1], ['array', 2], ['percpu_hash', 5], ['percpu_array', 6], ['lru_hash', 9], ['lru_percpu_hash', 10], ['lpm_trie', 11], ['ringbuf', 27],
    ];
    for (const [name, id] of known) {
      assert.equal(mapTypeId(name), id, name);
      assert.equal(mapTypeName(id), name);
    }
  });

  it('names map types newer than its table unknown and refuses to number them', () => {
    assert.equal(mapTypeName(999), 'unknown');
    assert.throws(() => mapTypeId('unknown'), TypeError);
    assert.throws(() => mapTypeId('hashh' as 'hash'), /not a known BPF map type/);
  });

  it('knows which map types are per-CPU', () => {
    assert.equal(isPerCpuMapType('percpu_hash'), true);
    assert.equal(isPerCpuMapType('lru_percpu_hash'), true);
    assert.equal(isPerCpuMapType('percpu_array'), true);
    assert.equal(isPerCpuMapType('hash'), false);
    assert.equal(isPerCpuMapType('lru_hash'), false);
  });

  it('names program, link and attach types as the kernel numbers them', () => {
    assert.equal(programTypeName(3), 'sched_cls');
    assert.equal(programTypeName(6), 'xdp');
    assert.equal(programTypeId('cgroup_sock_addr'), 18);
    assert.equal(linkTypeName(6), 'xdp');
    assert.equal(linkTypeName(11), 'tcx');
    assert.equal(linkTypeName(500), 'unknown');
    assert.equal(AttachType.TCX_INGRESS, 46);
    assert.equal(AttachType.TCX_EGRESS, 47);
    assert.equal(AttachType.XDP, 37);
    assert.equal(attachTypeName(47), 'tcx_egress');
  });

  it('exposes the update flags as bigints with the kernel values', () => {
    assert.deepEqual([BPF_ANY, BPF_NOEXIST, BPF_EXIST], [0n, 1n, 2n]);
  });
});

describe('libbpf error shapes', () => {
  it('reads "verb object: ERRNO" from a negative libbpf return code', () => {
    const err = libbpfError('update map pn_counters (id 12)', -7);
    assert.ok(err instanceof SyscallError);
    assert.equal(err.message, 'update map pn_counters (id 12): E2BIG');
    assert.equal(err.errno, 7);
    assert.equal(err.is('E2BIG'), true);
  });

  it('names the kernel-internal ENOTSUPP that leaks out of bpf()', () => {
    assert.equal(libbpfError('update batch in map x (id 1)', -524).message, 'update batch in map x (id 1): ENOTSUPP');
  });

  it('spells out libbpf-specific error codes', () => {
    const err = libbpfError('open BPF object junk', -4001);
    assert.match(err.message, /^open BPF object junk: E4001 \(.*format.*\)$/i);
  });

  it('turns a missing feature into "needs Linux >= X"', () => {
    const err = notSupported('tcx');
    assert.ok(err instanceof NotSupportedError);
    assert.equal(err.minKernel, FEATURES.tcx.minKernel);
    assert.match(err.message, /tcx links .* needs Linux >= 6\.6$/);
  });

  it('keeps the whole verifier log on a VerifierError and its tail in the message', () => {
    const log = Array.from({ length: 20 }, (_, i) => `line ${i}`).join('\n');
    const err = new VerifierError('fx_reject', 13, log);
    assert.equal(err.log, log);
    assert.match(err.message, /^load program fx_reject: verifier rejected it \(EACCES\):\nline 12\n/);
    assert.doesNotMatch(err.message, /line 11\n/);
  });
});
