/**
 * The datapath's naming and decisions without a kernel: attachment pins name
 * program and hook and parse back, generation ids follow the object and its
 * constants, the previous layout is recognised, the attach mode is decided
 * in one function, and map descriptors refuse what the kernel would.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  NODE_OBJECTS, POD_OBJECT, attachPin, generationId, linkKindFor, parseAttachPin, programDescriptor, resolveTcMode,
} from '../../agent/src/datapath/index.js';
import { generationObject, isLegacyGeneration, parseLegacyLinkPin } from '../../agent/src/datapath/pins.js';
import { ALL_MAPS, defineMap, ip4Key } from '../../agent/src/maps/index.js';

describe('datapath pin layout', () => {
  it('an attachment pin names the interface, the program and the hook, and parses back', () => {
    assert.equal(attachPin('/sys/fs/bpf/podnet', 'pn0123456789ab', 'from_pod', 'tc_ingress'), '/sys/fs/bpf/podnet/links/pn0123456789ab/from_pod-tc_ingress');
    assert.deepEqual(parseAttachPin('from_pod-tc_ingress'), { program: 'from_pod', hook: 'tc_ingress' });
    assert.deepEqual(parseAttachPin('xdp_uplink-xdp'), { program: 'xdp_uplink', hook: 'xdp' });
    assert.equal(parseAttachPin('from_pod-ingress'), undefined, 'not a hook');
    assert.equal(parseAttachPin('pn0123456789ab_ingress'), undefined, 'the previous layout is not an attachment pin');
  });

  it('no pin name of a node program contains a dot, which bpffs refuses', () => {
    for (const o of NODE_OBJECTS) for (const p of o.programs) assert.doesNotMatch(`${o.name}-${p.name}-${p.hook}`, /\./);
  });

  it('an upgrade finds the program of a pin by its name, whatever its object', () => {
    const parsed = parseAttachPin('to_pod-tc_egress')!;
    assert.equal(programDescriptor(parsed.program), POD_OBJECT.programs.find((p) => p.name === 'to_pod'));
    assert.equal(programDescriptor('from_nowhere'), undefined, 'a program no object has is left alone');
  });

  it('generation directories of the current and the previous layout are told apart', () => {
    assert.equal(generationObject('pod-0123456789abcdef'), 'pod');
    assert.equal(generationObject('0123456789abcdef'), undefined);
    assert.equal(isLegacyGeneration('0123456789abcdef'), true);
    assert.equal(isLegacyGeneration('pod-0123456789abcdef'), false);
    assert.deepEqual(parseLegacyLinkPin('pn0123456789ab_egress'), { ifname: 'pn0123456789ab', direction: 'egress' });
    assert.equal(parseLegacyLinkPin('pn0123456789ab'), undefined);
  });

  it('the generation id changes with the object hash and with any constant, and not with their order', () => {
    const a = generationId('h1', { x: new Uint8Array([10, 0, 0, 0]), y: 1 });
    assert.match(a, /^[0-9a-f]{16}$/);
    assert.equal(generationId('h1', { y: 1, x: new Uint8Array([10, 0, 0, 0]) }), a);
    assert.notEqual(generationId('h2', { x: new Uint8Array([10, 0, 0, 0]), y: 1 }), a);
    assert.notEqual(generationId('h1', { x: new Uint8Array([10, 0, 1, 0]), y: 1 }), a);
  });

  it('the pod object sets the pod CIDR constants in network order', () => {
    const c = POD_OBJECT.constants({ pool: { network: 0x0a090000, prefixLen: 24 } as never, hostNetnsCookie: 0n });
    assert.deepEqual([...(c['pn_pod_cidr_addr'] as Uint8Array)], [10, 9, 0, 0]);
    assert.deepEqual([...(c['pn_pod_cidr_mask'] as Uint8Array)], [255, 255, 255, 0]);
  });
});

describe('attach mode', () => {
  it('auto is tcx where the kernel has it and clsact elsewhere; explicit modes are kept', () => {
    assert.equal(resolveTcMode('auto', () => true), 'tcx');
    assert.equal(resolveTcMode('auto', () => false), 'clsact');
    assert.equal(resolveTcMode('clsact', () => true), 'clsact');
    assert.equal(resolveTcMode('tcx', () => true), 'tcx');
  });

  it('tcx on a kernel without it fails with a message that names the way out', () => {
    assert.throws(() => resolveTcMode('tcx', () => false), /attach mode tcx: not supported by this kernel \(needs Linux >= 6\.6\); use --attach-mode clsact or auto/);
  });

  it('tc hooks follow the mode and XDP hooks are always XDP links', () => {
    assert.equal(linkKindFor('tc_ingress', 'tcx'), 'tcx');
    assert.equal(linkKindFor('tc_egress', 'clsact'), 'tc');
    assert.equal(linkKindFor('xdp', 'clsact'), 'xdp');
    assert.equal(linkKindFor('xdp', 'tcx'), 'xdp');
  });
});

describe('map descriptors', () => {
  const base = { type: 'hash' as const, key: ip4Key, value: ip4Key, maxEntries: 1, perCpu: false, pinned: false, origin: 'agent' as const, description: 'test' };

  it('every node map name fits the kernel\'s 15 characters', () => {
    for (const d of ALL_MAPS) assert.ok(d.name.length <= 15, d.name);
  });

  it('a name longer than 15 characters or without the pn_ prefix is refused', () => {
    assert.throws(() => defineMap({ ...base, name: 'pn_much_too_long_x' }), /at most 15 characters/);
    assert.throws(() => defineMap({ ...base, name: 'endpoints' }), /must be pn_/);
  });

  it('perCpu must agree with the map type', () => {
    assert.throws(() => defineMap({ ...base, name: 'pn_t', perCpu: true }), /perCpu true contradicts type hash/);
    assert.equal(defineMap({ ...base, name: 'pn_t', type: 'percpu_hash', perCpu: true }).perCpu, true);
  });
});
