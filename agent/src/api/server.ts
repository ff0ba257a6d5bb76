/**
 * The agent's API: JSON over HTTP/1.1 on a unix socket (mode 0600, so only
 * root — kubelet's CNI calls and the CLI — can reach it). Routes are plain
 * async functions; errors they throw become JSON error bodies.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
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
  /** The failure behind an error answer was logged already; the server does not log it again. */
  logged?: boolean;
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
  private routes: Routes | undefined;
  /** Called after each answer with the matched route ("METHOD /path", undefined when none matched) and the status. */
  onAnswer: ((route: string | undefined, status: number) => void) | undefined;
  /** Settles when serve() or fail() is called; requests that arrive earlier wait for it. */
  private readonly opened: Promise<void>;
  private open!: () => void;

  constructor(
    private readonly socketPath: string,
    private readonly log: Logger,
    private readonly mapError: ErrorMapper = (err) => ({ status: 500, body: { msg: (err as Error).message } }),
    /** Answer to requests while the agent could not start (after fail()). */
    private readonly unavailable: (req: ApiRequest) => ApiResponse = () => ({ status: 503, body: { msg: 'podnet agent is not serving' } }),
  ) {
    this.opened = new Promise<void>((resolve) => { this.open = resolve; });
  }

  /**
   * Listens on the socket before the agent loads anything, so a socket in use
   * fails start-up at once. Requests are held until serve(). Refuses to steal
   * a socket another agent is serving. The socket is created in a private
   * directory (0700), made 0600 and only then renamed to its path, so no
   * other user can connect to it at any moment, whatever the umask.
   */
  async listen(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o700 });
    if (await socketInUse(this.socketPath)) {
      throw new PodnetError('IN_USE', `listen on ${this.socketPath}: another agent is serving it`);
    }
    try { unlinkSync(this.socketPath); } catch { /* no stale socket */ }
    const server = createServer((req, res) => void this.handle(req, res));
    const privDir = mkdtempSync(join(dirname(this.socketPath), '.podnet-api-'));
    const tmp = join(privDir, 'sock');
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tmp, () => resolve());
      });
      chmodSync(tmp, 0o600);
      renameSync(tmp, this.socketPath);
    } catch (err) {
      server.close();
      throw new PodnetError('IN_USE', `listen on ${this.socketPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    } finally {
      rmSync(privDir, { recursive: true, force: true });
    }
    this.server = server;
  }

  /** Starts answering with `routes`; held requests proceed. */
  serve(routes: Routes): void {
    this.routes = routes;
    this.open();
  }

  /** The agent will not serve (start-up failed): held and later requests get the `unavailable` answer. */
  fail(): void {
    this.open();
  }

  /** Listens and serves at once (tests and simple users). */
  async start(routes: Routes): Promise<void> {
    await this.listen();
    this.serve(routes);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://agent');
    const apiReq: ApiRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, body: undefined };
    let out: ApiResponse;
    const key = `${apiReq.method} ${apiReq.path}`;
    let matched: string | undefined;
    try {
      apiReq.body = await readJson(req);
      await this.opened;
      if (!this.routes) {
        out = this.unavailable(apiReq);
      } else {
        const route = this.routes[key];
        if (route) matched = key;
        out = route ? await route(apiReq) : { status: 404, body: { msg: `no route ${apiReq.method} ${apiReq.path}` } };
      }
    } catch (err) {
      out = this.mapError(err, apiReq);
      // CNI operations log their own failures, one line each.
      if (!out.logged) this.log.warn({ err, method: apiReq.method, path: apiReq.path, status: out.status }, 'api request failed');
    }
    this.onAnswer?.(matched ?? (this.routes?.[key] ? key : undefined), out.status);
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
