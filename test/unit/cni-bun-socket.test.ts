/**
 * The agent client on bun's socket API (bunConnect), driven through a fake
 * `Bun.connect` built on node:net that behaves like bun's: callbacks instead
 * of events, errors with the errno name in `code`, and writes that the
 * kernel may take only in part (the rest follows on drain).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgentClient, type BunRuntime, type BunSocket, type BunSocketHandlers } from '../../cni/src/agent-client.js';
import { startFakeAgent, type FakeAgent } from '../../cni/test/fake-agent.js';

/** A fake of bun's `Bun.connect` on node:net; each write takes at most `maxWrite` bytes. */
function fakeBun(maxWrite: number): BunRuntime & { writes: number; drains: number } {
  const rt = {
    writes: 0,
    drains: 0,
    connect({ unix, socket }: { unix: string; socket: BunSocketHandlers }): Promise<unknown> {
      return new Promise((resolve, reject) => {
        const conn = createConnection({ path: unix });
        let draining = false;
        const s: BunSocket = {
          write(data) {
            rt.writes++;
            const n = Math.min(maxWrite, data.length);
            conn.write(Buffer.from(data.subarray(0, n)));
            if (n < data.length && !draining) {
              draining = true;
              setImmediate(() => {
                draining = false;
                rt.drains++;
                socket.drain(s);
              });
            }
            return n;
          },
          end: () => conn.end(),
        };
        conn.once('connect', () => {
          socket.open(s);
          resolve(s);
        });
        conn.on('data', (d: Buffer) => socket.data(s, new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
        conn.on('end', () => socket.end(s));
        conn.on('close', () => socket.close(s));
        conn.on('error', (err: NodeJS.ErrnoException) => {
          const e = Object.assign(new Error('Failed to connect'), { code: err.code });
          if (conn.connecting) {
            socket.connectError(s, e);
            reject(e);
          } else socket.error(s, e);
        });
      });
    },
  };
  return rt;
}

describe('agent client on bun sockets', () => {
  let dir: string;
  let agent: FakeAgent;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pn-cni-bun-'));
    agent = await startFakeAgent(dir);
  });
  after(async () => {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a request and parses the answer', async () => {
    const bun = fakeBun(1 << 20);
    const out = await createAgentClient(agent.socketPath, bun).request({ method: 'POST', path: '/v1/cni/del', body: { containerId: 'c1' }, timeoutMs: 5000 });
    assert.equal(out.kind, 'response');
    assert.equal(out.kind === 'response' && out.status, 200);
    assert.deepEqual(agent.requests.at(-1)?.body, { containerId: 'c1' });
  });

  it('sends the rest of a request the kernel took only in part once bun reports drain', async () => {
    const bun = fakeBun(100);
    const big = { containerId: 'c2', pad: 'y'.repeat(5000) };
    const out = await createAgentClient(agent.socketPath, bun).request({ method: 'POST', path: '/v1/cni/del', body: big, timeoutMs: 5000 });
    assert.equal(out.kind, 'response', JSON.stringify(out));
    assert.deepEqual(agent.requests.at(-1)?.body, big);
    assert.ok(bun.drains > 0, 'the drain path ran');
  });

  it('reports ENOENT as unreachable when no socket file exists', async () => {
    const out = await createAgentClient(join(dir, 'missing.sock'), fakeBun(1 << 20)).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 5000 });
    assert.deepEqual(out, { kind: 'unreachable', errno: 'ENOENT', detail: `connect ${join(dir, 'missing.sock')}: ENOENT` });
  });

  it('reports ECONNREFUSED as unreachable when the path is no listening socket', async () => {
    // connect(2) to a file that is not a listening socket fails with ECONNREFUSED, as for a crashed agent's stale socket.
    const path = join(dir, 'stale.sock');
    writeFileSync(path, '');
    const out = await createAgentClient(path, fakeBun(1 << 20)).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 5000 });
    assert.deepEqual(out, { kind: 'unreachable', errno: 'ECONNREFUSED', detail: `connect ${path}: ECONNREFUSED` });
  });

  it('times out when the agent never answers', async () => {
    agent.on('GET /v1/cni/status', () => 'hang');
    const out = await createAgentClient(agent.socketPath, fakeBun(1 << 20)).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 200 });
    assert.equal(out.kind, 'timeout');
  });
});
