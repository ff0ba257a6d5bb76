/**
 * MemoryReleaser: a full collection and a C-heap trim after big jobs only,
 * at most once per interval, and the collection really hands back garbage.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryReleaser } from '../../agent/src/util/memory.js';
import { mallocTrim } from '../../agent/src/libbpf/index.js';

describe('MemoryReleaser', () => {
  it('releases after a job of at least minEntries, then not again within the interval', () => {
    let now = 1_000_000;
    let trims = 0;
    const m = new MemoryReleaser({ minEntries: 100, minIntervalMs: 30_000, now: () => now, trim: () => { trims++; } });
    assert.equal(m.after(99), false, 'a small job');
    assert.equal(m.after(100), true, 'a big job');
    assert.equal(trims, 1);
    now += 29_999;
    assert.equal(m.after(50_000), false, 'within the interval');
    now += 1;
    assert.equal(m.after(50_000), true, 'once the interval passed');
    assert.deepEqual({ releases: m.releases, trims }, { releases: 2, trims: 2 });
  });

  it('collects garbage a job left behind at once', () => {
    const m = new MemoryReleaser({ minEntries: 1, minIntervalMs: 0 });
    m.after(1); // the baseline: everything collectable is gone
    const base = process.memoryUsage().heapUsed;
    let junk: unknown[] | undefined = [];
    for (let i = 0; i < 400_000; i++) junk.push({ i, s: `backend-${i}` });
    const grown = process.memoryUsage().heapUsed;
    assert.ok(grown - base > 20e6, `the job grew the heap by ${(grown - base) / 1e6} MB`);
    junk = undefined;
    assert.equal(m.after(1), true);
    const after = process.memoryUsage().heapUsed;
    assert.ok(after - base < (grown - base) / 4, `released: ${(after - base) / 1e6} MB of ${(grown - base) / 1e6} MB left`);
    assert.equal(junk, undefined);
  });

  it('trims the C heap through glibc\'s malloc_trim', () => {
    assert.equal(mallocTrim(), true, 'this machine\'s C library (glibc) has malloc_trim');
  });
});
