/** The metrics listener: /metrics for Prometheus, /healthz and /readyz for probes. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** Serves a registry over HTTP. */
export class MetricsServer {
  private server: Server | undefined;

  constructor(private readonly registry: Registry, private readonly addr: { host: string; port: number }, private readonly ready: () => boolean) {}

  /** The bound port (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.addr.port;
  }

  /** Starts listening. */
  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        this.registry.metrics().then(
          (text) => { res.writeHead(200, { 'content-type': this.registry.contentType }); res.end(text); },
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
      server.once('error', reject);
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
