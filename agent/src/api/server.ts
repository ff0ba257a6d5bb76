/**
 * The agent's API: JSON over HTTP/1.1 on a unix socket (mode 0600, so only
 * root — kubelet's CNI calls and the CLI — can reach it). Routes are plain
 * async functions; errors they throw become JSON error bodies.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { PodnetError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

/** A request as a route sees it. */
export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

/** A route's answer. */
export interface ApiResponse {
  status: number;
  body: unknown;
}

/** Routes keyed by "METHOD /path". */
export type Routes = Record<string, (req: ApiRequest) => Promise<ApiResponse>>;

/** Maps a thrown error to an HTTP response; the default gives 500 with the message. */
export type ErrorMapper = (err: unknown, req: ApiRequest) => ApiResponse;

const MAX_BODY = 1 << 20;

/** True when something accepts connections on the socket path. */
async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** The HTTP server of the agent API. */
export class ApiServer {
  private server: Server | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly routes: Routes,
    private readonly log: Logger,
    private readonly mapError: ErrorMapper = (err) => ({ status: 500, body: { msg: (err as Error).message } }),
  ) {}

  /** Listens on the socket; refuses to steal a socket another agent is serving. */
  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o700 });
    if (await socketInUse(this.socketPath)) {
      throw new PodnetError('IN_USE', `listen on ${this.socketPath}: another agent is serving it`);
    }
    try { unlinkSync(this.socketPath); } catch { /* no stale socket */ }
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // umask would race with chmod; listen then chmod before anyone is told we are up.
      server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
    this.server = server;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://agent');
    const apiReq: ApiRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, body: undefined };
    let out: ApiResponse;
    try {
      apiReq.body = await readJson(req);
      const route = this.routes[`${apiReq.method} ${apiReq.path}`];
      out = route ? await route(apiReq) : { status: 404, body: { msg: `no route ${apiReq.method} ${apiReq.path}` } };
    } catch (err) {
      out = this.mapError(err, apiReq);
      this.log.warn({ err, method: apiReq.method, path: apiReq.path }, 'api request failed');
    }
    const payload = JSON.stringify(out.body ?? {});
    res.writeHead(out.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
    this.log.debug({ method: apiReq.method, path: apiReq.path, status: out.status, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'api');
  }

  /** Stops accepting requests and removes the socket. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    // close() waits for open connections: end them first, or a client that
    // never finishes its request would hold shutdown forever.
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
    await closed;
    try { unlinkSync(this.socketPath); } catch { /* already gone */ }
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new PodnetError('TOO_BIG', `read request body: larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new PodnetError('BAD_JSON', `parse request body: ${(err as Error).message}`, { cause: err });
  }
}
