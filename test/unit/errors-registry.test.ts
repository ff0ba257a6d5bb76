import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, PodnetError, errnoName, errnoValue } from '../../agent/src/errors/index.js';
import * as errno from '../../agent/src/errors/errno.js';
import { CniError as AgentCniError, CniErrorCode } from '../../agent/src/api/cni-error.js';
import { CniErrorCode as ProtocolCodes } from '../../agent/src/api/protocol.js';
import { CniError as EntryCniError, ErrorCode as EntryCodes } from '../../cni/src/spec.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (n.endsWith('.ts')) out.push(p);
  }
  return out;
}
const SOURCES = [...sources(join(REPO, 'agent/src')), ...sources(join(REPO, 'cni/src'))];

describe('the error code registry', () => {
  it('has no code spelled like an errno name, and a meaning for each', () => {
    for (const [code, meaning] of Object.entries(ERROR_CODES)) {
      assert.equal(errnoValue(code), undefined, `${code} is an errno name`);
      assert.doesNotMatch(code, /^E[A-Z0-9]+$/, `${code} looks like an errno name`);
      assert.match(code, /^[A-Z][A-Z_]+$/, code);
      assert.ok(meaning.length > 10, `${code} needs a one-line meaning`);
    }
  });

  it('holds every code the sources throw with', () => {
    const bad: string[] = [];
    for (const f of SOURCES) {
      for (const m of readFileSync(f, 'utf8').matchAll(/(?:new PodnetError|super)\('([A-Za-z_0-9]+)'/g)) {
        if (!(m[1]! in ERROR_CODES)) bad.push(`${relative(REPO, f)}: ${m[1]}`);
      }
    }
    assert.deepEqual(bad, []);
  });
});

describe('the errno module', () => {
  it('is the only place that spells an errno value', () => {
    const bad: string[] = [];
    for (const f of SOURCES) {
      if (f.endsWith(join('errors', 'errno.ts'))) continue;
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/^\s*(?:export )?const (E[A-Z0-9]{2,}) = .*(?:\d+|errnoValue\()/gm)) bad.push(`${relative(REPO, f)}: ${m[1]}`);
    }
    assert.deepEqual(bad, []);
  });

  it('names values of either sign, and maps names back', () => {
    assert.equal(errnoName(errno.EPERM), 'EPERM');
    assert.equal(errnoName(-errno.EAGAIN), 'EAGAIN');
    assert.equal(errnoName(524), 'ENOTSUPP');
    assert.equal(errnoName(9999), 'E9999');
    assert.equal(errnoValue('ENOENT'), 2);
    assert.equal(errnoValue('EHOSTUNREACH'), 113, 'names beyond the list come from libuv');
    assert.equal(errnoValue('ENOTANERRNO'), undefined);
  });
});

describe('the CNI error', () => {
  it('is one class shared by the agent and the entry point, under the podnet base', () => {
    assert.equal(EntryCniError, AgentCniError);
    assert.equal(EntryCodes, CniErrorCode);
    assert.equal(ProtocolCodes, CniErrorCode);
    const e = new EntryCniError(CniErrorCode.InvalidEnvironment, 'read CNI_NETNS: not a network namespace', 'details');
    assert.ok(e instanceof PodnetError, 'a PodnetError');
    assert.equal(e.code, 'CNI');
    assert.equal(e.cniCode, 4);
    assert.deepEqual(e.toJSON('1.0.0'), { cniVersion: '1.0.0', code: 4, msg: 'read CNI_NETNS: not a network namespace', details: 'details' });
  });
});
