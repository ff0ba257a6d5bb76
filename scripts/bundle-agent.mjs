#!/usr/bin/env node
// Bundles the agent and CLI (agent/src/cli/main.ts) into build/podnet.mjs.
// npm packages stay external: koffi loads a native module at run time.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'agent/src/cli/main.ts')],
  outfile: join(root, 'build/podnet.mjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
