/**
 * The agent's import graph keeps its layering, like the entry point's build
 * allowlist (cni/build.mjs): a small static scanner reads every import of
 * agent/src/**\/*.ts and fails with the offending line when a folder imports
 * a folder above it, when anything but libbpf/ and netlink/ loads the FFI,
 * or when libbpf/ and netlink/ import each other.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(fileURLToPath(import.meta.url), '../../../agent/src');

/**
 * Layers from the bottom up; a module may import its own layer or those
 * below. Units are top-level folders, root files, or (for the wire files
 * shared with the CNI entry point, which import nothing of the agent) single files.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'util', 'log', 'version.ts', 'api/protocol.ts', 'api/cni-error.ts'],
  ['libbpf', 'netlink'],
  ['maps'],
  ['datapath', 'ipam', 'k8s', 'services'],
  ['endpoints', 'config'],
  ['api', 'metrics'],
  ['agent.ts'],
  ['cli'],
];

/** Files outside agent/src the agent may import, with why. */
const OUTSIDE_ALLOWED: Record<string, string> = {
  'cni/src/del-queue.ts': 'the DEL queue format is owned by the entry point that writes it; the agent drains it',
};

/** Pairs in one layer that must not import each other either. */
const SEPARATE = [['libbpf', 'netlink']];

/** Packages only some folders may import. */
const PACKAGE_OWNERS: Record<string, readonly string[]> = {
  koffi: ['libbpf', 'netlink'],
  pino: ['log'],
  'prom-client': ['metrics'],
  yargs: ['cli'],
  'js-yaml': ['services', 'k8s'],
};

/**
 * Upward imports of types only, each a known debt with its way out. A type
 * import costs nothing at run time, but still couples the layers.
 */
const TYPE_ONLY_EXCEPTIONS: Record<string, string> = {
  'datapath -> endpoints': 'PodAttacher is declared by its consumer; it moves down with the datapath reshaping',
  'metrics -> agent.ts': 'metrics read the whole Agent; they are to read narrow sources instead',
};

interface Import { from: string; line: number; spec: string; typeOnly: boolean }

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : n.endsWith('.ts') ? [p] : [];
  });
}

/** Every import, export-from and dynamic import of a TypeScript source, with its line. */
export function scanImports(text: string, from = ''): Import[] {
  const out: Import[] = [];
  // Block comments would hide nothing we need; drop them so examples in docs do not count.
  const clean = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '));
  const re = /^\s*(import|export)\s+(type\s+)?[^'"]*?\bfrom\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of clean.matchAll(re)) {
    const spec = m[3] ?? m[4] ?? m[5]!;
    const start = m.index + (m[0].length - m[0].trimStart().length);
    const line = clean.slice(0, start).split('\n').length;
    out.push({ from, line, spec, typeOnly: m[2] !== undefined });
  }
  return out;
}

/** The layering unit of a path relative to agent/src. */
function unitOf(rel: string): string {
  const parts = rel.split(sep);
  if (parts.length === 1) return parts[0]!;
  const file = parts.join('/');
  if (LAYERS[0]!.includes(file)) return file;
  return parts[0]!;
}

function layerOf(unit: string): number {
  const i = LAYERS.findIndex((l) => l.includes(unit));
  if (i < 0) throw new Error(`agent/src/${unit} is in no layer: add it to LAYERS in test/unit/agent-layering.test.ts`);
  return i;
}

const ALL = files(SRC).map((f) => ({ rel: relative(SRC, f), imports: scanImports(readFileSync(f, 'utf8'), relative(SRC, f)) }));

describe('the agent import graph', () => {
  it('finds imports of every form, and only real ones', () => {
    const got = scanImports([
      "import { a } from './a.js';",
      "import type { B } from '../b/index.js';",
      "export { c } from './c.js';",
      "import './side-effect.js';",
      "const d = await import('./d.js');",
      '/** e.g. import { x } from "../nope.js"; */',
      'import {',
      '  f,',
      "} from 'koffi';",
    ].join('\n'));
    assert.deepEqual(got.map((i) => [i.spec, i.typeOnly, i.line]), [
      ['./a.js', false, 1], ['../b/index.js', true, 2], ['./c.js', false, 3], ['./side-effect.js', false, 4], ['./d.js', false, 5], ['koffi', false, 7],
    ]);
  });

  it('puts every folder and root file of agent/src in a layer', () => {
    for (const f of ALL) layerOf(unitOf(f.rel));
  });

  it('has no folder importing a folder above it', () => {
    const bad: string[] = [];
    for (const f of ALL) {
      const from = unitOf(f.rel);
      for (const i of f.imports) {
        if (!i.spec.startsWith('.')) continue;
        const target = relative(SRC, resolve(SRC, dirname(f.rel), i.spec)).replace(/\.js$/, '.ts');
        if (target.startsWith('..')) {
          if (OUTSIDE_ALLOWED[relative(join(SRC, '../..'), resolve(SRC, target))]) continue;
          bad.push(`agent/src/${f.rel}:${i.line}: imports ${i.spec}, outside agent/src`);
          continue;
        }
        const to = unitOf(target);
        if (to === from) continue;
        const upward = layerOf(to) > layerOf(from);
        const separate = SEPARATE.some(([a, b]) => (from === a && to === b) || (from === b && to === a));
        if (upward && i.typeOnly && TYPE_ONLY_EXCEPTIONS[`${from} -> ${to}`]) continue;
        if (upward || separate) bad.push(`agent/src/${f.rel}:${i.line}: ${from} (layer ${layerOf(from)}) imports ${i.spec} (${to}, layer ${layerOf(to)})`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('loads the FFI only in libbpf/ and netlink/, and each heavy package only in its owner', () => {
    const bad: string[] = [];
    for (const f of ALL) {
      for (const i of f.imports) {
        const owners = PACKAGE_OWNERS[i.spec];
        if (owners && !owners.includes(unitOf(f.rel))) bad.push(`agent/src/${f.rel}:${i.line}: imports ${i.spec}, which only ${owners.join(', ')} may`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('keeps the files shared with the CNI entry point free of agent imports beyond the error base', () => {
    const shared = { 'api/protocol.ts': ['./cni-error.js'], 'api/cni-error.ts': ['../errors/base.js'], 'errors/base.ts': [] as string[] };
    for (const [file, allowed] of Object.entries(shared)) {
      const runtime = scanImports(readFileSync(join(SRC, file), 'utf8')).filter((i) => !i.typeOnly).map((i) => i.spec);
      assert.deepEqual(runtime.filter((s) => !allowed.includes(s)), [], file);
    }
  });
});
