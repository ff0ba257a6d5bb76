#!/usr/bin/env node
/**
 * Bundles the CNI entry point (cni/src/main.ts) into one minified CommonJS
 * file, executable through its shebang, and refuses bundles that pull in
 * anything beyond cni/src and a few node built-ins.
 *
 *   node cni/build.mjs [--outfile <path>]     (default build/cni/podnet.cjs)
 */
import { build } from 'esbuild';
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * `env -S` splits the line; `-u` drops variables the runtime's environment
 * may carry that slow node's start-up (NODE_EXTRA_CA_CERTS makes node parse
 * a CA bundle before running any code) or change its behaviour (NODE_OPTIONS
 * could --require arbitrary code). The CNI_* variables pass through.
 */
export const SHEBANG = '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS -u NODE_OPTIONS -u NODE_V8_COVERAGE node';

/** The only modules the bundle may load at run time. */
export const ALLOWED_BUILTINS = new Set(['node:fs', 'node:path', 'node:net']);

/** Builds the bundle into `outfile` and returns its path. Throws when the bundle breaks the rules above. */
export async function buildCni(outfile = resolve(root, 'build/cni/podnet.cjs')) {
  mkdirSync(dirname(outfile), { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: [resolve(root, 'cni/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    banner: { js: SHEBANG },
    metafile: true,
    logLevel: 'warning',
  });
  const srcDir = `cni${sep}src${sep}`;
  // The wire protocol (types and error codes, no imports) is shared with the agent.
  const shared = new Set([`agent${sep}src${sep}api${sep}protocol.ts`, `agent${sep}src${sep}api${sep}cni-error.ts`, `agent${sep}src${sep}errors${sep}base.ts`]);
  const strays = Object.keys(result.metafile.inputs).map((p) => p.split('/').join(sep)).filter((p) => !p.startsWith(srcDir) && !shared.has(p));
  if (strays.length > 0) throw new Error(`bundle CNI entry point: inputs outside cni/src: ${strays.join(', ')}`);
  const output = result.metafile.outputs[relative(root, outfile).split(sep).join('/')];
  if (!output) throw new Error(`bundle CNI entry point: esbuild reported no output for ${outfile}`);
  const imports = output.imports.map((i) => i.path).filter((p) => !ALLOWED_BUILTINS.has(p));
  if (imports.length > 0) throw new Error(`bundle CNI entry point: loads modules outside ${[...ALLOWED_BUILTINS].join(', ')}: ${imports.join(', ')}`);
  chmodSync(outfile, 0o755);
  return outfile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--outfile');
  const outfile = i > 0 && process.argv[i + 1] ? resolve(process.argv[i + 1]) : undefined;
  buildCni(outfile).then(
    (p) => console.log(`built ${relative(process.cwd(), p) || p}`),
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
