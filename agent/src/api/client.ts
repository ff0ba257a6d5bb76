/**
 * A small client of the agent API for the CLI: one HTTP/1.1 request per
 * connection over the unix socket, on node:net only. node:http would cost
 * the read commands about as much start-up time as node itself. (A dynamic
 * import of node:net would start node's ESM loader, which costs more than
 * node:net.)
 */
import { createConnection, type Socket } from 'node:net';
import { PodnetError } from '../errors/base.js';

/** Largest answer accepted (headers + body); the agent's answers are a few hundred KiB at most. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** A parsed HTTP response. */
interface Response { status: number; body: string }

/** Parses a complete HTTP/1.1 response (Content-Length, chunked, or until close). Undefined when incomplete. */
export function parseResponse(buf: Buffer, ended: boolean): Response | undefined {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify((head[0] ?? '').slice(0, 60))}`);
  const headers = new Map<string, string>();
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const rest = buf.subarray(headEnd + 4);
  const len = headers.get('content-length');
  if (len !== undefined) {
    const n = Number(len);
    if (rest.length < n) return undefined;
    return { status: Number(m[1]), body: rest.subarray(0, n).toString('utf8') };
  }
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    const parts: Buffer[] = [];
    let off = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', off);
      if (eol < 0) return undefined;
      const size = parseInt(rest.subarray(off, eol).toString('latin1'), 16);
      if (!Number.isFinite(size)) throw new Error('bad chunk size in HTTP response');
      if (size === 0) return { status: Number(m[1]), body: Buffer.concat(parts).toString('utf8') };
      if (rest.length < eol + 2 + size + 2) return undefined;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      off = eol + 2 + size + 2;
    }
  }
  return ended ? { status: Number(m[1]), body: rest.toString('utf8') } : undefined;
}

/**
 * Sends one request to the agent socket and returns the parsed JSON body.
 * @throws PodnetError AGENT_UNREACHABLE (no agent, timeout, broken answer) or API_ERROR (non-200 answer)
 */
export async function apiCall<T>(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const head = `${method} ${path} HTTP/1.1\r\nHost: podnet-agent\r\nConnection: close\r\n` +
    (payload ? `Content-Type: application/json\r\nContent-Length: ${payload.length}\r\n` : '') + '\r\n';
  const down = (why: string, cause?: unknown): PodnetError =>
    new PodnetError('AGENT_UNREACHABLE', `connect to agent at ${socketPath}: ${why}`, cause === undefined ? undefined : { cause });
  const res = await new Promise<Response>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const sock: Socket = createConnection(socketPath);
    const finish = (err: Error | undefined, r?: Response): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(r!);
    };
    const timer = setTimeout(() => finish(down(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const tryParse = (ended: boolean): void => {
      try {
        const r = parseResponse(Buffer.concat(chunks, size), ended);
        if (r) finish(undefined, r);
        else if (ended) finish(down('the agent closed the connection before a complete answer'));
      } catch (err) {
        finish(down((err as Error).message, err));
      }
    };
    sock.on('connect', () => sock.write(payload ? Buffer.concat([Buffer.from(head), payload]) : head));
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > MAX_RESPONSE_BYTES) finish(down(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
      else tryParse(false);
    });
    sock.on('end', () => tryParse(true));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `${err.code}: is the agent running?` : err.code === 'EACCES' ? 'EACCES: the socket is for root only' : err.message;
      finish(down(why, err));
    });
  });
  let parsed: unknown;
  try { parsed = res.body ? JSON.parse(res.body) : {}; } catch { parsed = { msg: res.body }; }
  if (res.status === 200) return parsed as T;
  throw new PodnetError('API_ERROR', `${method} ${path}: agent answered ${res.status}: ${(parsed as { msg?: string }).msg ?? res.body}`);
}
