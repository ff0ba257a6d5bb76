/**
 * What the agent logs about endpoints, read as an operator reads it: one
 * JSON line per failed ADD that says what was undone, and the pod's
 * namespace/name on every line about an endpoint.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { TestNode, rand, testCidr } from '../lib/agent-fixture.js';

/** A logger that keeps every line it writes, parsed. */
function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('endpoint log lines', () => {
  const node = new TestNode(testCidr(252));
  after(() => node.cleanup());

  test('a failed ADD is one log line that names the pod, the failed step and every undone step', async () => {
    const { log, lines } = capture();
    await node.start({ reconcileIntervalMs: 0, failpoint: (s) => { if (s === 'attach') throw new Error('injected failure at attach'); } }, {}, log);
    const ns = node.netns('logf');
    const id = `ctr-logf-${rand()}`;
    const r = await node.cni('ADD', { containerId: id, netns: ns.path, args: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-0' });
    assert.equal(r.code, 1);
    await new Promise((res) => setImmediate(res));
    const about = lines.filter((l) => l['containerId'] === id || JSON.stringify(l).includes(id));
    assert.equal(about.length, 1, `one line about the failed ADD, got:\n${about.map((l) => JSON.stringify(l)).join('\n')}`);
    const line = about[0]!;
    assert.equal(line['msg'], 'endpoint add failed; rolled back');
    assert.equal(line['pod'], 'shop/cart-0');
    assert.equal(line['failedStep'], 'attach');
    const undone = line['undone'] as string[];
    assert.equal(undone.length, 3, `undone: ${JSON.stringify(undone)}`);
    assert.match(undone[0]!, /^detach programs from pn/);
    assert.match(undone[1]!, /^delete veth pn/);
    assert.match(undone[2]!, /^release 10\./);
    await node.stop();
  });

  test('every line about a live endpoint carries its pod namespace/name', async () => {
    const { log, lines } = capture();
    await node.start({ reconcileIntervalMs: 0 }, {}, log);
    const ns = node.netns('logl');
    const id = `ctr-logl-${rand()}`;
    assert.equal((await node.cni('ADD', { containerId: id, netns: ns.path, args: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1' })).code, 0);
    assert.equal((await node.cni('DEL', { containerId: id, netns: ns.path })).code, 0);
    const about = lines.filter((l) => l['containerId'] === id);
    assert.deepEqual(about.map((l) => l['msg']), ['endpoint added', 'endpoint deleted']);
    for (const l of about) assert.equal(l['pod'], 'shop/cart-1', JSON.stringify(l));
  });
});
