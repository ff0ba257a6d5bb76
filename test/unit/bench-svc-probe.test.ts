/**
 * The Services benchmarks' traffic program (test/bench/lib/svc-probe.cjs) on
 * loopback: its stream and rr answers name the address the server was
 * reached on, which the benchmark pairs a ClusterIP figure by.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const PROBE = fileURLToPath(new URL('../bench/lib/svc-probe.cjs', import.meta.url));
const run = promisify(execFile);

/** A free loopback port (listen on 0, close). */
async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, 'close');
  return port;
}

async function client(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [PROBE, ...args], { timeout: 20_000 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
}

describe('svc-probe', () => {
  let server: ChildProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    server = spawn(process.execPath, [PROBE, 'server', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await Promise.race([once(server.stdout as NodeJS.ReadableStream, 'data'), once(server, 'exit').then(() => ['exited'])])) as [Buffer | string];
    assert.deepEqual(JSON.parse(String(line)), { listening: port }, `the probe server did not start: ${String(line)}`);
  });

  after(async () => {
    if (server.exitCode === null) {
      server.kill();
      await once(server, 'exit');
    }
  });

  it('a stream answers the bytes the server counted and the address it was reached on', async () => {
    const a = await client(['stream', '127.0.0.1', String(port), '200']);
    assert.equal(a['server'], '127.0.0.1');
    assert.ok((a['bytes'] as number) > 0, `no bytes counted: ${JSON.stringify(a)}`);
    assert.ok((a['ms'] as number) >= 200, `stream shorter than asked: ${JSON.stringify(a)}`);
  });

  it('an rr run answers its latency percentiles and the address the server was reached on', async () => {
    const a = await client(['rr', '127.0.0.1', String(port), '200']);
    assert.equal(a['server'], '127.0.0.1');
    assert.ok((a['n'] as number) > 0, `no exchanges recorded: ${JSON.stringify(a)}`);
    assert.ok((a['p50Us'] as number) > 0 && (a['p50Us'] as number) <= (a['p99Us'] as number), `percentiles out of order: ${JSON.stringify(a)}`);
  });

  it('new connections still get their echo after the request (the address is sent only in rr mode)', async () => {
    const a = await client(['connect', '127.0.0.1', String(port), '5', '5000']);
    assert.equal((a['samplesUs'] as number[]).length, 5);
  });
});
