/** The metrics listener: /metrics for Prometheus, /healthz and /readyz for probes. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConfigError } from '../errors/index.js';

/** Serves a registry over HTTP. */
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
   * fails start-up at once; the error names the setting.
   */
  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        const registry = this.registry;
        if (!registry) {
          res.writeHead(503, { 'content-type': 'text/plain' }); res.end('starting\n');
          return;
        }
        registry.metrics().then(
          (text) => { res.writeHead(200, { 'content-type': registry.contentType }); res.end(text); },
          (err: Error) => { res.writeHead(500, { 'content-type': 'text/plain' }); res.end(`collect metrics: ${err.message}\n`); },
        );
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }); res.end('ok\n');
      } else if (path === '/readyz') {
        const ok = this.ready();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }); res.end(ok ? 'ready\n' : 'not ready\n');
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new ConfigError('metrics-addr', `listen on ${this.addr.host}:${this.addr.port}: ${err.code ?? err.message}${err.code === 'EADDRINUSE' ? ' (another process uses the port; pick another with --metrics-addr, or "off")' : ''}`, { cause: err }));
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
