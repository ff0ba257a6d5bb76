/**
 * The small pieces the harness and the benchmarks stand on: bounded child
 * processes, namespaces that always go away, percentiles, tables and the
 * interleaving and parallelism helpers.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Netns, freeSubnet24, listNetns, run, runOk, startBackground, waitFor, withTempNetns } from './tools/index.js';
import { fmt, formatTable, mapLimit, median, percentile, ratio, rotation, summarize } from '../bench/lib/index.js';

describe('child processes', () => {
  test('a command that outlives its timeout is killed and reported as timed out', async () => {
    const res = await run('sleep', ['5'], { timeoutMs: 200 });
    assert.equal(res.timedOut, true);
    assert.equal(res.signal, 'SIGKILL');
    assert.ok(res.elapsedMs < 2_000);
  });

  test('runOk rejects with the command, its exit status and its stderr', async () => {
    await assert.rejects(runOk('sh', ['-c', 'echo boom >&2; exit 3']), /run sh -c "echo boom >&2; exit 3": exit 3: boom/);
  });

  test('children get a clean environment unless told otherwise', async () => {
    const res = await runOk('env', []);
    assert.deepEqual(res.stdout.trim().split('\n').map((l) => l.split('=')[0]), ['PATH']);
  });

  test('a background process is stopped by its PID and its output is kept', async () => {
    const bg = startBackground('sh', ['-c', 'echo started; exec sleep 30']);
    await bg.waitForOutput(/started/, 5_000);
    assert.equal(bg.done, false);
    const res = await bg.stop('SIGTERM', 2_000);
    assert.equal(res.signal, 'SIGTERM');
    assert.match(res.stdout, /started/);
    assert.throws(() => process.kill(bg.pid, 0), /ESRCH/);
  });

  test('waitFor gives up after its timeout and says what it waited for', async () => {
    await assert.rejects(waitFor('a condition that never holds', async () => undefined, 150, 20), /wait for a condition that never holds: timed out after 150 ms/);
  });
});

describe('network namespaces', () => {
  test('withTempNetns removes the namespace even when the body throws', async () => {
    let name = '';
    await assert.rejects(
      withTempNetns(async (ns) => {
        name = ns.name;
        assert.ok((await listNetns()).includes(ns.name));
        assert.equal((await ns.execOk('ip', ['-o', 'link', 'show', 'lo'])).stdout.includes('UP'), true, 'lo is up');
        throw new Error('body failed');
      }, 'pnt'),
      /body failed/,
    );
    assert.ok(name !== '');
    assert.equal((await listNetns()).includes(name), false);
  });

  test('closing a namespace twice, or after someone else deleted it, succeeds', async () => {
    const ns = await Netns.create('pnt');
    await runOk('ip', ['netns', 'del', ns.name]);
    await ns.close();
    await ns.close();
    assert.equal((await listNetns()).includes(ns.name), false);
  });

  test('freeSubnet24 picks a /24 no host route or address uses', async () => {
    const { subnet, prefix } = await freeSubnet24();
    assert.match(subnet, /^10\.250\.\d{1,3}\.0\/24$/);
    const routes = await runOk('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    const addrs = await runOk('ip', ['-4', '-o', 'addr', 'show']);
    assert.equal(`${routes.stdout}${addrs.stdout}`.includes(`${prefix}.`), false);
  });
});

describe('benchmark statistics and scheduling', () => {
  test('percentiles interpolate between ranks and match known values', () => {
    const v = [5, 1, 4, 2, 3];
    assert.equal(median(v), 3);
    assert.equal(median([1, 2, 3, 4]), 2.5);
    assert.equal(percentile(v, 0), 1);
    assert.equal(percentile(v, 100), 5);
    assert.equal(percentile(v, 25), 2);
    assert.equal(percentile([...Array(101).keys()], 99), 99);
    assert.deepEqual(v, [5, 1, 4, 2, 3], 'the input is not reordered');
    assert.throws(() => percentile([], 50), /no samples/);
    assert.throws(() => percentile(v, 101), /within 0\.\.100/);
  });

  test('summarize reports count, extremes, percentiles and mean', () => {
    const s = summarize([10, 20, 30, 40]);
    assert.deepEqual({ n: s.n, min: s.min, max: s.max, mean: s.mean, p50: s.p50 }, { n: 4, min: 10, max: 40, mean: 25, p50: 25 });
    assert.ok(Number.isNaN(ratio(1, 0)));
    assert.equal(fmt(Number.NaN), 'n/a');
  });

  test('tables align text left and numbers right', () => {
    const t = formatTable(['name', 'ms'], [['a', 1.5], ['long name', 12.25]]).split('\n');
    assert.deepEqual(t, ['name          ms', '---------  -----', 'a           1.50', 'long name  12.25']);
  });

  test('rotation starts each round with the next variant', () => {
    assert.deepEqual([0, 1, 2, 3].map((r) => rotation(['A', 'B', 'C'], r).join('')), ['ABC', 'BCA', 'CAB', 'ABC']);
  });

  test('mapLimit keeps input order and never exceeds its limit', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit([...Array(20).keys()], 3, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 5 + (i % 4)));
      inFlight--;
      return i * 2;
    });
    assert.deepEqual(out, [...Array(20).keys()].map((i) => i * 2));
    assert.equal(peak, 3);
  });
});
