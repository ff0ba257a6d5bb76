/**
 * Every TypeScript map descriptor agrees with its C declaration in
 * bpf/lib/maps/ (type, key and value size, max_entries, pinning), and every
 * node object declares exactly the maps and programs its descriptor lists.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, type MapSpec, type ProgramSpec } from '../../agent/src/libbpf/index.js';
import { ALL_MAPS, KNOWN_MAPS, NODE_MAPS, PINNED_MAPS } from '../../agent/src/maps/index.js';
import { NODE_OBJECTS, compileBpf, hookSection } from '../../agent/src/datapath/index.js';
import { REPO } from '../lib/agent-fixture.js';
import { scratchDir } from '../fixtures/bpf/fixtures.js';

const userMaps = (specs: MapSpec[]) => specs.filter((m) => !m.internal);

describe('map descriptors', () => {
  const out = scratchDir();
  let declared: Map<string, MapSpec>;
  const objects = new Map<string, { maps: MapSpec[]; programs: ProgramSpec[] }>();

  before(async () => {
    const all = await compileBpf('all-maps', { cacheDir: out, source: join(REPO, 'test/fixtures/bpf/all-maps.bpf.c') });
    using obj = BpfObject.open(all.path);
    declared = new Map(userMaps(obj.mapSpecs()).map((m) => [m.name, m]));
    for (const d of NODE_OBJECTS) {
      using o = BpfObject.open((await compileBpf(d.source, { cacheDir: out })).path);
      objects.set(d.name, { maps: userMaps(o.mapSpecs()), programs: o.programSpecs() });
    }
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  test('bpf/lib/maps declares exactly the maps the registry describes', () => {
    assert.deepEqual([...declared.keys()].sort(), ALL_MAPS.map((d) => d.name).sort());
  });

  for (const d of ALL_MAPS) {
    test(`the descriptor of ${d.name} matches its C declaration`, () => {
      const c = declared.get(d.name);
      assert.ok(c, `${d.name} is declared in bpf/lib/maps`);
      assert.deepEqual(
        { type: d.type, keySize: d.key?.size ?? 0, valueSize: d.value?.size ?? 0, maxEntries: d.maxEntries, pinned: d.pinned },
        { type: c.type, keySize: c.keySize, valueSize: c.valueSize, maxEntries: c.maxEntries, pinned: c.pinPath !== undefined },
      );
    });
  }

  test('the registry derives the decode table and the pin list from the descriptors', () => {
    const service = ['pn_affinity', 'pn_backends', 'pn_ct', 'pn_services', 'pn_svc_ranges', 'pn_svc_slots', 'pn_svc_stats', 'pn_sock_rev'];
    assert.deepEqual(Object.keys(KNOWN_MAPS).sort(), ['pn_counters', 'pn_endpoints', 'pn_ipam', ...service].sort());
    assert.equal(KNOWN_MAPS['pn_counters']!.perCpu, true);
    assert.equal(KNOWN_MAPS['pn_svc_stats']!.perCpu, true);
    assert.deepEqual([...PINNED_MAPS].sort(), ['pn_counters', 'pn_endpoints', 'pn_events', 'pn_ipam', ...service].sort());
    assert.deepEqual(Object.values(NODE_MAPS).map((d) => d.name), ALL_MAPS.map((d) => d.name));
  });

  for (const d of NODE_OBJECTS) {
    test(`object ${d.name} carries only the maps and exactly the programs its descriptor lists`, () => {
      const o = objects.get(d.name)!;
      assert.deepEqual(o.maps.map((m) => m.name).sort(), d.maps.map((m) => m.name).sort());
      assert.deepEqual(
        o.programs.map((p) => ({ name: p.name, section: p.section })).sort((a, b) => a.name.localeCompare(b.name)),
        d.programs.map((p) => ({ name: p.name, section: hookSection(p.hook) })).sort((a, b) => a.name.localeCompare(b.name)),
      );
    });
  }

  test('only agent-created maps are absent from every object', () => {
    const inObjects = new Set(NODE_OBJECTS.flatMap((d) => d.maps.map((m) => m.name)));
    for (const m of ALL_MAPS) assert.equal(inObjects.has(m.name), m.origin === 'object', `${m.name} origin ${m.origin}`);
  });
});
