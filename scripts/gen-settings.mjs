#!/usr/bin/env node
// Writes the agent settings table in README.md (between the settings markers)
// from agent/src/config/settings.ts. With --check, fails when the README is
// out of date instead of writing (test/unit/agent-settings.test.ts checks it too).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { tsImport } from 'tsx/esm/api';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { withSettingsTable } = await tsImport('../agent/src/config/readme.ts', import.meta.url);
const path = join(root, 'README.md');
const before = readFileSync(path, 'utf8');
const after = withSettingsTable(before);
if (process.argv.includes('--check')) {
  if (after !== before) {
    console.error('gen-settings: README.md settings table is out of date; run node scripts/gen-settings.mjs');
    process.exit(1);
  }
} else if (after !== before) {
  writeFileSync(path, after);
  console.log('gen-settings: wrote README.md');
}
