#!/usr/bin/env node
/**
 * Bundles the CLI and agent in two parts, so the read commands start about
 * as fast as node itself:
 *
 * - build/podnet.cjs: the entry (agent/src/cli/main.ts). CommonJS, because
 *   node's ESM loader alone costs more than half of node's start-up; it
 *   holds the hand-parsed read commands and may load node built-ins only.
 * - build/podnet.mjs + build/podnet-chunks/: the full yargs CLI
 *   (agent/src/cli/cli.ts), imported by the entry on demand; `agent`, `maps`
 *   and `cleanup` load their chunks (FFI, logger, metrics) when they run.
 *
 * npm packages stay external: koffi loads a native module at run time.
 * Writes build/podnet.meta.json (both metafiles) for the bundle test.
 *
 *   node scripts/bundle-agent.mjs [--outdir <dir>]    (default build/)
 */
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What the entry may load: node built-ins, and the full CLI through a dynamic import. */
export const ENTRY_MAY_LOAD = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`), './podnet.mjs']);

/** The entry's import of the full CLI becomes an import of the ESM bundle beside it. */
const fullCliExternal = {
  name: 'full-cli-external',
  setup(b) {
    b.onResolve({ filter: /^\.\/cli\.js$/ }, () => ({ path: './podnet.mjs', external: true }));
  },
};

/** Bundles into `outdir`; returns both metafiles. Throws when the entry loads anything beyond ENTRY_MAY_LOAD. */
export async function bundleAgent(outdir = join(root, 'build')) {
  rmSync(join(outdir, 'podnet-chunks'), { recursive: true, force: true });
  const common = { absWorkingDir: root, bundle: true, platform: 'node', target: 'node20', packages: 'external', sourcemap: true, metafile: true, logLevel: 'warning' };
  const entry = await build({
    ...common,
    entryPoints: [join(root, 'agent/src/cli/main.ts')],
    outfile: join(outdir, 'podnet.cjs'),
    format: 'cjs',
    define: { PODNET_BUNDLE_ENTRY: 'true' },
    plugins: [fullCliExternal],
  });
  const full = await build({
    ...common,
    entryPoints: { podnet: join(root, 'agent/src/cli/cli.ts') },
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'podnet-chunks/[name]-[hash]',
    splitting: true,
    format: 'esm',
  });
  writeFileSync(join(outdir, 'podnet.meta.json'), JSON.stringify({ entry: entry.metafile, full: full.metafile }));
  const out = Object.values(entry.metafile.outputs).find((o) => o.entryPoint);
  const strays = (out?.imports ?? []).map((i) => i.path).filter((p) => !ENTRY_MAY_LOAD.has(p));
  if (strays.length > 0) throw new Error(`bundle podnet CLI entry: loads more than node built-ins: ${strays.join(', ')}`);
  return { entry: entry.metafile, full: full.metafile };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--outdir');
  bundleAgent(i > 0 && process.argv[i + 1] ? resolve(process.argv[i + 1]) : undefined).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
