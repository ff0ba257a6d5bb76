/**
 * A minimal HTTP/1.1 client for the agent's unix socket, on node:net only:
 * node:http costs the entry point measurable start-up time, and it needs one
 * request per process. `node:net` itself is loaded on first use, so VERSION
 * never pays for it. Under bun (the runtime the built executable carries)
 * the socket comes from bun's own `Bun.connect` instead: loading bun's
 * node:net costs about 4 ms of every ADD and DEL, Bun.connect well under one
 * (docs/architecture.md, "The CNI entry point executable").
 */

/** One request to the agent. `body` is sent as JSON when present. */
export interface AgentRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** Deadline for connect + request + whole response, in milliseconds. */
  timeoutMs: number;
}

/**
 * What came of a request. Transport failures are values, not exceptions,
 * because each verb maps them to a different CNI outcome (11, 50, DEL queue).
 * - `response`: the agent answered; `body` is the parsed JSON, if any.
 * - `unreachable`: nobody listens (ENOENT, ECONNREFUSED): nothing was sent.
 * - `timeout`: no complete answer before the deadline.
 * - `broken`: the connection failed after connecting, or the answer was not HTTP.
 */
export type AgentOutcome =
  | { kind: 'response'; status: number; body: unknown; text: string }
  | { kind: 'unreachable'; errno: string; detail: string }
  | { kind: 'timeout'; detail: string }
  | { kind: 'broken'; detail: string };

/** Sends requests to the agent; a fake in tests. */
export interface AgentClient {
  /** The socket path this client talks to (named in error messages). */
  readonly socketPath: string;
  /** Sends one request; never rejects. */
  request(req: AgentRequest): Promise<AgentOutcome>;
}

/** Largest answer accepted (headers + body); the agent's answers are a few KiB. */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Errnos that mean no agent is listening on the socket. */
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED']);

/** What bun's global `Bun` offers that the client uses (a subset of bun's `Bun.connect`). */
export interface BunRuntime {
  connect(opts: { unix: string; socket: BunSocketHandlers }): Promise<unknown>;
}

/** One of bun's sockets, as far as the client uses it. */
export interface BunSocket {
  /** Writes what the kernel takes now; returns the byte count (less than asked means wait for drain). */
  write(data: Uint8Array): number;
  end(): void;
}

/** The callbacks `Bun.connect` calls. */
export interface BunSocketHandlers {
  open(s: BunSocket): void;
  data(s: BunSocket, chunk: Uint8Array): void;
  drain(s: BunSocket): void;
  end(s: BunSocket): void;
  close(s: BunSocket): void;
  error(s: BunSocket, err: Error): void;
  connectError(s: BunSocket, err: Error): void;
}

/** The runtime's `Bun` global when running under bun, else undefined. */
function bunRuntime(): BunRuntime | undefined {
  const bun = (globalThis as { Bun?: Partial<BunRuntime> }).Bun;
  return typeof bun?.connect === 'function' ? (bun as BunRuntime) : undefined;
}

/** A client for the agent listening on `socketPath`; `bun` defaults to the runtime's own, when it is bun. */
export function createAgentClient(socketPath: string, bun: BunRuntime | undefined = bunRuntime()): AgentClient {
  return {
    socketPath,
    async request(req) {
      if (bun) return send(bunConnect(bun), socketPath, req);
      const net = await import('node:net');
      return send(net.createConnection, socketPath, req);
    },
  };
}

/**
 * A `Connect` on top of bun's `Bun.connect`: the returned socket emits
 * connect, data, end, close and error like node:net's (errors carry the
 * errno name in `code`: ENOENT, ECONNREFUSED) and queues what the kernel
 * does not take at once until bun reports drain.
 */
