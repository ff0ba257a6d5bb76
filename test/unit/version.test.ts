import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { VERSION } from '../../agent/src/version.js';

describe('VERSION', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };

  it('equals the version in package.json', () => {
    assert.equal(typeof pkg.version, 'string');
    assert.equal(VERSION, pkg.version);
  });

  it('is a semantic version', () => {
    assert.match(VERSION, /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/);
  });
});
