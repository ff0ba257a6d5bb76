import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_RESPONSE_BYTES, createAgentClient, encodeRequest, parseResponse } from '../../cni/src/agent-client.js';
import { startFakeAgent, type FakeAgent } from '../../cni/test/fake-agent.js';

/** A raw stream server on a unix socket whose reply to each connection is written by `onConn`. */
async function rawServer(path: string, onConn: (sock: Socket, request: () => string) => void): Promise<Server> {
  const server = createServer((sock) => {
    let got = '';
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', () => {});
    onConn(sock, () => got);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('encodeRequest', () => {
  it('writes a POST with JSON body, length and Connection: close', () => {
    const text = encodeRequest({ method: 'POST', path: '/v1/cni/del', body: { a: 'é' } }).toString('utf8');
    const [head, body] = text.split('\r\n\r\n');
    assert.equal(body, '{"a":"é"}');
    const lines = head!.split('\r\n');
    assert.equal(lines[0], 'POST /v1/cni/del HTTP/1.1');
    assert.ok(lines.includes('Content-Type: application/json'));
    assert.ok(lines.includes(`Content-Length: ${Buffer.byteLength('{"a":"é"}')}`));
    assert.ok(lines.includes('Connection: close'));
  });

  it('writes a GET without a body or Content-Length', () => {
    const text = encodeRequest({ method: 'GET', path: '/v1/cni/status' }).toString('latin1');
    assert.ok(text.startsWith('GET /v1/cni/status HTTP/1.1\r\n'));
    assert.ok(text.endsWith('\r\n\r\n'));
    assert.ok(!/Content-Length/i.test(text));
  });
});

describe('parseResponse', () => {
  const b = (s: string): Buffer => Buffer.from(s, 'latin1');

  it('waits for the whole Content-Length body', () => {
    assert.equal(parseResponse(b('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}'), false), undefined);
    const r = parseResponse(b('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{"a"'), false);
    assert.equal(r?.status, 200);
    assert.equal(r?.body.toString(), '{"a"');
  });

  it('decodes a chunked body only once the last chunk arrived', () => {
    const head = 'HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n';
    assert.equal(parseResponse(b(`${head}3\r\n{"a\r\n`), false), undefined);
    assert.equal(parseResponse(b(`${head}3\r\n{"a\r\n3;ext=1\r\n":1\r\n1\r\n}\r\n0\r\n`), false), undefined);
    const r = parseResponse(b(`${head}3\r\n{"a\r\n3;ext=1\r\n":1\r\n1\r\n}\r\n0\r\n\r\n`), false);
    assert.equal(r?.status, 500);
    assert.equal(r?.body.toString(), '{"a":1}');
  });

  it('ends a body without length or chunking at the close', () => {
    assert.equal(parseResponse(b('HTTP/1.0 200 OK\r\n\r\n{"x":1}'), false), undefined);
    assert.equal(parseResponse(b('HTTP/1.0 200 OK\r\n\r\n{"x":1}'), true)?.body.toString(), '{"x":1}');
  });

  it('rejects a bad status line, a truncated body and a bad chunk size', () => {
    assert.throws(() => parseResponse(b('SSH-2.0-OpenSSH\r\n\r\n'), false), /bad status line/);
    assert.throws(() => parseResponse(b('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}'), true), /closed after 2 of 9/);
    assert.throws(() => parseResponse(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'), false), /bad chunk size/);
    assert.throws(() => parseResponse(b('HTTP/1.1 200 OK\r\nContent-Le'), true), /before the end of the headers/);
  });
});

describe('agent client over a unix socket', () => {
  let dir: string;
  let agent: FakeAgent;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pn-cni-client-'));
    agent = await startFakeAgent(dir);
  });
  after(async () => {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the JSON body to a node:http server and parses its JSON answer', async () => {
    agent.on('POST /v1/cni/gc', (req) => ({ status: 200, body: { echoed: req.body } }));
    const out = await createAgentClient(agent.socketPath).request({ method: 'POST', path: '/v1/cni/gc', body: { network: 'n' }, timeoutMs: 2000 });
    assert.deepEqual(out, { kind: 'response', status: 200, body: { echoed: { network: 'n' } }, text: '{"echoed":{"network":"n"}}' });
    const last = agent.requests.at(-1)!;
    assert.equal(last.headers['content-type'], 'application/json');
    assert.equal(last.text, '{"network":"n"}');
  });

  it('reads a chunked answer that arrives in two writes', async () => {
    agent.on('GET /v1/cni/status', () => ({ status: 503, body: { code: 50, msg: 'agent not ready' }, chunked: true }));
    const out = await createAgentClient(agent.socketPath).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 2000 });
    assert.equal(out.kind, 'response');
    assert.ok(out.kind === 'response');
    assert.equal(out.status, 503);
    assert.deepEqual(out.body, { code: 50, msg: 'agent not ready' });
  });

  it('reports unreachable with ENOENT when no socket file exists', async () => {
    const out = await createAgentClient(join(dir, 'missing.sock')).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 2000 });
    assert.equal(out.kind, 'unreachable');
    assert.ok(out.kind === 'unreachable');
    assert.equal(out.errno, 'ENOENT');
  });

  it('reports unreachable with ECONNREFUSED when the listener died and left its socket file', async () => {
    const path = join(dir, 'dead.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.stdout.write('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('listener did not start within 5 s')), 5000);
        child.stdout!.once('data', () => {
          clearTimeout(t);
          resolve();
        });
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // SIGKILL skips node's cleanup, so the socket file stays behind like after a crash.
      process.kill(child.pid!, 'SIGKILL');
      await exited;
      assert.ok(existsSync(path));
      const out = await createAgentClient(path).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 2000 });
      assert.equal(out.kind, 'unreachable');
      assert.ok(out.kind === 'unreachable');
      assert.equal(out.errno, 'ECONNREFUSED');
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    }
  });

  it('times out when the agent accepts but never answers', async () => {
    const path = join(dir, 'silent.sock');
    const server = await rawServer(path, () => {});
    try {
      const t0 = Date.now();
      const out = await createAgentClient(path).request({ method: 'POST', path: '/v1/cni/add', body: {}, timeoutMs: 150 });
      assert.equal(out.kind, 'timeout');
      assert.ok(Date.now() - t0 >= 140, 'waited for the deadline');
      assert.ok(Date.now() - t0 < 2000, 'did not wait much longer than the deadline');
    } finally {
      await closeServer(server);
    }
  });

  it('reports broken when the agent closes without answering', async () => {
    const path = join(dir, 'closer.sock');
    const server = await rawServer(path, (sock) => setTimeout(() => sock.destroy(), 10));
    try {
      const out = await createAgentClient(path).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 2000 });
      assert.equal(out.kind, 'broken');
    } finally {
      await closeServer(server);
    }
  });

  it('reports broken when the answer is not HTTP', async () => {
    const path = join(dir, 'garbage.sock');
    const server = await rawServer(path, (sock) => sock.end('hello there\r\n\r\n'));
    try {
      const out = await createAgentClient(path).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 2000 });
      assert.equal(out.kind, 'broken');
      assert.ok(out.kind === 'broken');
      assert.match(out.detail, /bad status line/);
    } finally {
      await closeServer(server);
    }
  });

  it('stops reading an answer larger than the limit', async () => {
    const path = join(dir, 'huge.sock');
    const server = await rawServer(path, (sock) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${MAX_RESPONSE_BYTES + 10}\r\n\r\n`);
      sock.end(Buffer.alloc(MAX_RESPONSE_BYTES + 10, 0x20));
    });
    try {
      const out = await createAgentClient(path).request({ method: 'GET', path: '/v1/cni/status', timeoutMs: 5000 });
      assert.equal(out.kind, 'broken');
      assert.ok(out.kind === 'broken');
      assert.match(out.detail, /larger than/);
    } finally {
      await closeServer(server);
    }
  });

  it('sends exactly the encoded request bytes on the wire', async () => {
    const path = join(dir, 'echo.sock');
    let seen = '';
    const server = await rawServer(path, (sock, request) => {
      setTimeout(() => {
        seen = request();
        sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
      }, 20);
    });
    try {
      const out = await createAgentClient(path).request({ method: 'POST', path: '/v1/cni/check', body: { x: 1 }, timeoutMs: 2000 });
      assert.equal(out.kind, 'response');
      assert.equal(seen, encodeRequest({ method: 'POST', path: '/v1/cni/check', body: { x: 1 } }).toString('latin1'));
    } finally {
      await closeServer(server);
    }
  });
});