export function bunConnect(bun: BunRuntime): Connect {
  return ({ path }) => {
    const listeners = new Map<string, Array<(arg?: any) => void>>();
    const emit = (event: string, arg?: unknown): void => {
      for (const fn of listeners.get(event) ?? []) fn(arg);
    };
    let handle: BunSocket | undefined;
    let destroyed = false;
    let pending: Uint8Array = new Uint8Array(0);
    const flush = (s: BunSocket): void => {
      if (pending.length === 0) return;
      const n = s.write(pending);
      pending = pending.subarray(Math.max(0, n));
    };
    bun
      .connect({
        unix: path,
        socket: {
          open(s) {
            handle = s;
            if (destroyed) s.end();
            else emit('connect');
          },
          data(_s, chunk) {
            emit('data', Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          },
          drain: flush,
          end: () => emit('end'),
          close: () => emit('close'),
          error: (_s, err) => emit('error', err),
          connectError: (_s, err) => emit('error', err),
        },
      })
      // The same failure also arrives through connectError; send() settles once.
      .catch((err: unknown) => emit('error', err));
    const sock: StreamSocket = {
      on(event, fn) {
        listeners.set(event, [...(listeners.get(event) ?? []), fn]);
        return sock;
      },
      write(data) {
        if (!handle) throw new Error('write to the agent socket before it connected');
        pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
        flush(handle);
        return true;
      },
      destroy() {
        destroyed = true;
        handle?.end();
      },
    };
    return sock;
  };
}

/** The bytes of one HTTP/1.1 request. */
export function encodeRequest(req: Pick<AgentRequest, 'method' | 'path' | 'body'>): Buffer {
  const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const head =
    `${req.method} ${req.path} HTTP/1.1\r\n` +
    'Host: podnet\r\n' +
    'Accept: application/json\r\n' +
    'Connection: close\r\n' +
    (body ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` : '') +
    '\r\n';
  return body ? Buffer.concat([Buffer.from(head), body]) : Buffer.from(head);
}

/** A parsed HTTP response, or `undefined` while more bytes are needed. */
export interface ParsedResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/**
 * Parses an HTTP/1.1 response from the bytes received so far. Returns
 * `undefined` when incomplete; with `ended` set (the peer closed), a body
 * without Content-Length or chunking ends at the close.
 * @throws Error("parse agent response: ...") on malformed input
 */
export function parseResponse(buf: Buffer, ended: boolean): ParsedResponse | undefined {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (ended) throw new Error('parse agent response: connection closed before the end of the headers');
    return undefined;
  }
  const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!statusLine?.[1]) throw new Error(`parse agent response: bad status line ${JSON.stringify(lines[0] ?? '')}`);
  const status = Number(statusLine[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`parse agent response: bad header line ${JSON.stringify(line)}`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const rest = buf.subarray(headEnd + 4);
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, headers, body: Buffer.alloc(0) };

  if ((headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) {
    const body = decodeChunked(rest);
    if (body === undefined) {
      if (ended) throw new Error('parse agent response: connection closed inside a chunked body');
      return undefined;
    }
    return { status, headers, body };
  }
  const cl = headers.get('content-length');
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new Error(`parse agent response: bad Content-Length ${JSON.stringify(cl)}`);
    const len = Number(cl);
    if (rest.length < len) {
      if (ended) throw new Error(`parse agent response: connection closed after ${rest.length} of ${len} body bytes`);
      return undefined;
    }
    return { status, headers, body: rest.subarray(0, len) };
  }
  return ended ? { status, headers, body: rest } : undefined;
}

/** Decodes a complete chunked body, or `undefined` when the last chunk has not arrived. */
function decodeChunked(buf: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const sizeText = buf.subarray(at, lineEnd).toString('latin1').split(';')[0]?.trim() ?? '';
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`parse agent response: bad chunk size ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    if (size === 0) {
      // The last chunk's line is followed by optional trailers and an empty
      // line; the first CRLFCRLF from here ends the message either way.
      return buf.indexOf('\r\n\r\n', lineEnd) >= 0 ? Buffer.concat(parts) : undefined;
    }
    const start = lineEnd + 2;
    if (buf.length < start + size + 2) return undefined;
    parts.push(buf.subarray(start, start + size));
    at = start + size + 2;
  }
}

/** The part of a stream socket `send` uses; node:net's Socket has it, so does `bunConnect`'s. */
export interface StreamSocket {
  on(event: string, listener: (arg?: any) => void): unknown;
  write(data: Buffer): unknown;
  destroy(): unknown;
}

/** Opens a connection to the unix socket at `path`. */
export type Connect = (opts: { path: string }) => StreamSocket;

/** Runs one request over a fresh connection made by `connect`. */
export function send(connect: Connect, socketPath: string, req: AgentRequest): Promise<AgentOutcome> {
  return new Promise<AgentOutcome>((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let connected = false;
    let settled = false;
    const sock = connect({ path: socketPath });

    const finish = (outcome: AgentOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(outcome);
    };
    const tryParse = (ended: boolean): void => {
      let parsed: ParsedResponse | undefined;
      try {
        parsed = parseResponse(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), ended);
      } catch (err) {
        finish({ kind: 'broken', detail: (err as Error).message });
        return;
      }
      if (!parsed) {
        if (ended) finish({ kind: 'broken', detail: 'parse agent response: connection closed before a complete answer' });
        return;
      }
      const text = parsed.body.toString('utf8');
      let body: unknown;
      if (text.trim() !== '') {
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
      }
      finish({ kind: 'response', status: parsed.status, body, text });
    };

    const timer = setTimeout(() => {
      finish({ kind: 'timeout', detail: `${req.method} ${req.path}: no answer within ${req.timeoutMs} ms` });
    }, req.timeoutMs);

    sock.on('connect', () => {
      connected = true;
      // write, not end: node:http servers abort a request whose client
      // half-closes before the (asynchronous) answer is written.
      sock.write(encodeRequest(req));
    });
    sock.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > MAX_RESPONSE_BYTES) {
        finish({ kind: 'broken', detail: `${req.method} ${req.path}: answer larger than ${MAX_RESPONSE_BYTES} bytes` });
        return;
      }
      chunks.push(chunk);
      tryParse(false);
    });
    sock.on('end', () => tryParse(true));
    sock.on('close', () => tryParse(true));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const errno = err.code ?? 'EIO';
      if (!connected && UNREACHABLE.has(errno)) {
        finish({ kind: 'unreachable', errno, detail: `connect ${socketPath}: ${errno}` });
      } else if (!connected) {
        finish({ kind: 'broken', detail: `connect ${socketPath}: ${errno}` });
      } else if (chunks.length > 0 && (errno === 'ECONNRESET' || errno === 'EPIPE')) {
        // A server that answers and closes at once can reset our half of the
        // connection; use the answer if it is complete.
        tryParse(true);
      } else {
        finish({ kind: 'broken', detail: `${req.method} ${req.path}: ${errno}` });
      }
    });
  });
}
