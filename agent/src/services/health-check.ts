/**
 * healthCheckNodePort servers, answering as kube-proxy's do: for every
 * Service with externalTrafficPolicy Local and a healthCheckNodePort, an
 * HTTP server on that port of each NodePort address. Any GET gets
 * 200 with the number of this node's ready endpoints when there is at
 * least one (and the agent is healthy), else 503, so a cloud load balancer
 * sends traffic only to nodes that have a local endpoint:
 *
 *   {
 *   	"service": {
 *   		"namespace": "shop",
 *   		"name": "web"
 *   	},
 *   	"localEndpoints": 2,
 *   	"serviceProxyHealthy": true
 *   }
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from '../log/index.js';
import type { Frontend, ServiceObject } from './model.js';

/** One healthCheckNodePort to serve. */
export interface HealthCheckTarget {
  namespace: string;
  name: string;
  port: number;
  /** This node's ready endpoints of the Service. */
  localEndpoints: number;
}

/**
 * The healthCheckNodePorts the Services ask for, with their local ready
 * endpoint counts taken from the desired frontends (a list, or the
 * frontends of one "namespace/name", so only the Services that ask are looked at).
 */
export function healthCheckTargets(
  services: readonly ServiceObject[], frontends: readonly Frontend[] | ((service: string) => readonly Frontend[]), nodeName: string,
): HealthCheckTarget[] {
  const of = typeof frontends === 'function' ? frontends : (svc: string): readonly Frontend[] => frontends.filter((f) => f.service === svc);
  const out: HealthCheckTarget[] = [];
  for (const svc of services) {
    const spec = svc.spec ?? {};
    const port = spec.healthCheckNodePort;
    if (spec.externalTrafficPolicy !== 'Local' || typeof port !== 'number' || port <= 0 || port > 65535) continue;
    if (spec.type !== 'LoadBalancer' && spec.type !== 'NodePort') continue;
    const namespace = svc.metadata?.namespace ?? 'default';
    const name = svc.metadata?.name ?? '';
    const local = new Set<string>();
    for (const f of of(`${namespace}/${name}`)) for (const b of f.backends) if (b.state === 'ready' && b.nodeName === nodeName) local.add(b.ip);
    out.push({ namespace, name, port, localEndpoints: local.size });
  }
  return out.sort((a, b) => a.port - b.port);
}

/** The body kube-proxy answers with (tab-indented, no trailing newline). */
export function healthCheckBody(t: Pick<HealthCheckTarget, 'namespace' | 'name' | 'localEndpoints'>, healthy: boolean): string {
  return [
    '{',
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(t.namespace)},`,
    `\t\t"name": ${JSON.stringify(t.name)}`,
    '\t},',
    `\t"localEndpoints": ${t.localEndpoints},`,
    `\t"serviceProxyHealthy": ${healthy}`,
    '}',
  ].join('\n');
}

/** Options of {@link HealthCheckServers}. */
export interface HealthCheckOptions {
  /** Whether the agent programs Services right now (serviceProxyHealthy). */
  healthy: () => boolean;
  log: Logger;
}

/** The running healthCheckNodePort servers; update() brings them in line with the targets. */
export class HealthCheckServers {
  private readonly servers = new Map<string, Server>();
  private targets = new Map<number, HealthCheckTarget>();

  constructor(private readonly o: HealthCheckOptions) {}

  /**
   * Serves `targets` on each of `addresses`: opens servers for new
   * address:port pairs, closes those no longer wanted, and changes counts
   * in place. Returns one message per server it could not open (retried on
   * the next update).
   */
  async update(targets: readonly HealthCheckTarget[], addresses: readonly string[]): Promise<string[]> {
    this.targets = new Map(targets.map((t) => [t.port, t]));
    const want = new Set<string>();
    for (const t of targets) for (const a of addresses) want.add(`${a}:${t.port}`);
    const closing: Array<Promise<void>> = [];
    for (const [k, s] of this.servers) {
      if (want.has(k)) continue;
      this.servers.delete(k);
      closing.push(closeServer(s));
    }
    await Promise.all(closing);
    const errors: string[] = [];
    await Promise.all([...want].filter((k) => !this.servers.has(k)).map(async (k) => {
      const i = k.lastIndexOf(':');
      const host = k.slice(0, i);
      const port = Number(k.slice(i + 1));
      const s = createServer((req, res) => {
        const t = this.targets.get(port);
        if (!t) { res.writeHead(404).end(); return; }
        const healthy = this.o.healthy();
        const body = healthCheckBody(t, healthy);
        res.writeHead(t.localEndpoints > 0 && healthy ? 200 : 503, {
          'content-type': 'application/json', 'x-content-type-options': 'nosniff',
          'x-load-balancing-endpoint-weight': String(t.localEndpoints), 'content-length': Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen({ host, port, exclusive: true }, () => { s.off('error', reject); resolve(); });
        });
        this.servers.set(k, s);
      } catch (err) {
        const t = this.targets.get(port);
        errors.push(`listen on ${k} for the healthCheckNodePort of ${t?.namespace}/${t?.name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }));
    for (const e of errors) this.o.log.warn({ error: e }, 'healthCheckNodePort server not started');
    return errors;
  }

  /** The address:port pairs being served. */
  listening(): string[] {
    return [...this.servers.keys()].sort();
  }

  /** Closes every server. */
  async close(): Promise<void> {
    const all = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(all.map(closeServer));
  }
}

function closeServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });
}
