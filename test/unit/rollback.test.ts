import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Rollback } from '../../agent/src/util/rollback.js';

describe('Rollback', () => {
  it('runs the undos newest first and reports no failures when all succeed', async () => {
    const rb = new Rollback();
    const ran: string[] = [];
    for (const step of ['ipam', 'veth', 'attach']) rb.push(step, () => { ran.push(step); });
    assert.deepEqual(rb.steps, ['ipam', 'veth', 'attach']);
    assert.deepEqual(await rb.unwind(), []);
    assert.deepEqual(ran, ['attach', 'veth', 'ipam']);
    assert.deepEqual(rb.steps, []);
  });

  it('waits for an async undo before starting the next one', async () => {
    const rb = new Rollback();
    const events: string[] = [];
    rb.push('first', () => { events.push('first'); });
    rb.push('slow', async () => {
      events.push('slow:start');
      await sleep(20);
      events.push('slow:end');
    });
    await rb.unwind();
    assert.deepEqual(events, ['slow:start', 'slow:end', 'first']);
  });

  it('keeps going after a failing undo and reports each failure with its step and error', async () => {
    const rb = new Rollback();
    const ran: string[] = [];
    const syncErr = new Error('delete link: ENODEV');
    const asyncErr = new Error('release ip: EIO');
    rb.push('a', () => { ran.push('a'); });
    rb.push('b', async () => { ran.push('b'); throw asyncErr; });
    rb.push('c', () => { ran.push('c'); });
    rb.push('d', () => { ran.push('d'); throw syncErr; });
    const failed = await rb.unwind();
    assert.deepEqual(ran, ['d', 'c', 'b', 'a']);
    assert.equal(failed.length, 2);
    assert.equal(failed[0]?.what, 'd');
    assert.equal(failed[0]?.error, syncErr);
    assert.equal(failed[1]?.what, 'b');
    assert.equal(failed[1]?.error, asyncErr);
  });

  it('reports a non-Error value thrown by an undo as is', async () => {
    const rb = new Rollback();
    rb.push('odd', () => { throw 'plain string'; });
    assert.deepEqual(await rb.unwind(), [{ what: 'odd', error: 'plain string' }]);
  });

  it('drops every undo on commit, so a later unwind does nothing', async () => {
    const rb = new Rollback();
    let ran = 0;
    rb.push('a', () => { ran++; });
    rb.push('b', () => { ran++; });
    rb.commit();
    assert.deepEqual(rb.steps, []);
    assert.deepEqual(await rb.unwind(), []);
    assert.equal(ran, 0);
  });

  it('refuses a push after commit, naming the step', () => {
    const rb = new Rollback();
    rb.push('a', () => {});
    rb.commit();
    assert.throws(() => rb.push('late', () => {}), /rollback: push "late" after commit\/unwind/);
    assert.deepEqual(rb.steps, []);
  });

  it('refuses a push after unwind, and a second unwind runs nothing again', async () => {
    const rb = new Rollback();
    let ran = 0;
    rb.push('a', () => { ran++; });
    await rb.unwind();
    assert.throws(() => rb.push('late', () => {}), /push "late" after commit\/unwind/);
    assert.deepEqual(await rb.unwind(), []);
    assert.equal(ran, 1);
  });

  it('unwinds an empty stack without error', async () => {
    assert.deepEqual(await new Rollback().unwind(), []);
  });
});
