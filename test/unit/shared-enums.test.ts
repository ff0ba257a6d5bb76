/**
 * The enums C and TypeScript share besides drop reasons (directions, event
 * types, endpoint flags): the generated module matches the headers, the
 * generator's check catches drift, and decoders refuse values they do not know.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BACKEND_FLAG, CT_DIR, CT_FLAG, DIRECTION, ENDPOINT_FLAG, ENDPOINT_FLAG_MASK, EVENT_TYPE, SVC_FLAG, decodeDirection, decodeEndpointFlags, decodeEventType,
} from '../../agent/src/maps/gen/enums.js';
import { CountersMap, EndpointsMap, KNOWN_MAPS, decodeEvent, eventRecord } from '../../agent/src/maps/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = 'scripts/gen-enums.mjs';
const INPUTS = [
  SCRIPT, 'docs/architecture.md', 'agent/src/maps/gen/drop-reasons.ts', 'agent/src/maps/gen/enums.ts',
  'bpf/include/shared/drop-reasons.h', 'bpf/include/shared/counters.h', 'bpf/include/shared/events.h', 'bpf/include/shared/endpoint.h',
  'bpf/include/shared/services.h',
];

/** `enum <name> { PN_X = v, ... }` read from a header on its own terms: name -> value. */
function cEnum(header: string, name: string, prefix: string): Record<string, number> {
  const body = new RegExp(`enum\\s+${name}\\s*\\{([\\s\\S]*?)\\};`).exec(readFileSync(join(ROOT, header), 'utf8'))?.[1];
  assert.notEqual(body, undefined, `enum ${name} in ${header}`);
  const out: Record<string, number> = {};
  for (const m of body!.matchAll(new RegExp(`${prefix}(\\w+)\\s*=\\s*(0x[0-9a-fA-F]+|\\d+)`, 'g'))) out[m[1]!.toLowerCase()] = Number(m[2]);
  return out;
}

const isEnumError = (where: string, value: string) => (err: Error & { code?: string }) =>
  err.code === 'BAD_ENUM' && err.message.includes(where) && err.message.includes(value);

describe('shared enums', () => {
  it('the generated names and values equal the C headers', () => {
    assert.deepEqual({ ...DIRECTION }, cEnum('bpf/include/shared/counters.h', 'pn_direction', 'PN_DIR_'));
    assert.deepEqual({ ...EVENT_TYPE }, cEnum('bpf/include/shared/events.h', 'pn_event_type', 'PN_EVENT_'));
    assert.deepEqual({ ...ENDPOINT_FLAG }, cEnum('bpf/include/shared/endpoint.h', 'pn_endpoint_flag', 'PN_EP_F_'));
    assert.deepEqual({ ...SVC_FLAG }, cEnum('bpf/include/shared/services.h', 'pn_svc_flag', 'PN_SVC_F_'));
    assert.deepEqual({ ...BACKEND_FLAG }, cEnum('bpf/include/shared/services.h', 'pn_backend_flag', 'PN_BE_F_'));
    assert.deepEqual({ ...CT_DIR }, cEnum('bpf/include/shared/services.h', 'pn_ct_dir', 'PN_CT_'));
    assert.deepEqual({ ...CT_FLAG }, cEnum('bpf/include/shared/services.h', 'pn_ct_flag', 'PN_CT_F_'));
  });

  it('the drop event type is 1, so a zeroed record is never mistaken for a drop', () => {
    assert.equal(EVENT_TYPE.drop, 1);
    assert.throws(() => decodeEventType(0, 'pn_events record type'), isEnumError('pn_events record type', '0 is not a pn_event_type'));
  });

  it('decoders name known values and throw, naming the field and the value, on unknown ones', () => {
    assert.equal(decodeDirection(0, 'x'), 'ingress');
    assert.equal(decodeDirection(1, 'x'), 'egress');
    assert.throws(() => decodeDirection(7, 'pn_counters key direction'), isEnumError('pn_counters key direction', '7 is not a pn_direction'));
    assert.deepEqual(decodeEndpointFlags(ENDPOINT_FLAG.ready, 'x'), ['ready']);
    assert.deepEqual(decodeEndpointFlags(0, 'x'), []);
    assert.throws(() => decodeEndpointFlags(ENDPOINT_FLAG_MASK | 0x80, 'pn_endpoints[10.0.0.1].flags'), isEnumError('pn_endpoints[10.0.0.1].flags', 'bits 0x80'));
  });

  it('podnet maps dump refuses a pn_counters key with an unknown direction instead of showing it as ingress', () => {
    const known = KNOWN_MAPS['pn_counters']!;
    const key = Buffer.alloc(8);
    key.writeUInt32LE(5, 0);
    key[4] = 9;
    assert.throws(() => known.present!(known.key.decode(key, 0)), isEnumError('pn_counters key direction', '9 is not a pn_direction'));
    key[4] = 1;
    assert.deepEqual(known.present!(known.key.decode(key, 0)), { endpointId: 5, direction: 'egress', reason: 'none' });
  });

  it('a ring-buffer record decodes with its type first, and one of an unknown type is refused', () => {
    const rec = Buffer.alloc(eventRecord.size);
    rec[0] = EVENT_TYPE.drop; rec[1] = 1; rec[2] = DIRECTION.egress; rec[3] = 6;
    rec.writeUInt32LE(60, 4);
    rec.writeBigUInt64LE(123n, 8);
    rec.writeUInt32LE(10, 16);
    assert.deepEqual(
      { ...decodeEvent(rec), saddr: undefined, daddr: undefined },
      { type: 'drop', reason: 'spoofed_source', direction: 'egress', protocol: 6, len: 60, timestampNs: 123n, endpointId: 10, ifindex: 0, saddr: undefined, daddr: undefined },
    );
    rec[0] = 2;
    assert.throws(() => decodeEvent(rec), isEnumError('pn_events record type', '2 is not a pn_event_type'));
  });

  it('the typed map views refuse unknown values instead of defaulting', () => {
    // Only the decode path matters here: a fake map whose typed view yields one bad entry.
    const fakeMap = (entries: Array<[unknown, unknown]>, perCpu = false) => ({
      typed: () => ({ entries: () => entries, entriesPerCpu: () => entries.map(([k, v]) => [k, perCpu ? [v] : v]), keys: () => entries.map(([k]) => k) }),
      maxEntries: 1,
    }) as never;
    const eps = new EndpointsMap(fakeMap([[{ addr: '10.0.0.1' }, { ifindex: 1, endpointId: 1, podMac: '', hostMac: '', flags: 0x40 }]]));
    assert.throws(() => [...eps.entries()], isEnumError('pn_endpoints[10.0.0.1].flags', 'bits 0x40'));
    const counters = new CountersMap(fakeMap([[{ endpointId: 1, direction: 3, reason: 0, pad: 0 }, { packets: 1n, bytes: 1n }]], true));
    assert.throws(() => counters.readAll(), isEnumError('pn_counters key direction', '3 is not a pn_direction'));
  });
});

