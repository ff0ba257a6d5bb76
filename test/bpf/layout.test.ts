/**
 * The TypeScript codecs of every shared struct agree with the compiled
 * objects' BTF: same size, and every field at the same offset with the same
 * size. A change to bpf/include/shared/*.h without its codec fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { LAYOUTS } from '../../agent/src/maps/index.js';
import '../fixtures/bpf/ifcount.js'; // registers the counter fixture's pn_if_key
import { REPO } from '../lib/agent-fixture.js';
import { bpfCflags } from '../../agent/src/datapath/index.js';

interface BtfType { id: number; kind: string; name?: string; size?: number; type_id?: number; nr_elems?: number; members?: Array<{ name: string; type_id: number; bits_offset: number }> }

function btfTypes(object: string): Map<number, BtfType> {
  const out = execFileSync('bpftool', ['btf', 'dump', 'file', object, '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return new Map((JSON.parse(out).types as BtfType[]).map((t) => [t.id, t]));
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  switch (t.kind) {
    case 'INT': case 'STRUCT': case 'UNION': case 'ENUM': return t.size!;
    case 'TYPEDEF': case 'VOLATILE': case 'CONST': return sizeOf(types, t.type_id!);
    case 'ARRAY': return t.nr_elems! * sizeOf(types, t.type_id!);
    case 'PTR': return 8;
    default: throw new Error(`no size for BTF kind ${t.kind}`);
  }
}

// The fixture declares one global of every shared struct, so all of them
// (also pn_event, which no map names) are in its BTF; compiled with the
// datapath's own flags.
const tmp = mkdtempSync(join(tmpdir(), 'podnet-layout-'));
// The counter fixture brings the struct of its own map (pn_if_key).
const objects = ['layout', 'counter'].map((n) => join(tmp, `${n}.bpf.o`));
try {
  const multiarch = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
  for (const o of objects) {
    const src = join(REPO, 'test/fixtures/bpf', basename(o).replace(/\.o$/, '.c'));
    execFileSync('clang', [...bpfCflags(join(REPO, 'bpf')), '-I', `/usr/include/${multiarch}`, '-c', src, '-o', o]);
  }
} catch (err) {
  rmSync(tmp, { recursive: true, force: true });
  throw err;
}
const structs = new Map<string, { size: number; fields: Map<string, { offset: number; size: number }> }>();
for (const o of objects) {
  const types = btfTypes(o);
  for (const t of types.values()) {
    if (t.kind !== 'STRUCT' || !t.name || !t.name.startsWith('pn_') || structs.has(t.name)) continue;
    structs.set(t.name, {
      size: t.size!,
      fields: new Map(t.members!.map((m) => [m.name, { offset: m.bits_offset / 8, size: sizeOf(types, m.type_id) }])),
    });
  }
}

rmSync(tmp, { recursive: true, force: true });

test('every shared struct has a TypeScript layout', () => {
  const have = new Set(LAYOUTS.map((l) => l.cName));
  assert.ok(structs.size >= 7, 'the fixture put the shared structs into BTF');
  for (const name of structs.keys()) assert.ok(have.has(name), `no codec for struct ${name}`);
});

for (const layout of LAYOUTS) {
  test(`the codec of struct ${layout.cName} matches its BTF`, () => {
    const btf = structs.get(layout.cName);
    assert.ok(btf, `struct ${layout.cName} is not in the compiled objects' BTF`);
    assert.equal(layout.size, btf.size, `size of ${layout.cName}`);
    assert.deepEqual(
      new Set(layout.fields.map((f) => f.c)),
      new Set(btf.fields.keys()),
      `fields of ${layout.cName}`,
    );
    for (const f of layout.fields) {
      assert.deepEqual({ offset: f.offset, size: f.size }, btf.fields.get(f.c), `${layout.cName}.${f.c}`);
    }
  });
}
