/** The metrics listener: /metrics for Prometheus, /healthz and /readyz for probes. */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { PodnetError } from '../errors/index.js';

const ALLOW = 'GET, HEAD';

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body); // node sends no body for HEAD
}

/** Serves a registry over HTTP: GET and HEAD only, anything else is 405. */
export class MetricsServer {
  private server: Server | undefined;
  private registry: Registry | undefined;

  constructor(private readonly addr: { host: string; port: number }, private readonly ready: () => boolean) {}

  /** The bound port (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.addr.port;
  }

  /** Listens and serves `registry` at once. */
  async start(registry: Registry): Promise<void> {
    await this.listen();
    this.serve(registry);
  }

  /** Serves `registry` on /metrics (before this, /metrics answers 503). */
  serve(registry: Registry): void {
    this.registry = registry;
  }

  /**
   * Binds the address, before the agent loads anything, so a port in use
   * fails start-up at once.
   * @throws PodnetError EADDRINUSE/EACCES/... naming the address and the metrics-addr setting.
   */
  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') return text(res, 404, 'not found\n');
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, `method ${req.method} not allowed: use GET or HEAD\n`, { allow: ALLOW });
      if (path === '/healthz') return text(res, 200, 'ok\n');
      if (path === '/readyz') {
        const ok = this.ready();
        return text(res, ok ? 200 : 503, ok ? 'ready\n' : 'not ready\n');
      }
      const registry = this.registry;
      if (!registry) return text(res, 503, 'starting\n');
      // HEAD answers without collecting: a probe should not walk BPF maps.
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end();
        return;
      }
      registry.metrics().then(
        (body) => { res.writeHead(200, { 'content-type': registry.contentType }); res.end(body); },
        (err: Error) => text(res, 500, `collect metrics: ${err.message}\n`),
      );
    });
    const where = `${this.addr.host.includes(':') ? `[${this.addr.host}]` : this.addr.host}:${this.addr.port}`;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? 'EIO';
        reject(new PodnetError(code === 'EADDRINUSE' ? 'IN_USE' : 'INVALID_CONFIG', `listen on ${where} for metrics (metrics-addr): ${code}${code === 'EADDRINUSE' ? ': another process has this port; pick another --metrics-addr or "off"' : ''}`, { cause: err }));
      });
      server.listen(this.addr.port, this.addr.host, () => resolve());
    });
    this.server = server;
  }

  /** Stops listening. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
