/**
 * A stand-in for the agent's API in CNI tests: a node:http server on a unix
 * socket that records every request and answers from per-route handlers
 * (canned 200 answers by default).
 */
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

/** One request the fake agent received. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** The raw body text. */
  text: string;
  /** The body parsed as JSON, or undefined when empty. */
  body: unknown;
}

/** What a route handler answers: status and JSON body, raw text, or nothing at all (hang). */
export type FakeAnswer = { status: number; body?: unknown; text?: string; chunked?: boolean } | 'hang';

/** A handler for `METHOD /path`. */
export type FakeHandler = (req: RecordedRequest) => FakeAnswer;

/** A 1.1.0 result like the agent's: host veth, pod eth0, IPv4 + IPv6, a default route with a 1.1-only field. */
export const CANNED_RESULT = Object.freeze({
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'pn3f2a9c1d', mac: '6e:7a:01:02:03:04' },
    { name: 'eth0', mac: '0a:58:0a:f4:00:05', mtu: 1450, sandbox: '/var/run/netns/pod1' },
  ],
  ips: [
    { address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 1 },
    { address: 'fd00:10:244::5/128', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1', mtu: 1450 }],
  dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
});

/** A running fake agent. */
export interface FakeAgent {
  socketPath: string;
  requests: RecordedRequest[];
  /** Replaces the handler for `"POST /v1/cni/add"` etc. */
  on(route: string, handler: FakeHandler): void;
  close(): Promise<void>;
}

const DEFAULT_ROUTES: Record<string, FakeHandler> = {
  'POST /v1/cni/add': () => ({ status: 200, body: CANNED_RESULT }),
  'POST /v1/cni/del': () => ({ status: 200, body: {} }),
  'POST /v1/cni/check': () => ({ status: 200, body: {} }),
  'POST /v1/cni/gc': () => ({ status: 200, body: {} }),
  'GET /v1/cni/status': () => ({ status: 200, body: {} }),
};

/** Starts a fake agent listening on `<dir>/<name>`. */
export async function startFakeAgent(dir: string, name = 'agent.sock'): Promise<FakeAgent> {
  const socketPath = join(dir, name);
  const routes = new Map(Object.entries(DEFAULT_ROUTES));
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, text, body: text ? JSON.parse(text) : undefined };
      requests.push(rec);
      const handler = routes.get(`${rec.method} ${rec.url}`);
      const answer: FakeAnswer = handler ? handler(rec) : { status: 404, body: { code: 999, msg: `no route ${rec.method} ${rec.url}` } };
      if (answer === 'hang') return;
      const payload = answer.text ?? (answer.body === undefined ? '' : JSON.stringify(answer.body));
      if (answer.chunked) {
        res.writeHead(answer.status, { 'Content-Type': 'application/json' });
        // Two writes force chunked transfer encoding.
        const mid = Math.floor(payload.length / 2);
        res.write(payload.slice(0, mid));
        setTimeout(() => res.end(payload.slice(mid)), 5);
      } else {
        res.writeHead(answer.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) });
        res.end(payload);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    requests,
    on(route, handler) {
      routes.set(route, handler);
    },
    close() {
      // Hanging handlers keep connections open; drop them so close() returns.
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