describe('shared enums generator on a scratch copy', () => {
  let tree: string;
  before(() => {
    tree = mkdtempSync(join(tmpdir(), 'pn-enums-'));
    for (const f of INPUTS) {
      mkdirSync(dirname(join(tree, f)), { recursive: true });
      cpSync(join(ROOT, f), join(tree, f));
    }
  });
  after(() => { rmSync(tree, { recursive: true, force: true }); });
  const run = (...args: string[]) => spawnSync(process.execPath, [join(tree, SCRIPT), ...args], { cwd: tree, encoding: 'utf8', timeout: 30_000 });

  it('--check passes on an unchanged copy', () => {
    const r = run('--check');
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
  });

  it('--check fails when a header gains an endpoint flag, and a run regenerates it', () => {
    const h = join(tree, 'bpf/include/shared/endpoint.h');
    const text = readFileSync(h, 'utf8');
    const added = text.replace(/(\tPN_EP_F_READY = 0x1,[^\n]*\n)/, '$1\tPN_EP_F_SCRATCH = 0x4, /* added by a test */\n');
    assert.notEqual(added, text);
    writeFileSync(h, added);
    const r = run('--check');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /agent\/src\/maps\/gen\/enums\.ts is out of date/);
    assert.match(r.stderr, /docs\/architecture\.md is out of date/);
    assert.equal(run().status, 0);
    assert.match(readFileSync(join(tree, 'agent/src/maps/gen/enums.ts'), 'utf8'), /scratch: 0x4,/);
    assert.match(readFileSync(join(tree, 'docs/architecture.md'), 'utf8'), /\| `pn_endpoint_flag` \| 0x4 \| `scratch` \| added by a test \|/);
    assert.equal(run('--check').status, 0);
  });

  it('refuses a flag that is not a single bit, and an entry it cannot read', () => {
    const h = join(tree, 'bpf/include/shared/endpoint.h');
    const text = readFileSync(h, 'utf8');
    writeFileSync(h, text.replace('PN_EP_F_READY = 0x1,', 'PN_EP_F_READY = 0x3,'));
    let r = run('--check');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /PN_EP_F_READY must be a single bit, is 3/);
    writeFileSync(h, text.replace('PN_EP_F_READY = 0x1, /*', 'PN_EP_F_READY = 0x1 | 0, /*'));
    r = run('--check');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot read enum pn_endpoint_flag entry/);
    writeFileSync(h, text);
  });
});
