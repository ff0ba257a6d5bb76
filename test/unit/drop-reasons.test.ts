import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DROP_REASONS, decodeDropReason, dropReasonName } from '../../agent/src/maps/gen/drop-reasons.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = 'scripts/gen-enums.mjs';
/** Every input the generator reads besides the drop-reason header. */
const OTHER_HEADERS = ['bpf/include/shared/counters.h', 'bpf/include/shared/events.h', 'bpf/include/shared/endpoint.h', 'bpf/include/shared/services.h'];
const HEADER = 'bpf/include/shared/drop-reasons.h';
const GEN_TS = 'agent/src/maps/gen/drop-reasons.ts';
const GEN_ENUMS = 'agent/src/maps/gen/enums.ts';
const DOC = 'docs/architecture.md';

interface HeaderEntry { name: string; value: number; description: string }

/** Reads the enum out of the C header on its own terms (not with the generator's line regex). */
function parseHeader(text: string): { entries: HeaderEntry[]; max: number } {
  const body = /enum\s+pn_drop_reason\s*\{([\s\S]*?)\};/.exec(text)?.[1];
  assert.notEqual(body, undefined, 'enum pn_drop_reason not found in the header');
  const entries: HeaderEntry[] = [];
  let max: number | undefined;
  const item = /PN_DROP_(\w+)\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,?[ \t]*(?:\/\*([\s\S]*?)\*\/)?/g;
  for (const m of body!.matchAll(item)) {
    const value = Number(m[2]);
    if (m[1] === 'MAX') { max = value; continue; }
    entries.push({ name: m[1]!.toLowerCase(), value, description: (m[3] ?? '').trim() });
  }
  assert.notEqual(max, undefined, 'PN_DROP_MAX not found');
  return { entries, max: max! };
}

function runGenerator(cwdRoot: string, ...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(cwdRoot, SCRIPT), ...args], { cwd: cwdRoot, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

const header = parseHeader(readFileSync(join(ROOT, HEADER), 'utf8'));

describe('drop reasons', () => {
  it('generator --check exits 0 on the committed tree', () => {
    const r = runGenerator(ROOT, '--check');
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
  });

  it('the generated TypeScript lists the same names, values and descriptions as the header', () => {
    assert.equal(header.entries.length > 1, true, 'the header lists more than PN_DROP_NONE');
    assert.deepEqual(DROP_REASONS.map((r) => ({ name: r.name, value: r.value, description: r.description })), header.entries);
  });

  it('numbers the reasons 0..MAX-1 with no gap, 0 meaning not dropped', () => {
    assert.equal(DROP_REASONS.length, header.max);
    DROP_REASONS.forEach((r, i) => assert.equal(r.value, i, r.name));
    assert.equal(DROP_REASONS[0]?.name, 'none');
  });

  it('labels are unique lower-case snake case, usable as metric label values', () => {
    const names = DROP_REASONS.map((r) => r.name);
    assert.equal(new Set(names).size, names.length);
    for (const n of names) assert.match(n, /^[a-z][a-z0-9_]*$/);
  });

  it('dropReasonName maps known values to labels and others to unknown_<n>', () => {
    for (const e of header.entries) assert.equal(dropReasonName(e.value), e.name);
    assert.equal(dropReasonName(header.max), `unknown_${header.max}`);
    assert.equal(dropReasonName(255), 'unknown_255');
  });

  it('decodeDropReason throws a message naming the field and the value for a reason this build does not know', () => {
    for (const e of header.entries) assert.equal(decodeDropReason(e.value, 'x'), e.name);
    assert.throws(() => decodeDropReason(header.max, 'pn_counters key reason'), (err: Error & { code?: string }) =>
      err.code === 'BAD_ENUM' && err.message.includes('pn_counters key reason') && err.message.includes(`${header.max} is not a pn_drop_reason`));
  });

  it('the architecture doc carries one table row per reason', () => {
    const doc = readFileSync(join(ROOT, DOC), 'utf8');
    for (const e of header.entries) {
      assert.equal(doc.includes(`| ${e.value} | \`${e.name}\` | ${e.description} |`), true, `doc row for ${e.name}`);
    }
  });
});

describe('drop reasons generator on a scratch copy', () => {
  let tree: string;
  before(() => {
    tree = mkdtempSync(join(tmpdir(), 'pn-drop-'));
    for (const f of [SCRIPT, HEADER, GEN_TS, GEN_ENUMS, DOC, ...OTHER_HEADERS]) {
      mkdirSync(dirname(join(tree, f)), { recursive: true });
      cpSync(join(ROOT, f), join(tree, f));
    }
  });
  after(() => { rmSync(tree, { recursive: true, force: true }); });

  it('--check fails and writes nothing when the header gained a reason', () => {
    const h = readFileSync(join(tree, HEADER), 'utf8');
    const max = header.max;
    const added = h.replace(/(\s*)PN_DROP_MAX\s*=\s*\d+,/, `$1PN_DROP_SCRATCH_TEST = ${max}, /* added by a test */$1PN_DROP_MAX = ${max + 1},`);
    assert.notEqual(added, h);
    writeFileSync(join(tree, HEADER), added);
    const tsBefore = readFileSync(join(tree, GEN_TS), 'utf8');
    const docBefore = readFileSync(join(tree, DOC), 'utf8');

    const r = runGenerator(tree, '--check');
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${GEN_TS} is out of date`));
    assert.match(r.stderr, new RegExp(`${DOC} is out of date`));
    assert.equal(readFileSync(join(tree, GEN_TS), 'utf8'), tsBefore);
    assert.equal(readFileSync(join(tree, DOC), 'utf8'), docBefore);

    assert.equal(runGenerator(tree).status, 0);
    assert.match(readFileSync(join(tree, GEN_TS), 'utf8'), new RegExp(`\\{ value: ${max}, name: 'scratch_test', description: "added by a test" \\}`));
    assert.match(readFileSync(join(tree, DOC), 'utf8'), new RegExp(`\\| ${max} \\| \`scratch_test\` \\| added by a test \\|`));
    assert.deepEqual(runGenerator(tree, '--check'), { status: 0, stderr: '' });
  });

  it('refuses a header whose values have a gap', () => {
    const victim = header.entries[1]!;
    const upper = `PN_DROP_${victim.name.toUpperCase()}`;
    const h = readFileSync(join(ROOT, HEADER), 'utf8');
    const gapped = h.replace(new RegExp(`${upper}\\s*=\\s*${victim.value},`), `${upper} = ${victim.value + 10},`);
    assert.notEqual(gapped, h);
    writeFileSync(join(tree, HEADER), gapped);
    const r = runGenerator(tree, '--check');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`${upper} must be ${victim.value}, is ${victim.value + 10}`));
  });
});
