/**
 * The CLI bundle keeps the read commands light: its CommonJS entry loads node
 * built-ins only, and what `podnet --help` loads statically from the full CLI
 * holds no FFI, logger or metrics: those chunks load on demand (checked on
 * esbuild's metafile of a fresh build).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { VERSION } from '../../agent/src/version.js';

const REPO = resolve(fileURLToPath(import.meta.url), '../../..');

interface Output { imports: Array<{ path: string; kind: string; external?: boolean }>; inputs: Record<string, unknown>; entryPoint?: string }
interface Metafile { outputs: Record<string, Output> }

const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

describe('the CLI bundle', () => {
  // Inside the repo, so the full CLI resolves its npm packages.
  const outdir = join(REPO, 'build', `test-bundle-${randomBytes(4).toString('hex')}`);
  let meta: { entry: Metafile; full: Metafile };
  before(() => {
    mkdirSync(outdir, { recursive: true });
    const r = spawnSync(process.execPath, [join(REPO, 'scripts/bundle-agent.mjs'), '--outdir', outdir], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    meta = JSON.parse(readFileSync(join(outdir, 'podnet.meta.json'), 'utf8')) as typeof meta;
  });
  after(() => rmSync(outdir, { recursive: true, force: true }));

  it('has an entry that loads node built-ins only, and the full CLI through a dynamic import', () => {
    const [entry] = Object.values(meta.entry.outputs).filter((o) => o.entryPoint);
    assert.ok(entry, 'an entry output');
    for (const i of entry.imports) {
      if (i.path === './podnet.mjs') assert.equal(i.kind, 'dynamic-import');
      else assert.ok(BUILTINS.has(i.path), `the entry imports ${i.path}`);
    }
    const inputs = Object.keys(entry.inputs);
    assert.deepEqual(inputs.filter((p) => p.includes('node_modules') || /agent\/src\/(libbpf|netlink|log|metrics|datapath|endpoints|maps)\//.test(p) || p.endsWith('agent/src/agent.ts')), []);
    assert.ok(inputs.some((p) => p.endsWith('agent/src/cli/read.ts')), 'the read commands are in the entry');
  });

  it('keeps koffi, pino and prom-client out of what the full CLI loads before a command runs', () => {
    const outputs = meta.full.outputs;
    const key = (p: string): string => Object.keys(outputs).find((k) => k.endsWith(p.replace(/^\.\//, '')) || k === p)!;
    const start = Object.keys(outputs).find((k) => outputs[k]!.entryPoint)!;
    const seen = new Set<string>();
    const packages = new Set<string>();
    const walk = (k: string): void => {
      if (seen.has(k)) return;
      seen.add(k);
      for (const i of outputs[k]!.imports) {
        if (i.kind !== 'import-statement') continue;
        if (i.external) { packages.add(i.path); continue; }
        walk(key(i.path));
      }
    };
    walk(start);
    assert.deepEqual([...packages].filter((p) => !BUILTINS.has(p)).sort(), ['yargs']);
    const heavy = Object.entries(outputs).filter(([, o]) => o.imports.some((i) => ['koffi', 'pino', 'prom-client'].includes(i.path))).map(([k]) => k);
    assert.ok(heavy.length > 0, 'the heavy packages are in some chunk');
    for (const h of heavy) assert.equal(seen.has(h), false, `${h} is loaded statically`);
  });

  it('runs from its entry: --version on the fast path, help through the full CLI', () => {
    const v = spawnSync(process.execPath, [join(outdir, 'podnet.cjs'), '--version'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    assert.equal(v.stdout, `${VERSION}\n`, v.stderr);
    const help = spawnSync(process.execPath, [join(outdir, 'podnet.cjs'), '--help'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /podnet cleanup/);
  });
});
