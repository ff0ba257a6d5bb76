/**
 * A small API server client for the Services benchmarks: JSON requests
 * over one keep-alive HTTPS agent with the certificates of a kubeconfig
 * (the cluster's admin one, data embedded as scripts/cluster/pki.sh writes
 * it). kubectl costs about 100 ms of start-up per call on this machine;
 * writing 20,000 objects and timing single changes needs requests that cost
 * only the API server's own time.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { parse } from 'yaml';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { mapLimit } from './runner.js';

interface KubeconfigFile {
  clusters?: { cluster?: { server?: string; 'certificate-authority-data'?: string } }[];
  users?: { user?: { 'client-certificate-data'?: string; 'client-key-data'?: string } }[];
}

/** An API error with the HTTP status and the server's message. */
export class KubeApiError extends PodnetError {
  constructor(readonly status: number, message: string) {
    super('BENCH_FAILED', message);
  }
}

export class KubeApi {
  readonly #server: URL;
  readonly #agent: Agent;

  private constructor(server: string, ca: Buffer, cert: Buffer, key: Buffer, maxSockets: number) {
    this.#server = new URL(server);
    this.#agent = new Agent({ keepAlive: true, maxSockets, ca, cert, key });
  }

  /** A client with the first cluster and user of `path` (embedded data only). */
  static async fromKubeconfig(path: string, maxSockets = 16): Promise<KubeApi> {
    const kc = parse(await readFile(path, 'utf8')) as KubeconfigFile;
    const cluster = kc.clusters?.[0]?.cluster;
    const user = kc.users?.[0]?.user;
    const b64 = (v: string | undefined, what: string): Buffer => {
      if (!v) throw new PodnetError('INVALID_ARGUMENT', `read kubeconfig ${path}: no ${what} (embedded data is required)`);
      return Buffer.from(v, 'base64');
    };
    if (!cluster?.server) throw new PodnetError('INVALID_ARGUMENT', `read kubeconfig ${path}: no cluster server`);
    return new KubeApi(cluster.server, b64(cluster['certificate-authority-data'], 'certificate-authority-data'), b64(user?.['client-certificate-data'], 'client-certificate-data'), b64(user?.['client-key-data'], 'client-key-data'), maxSockets);
  }

  /** One request; resolves with the status and parsed body (text when not JSON). */
  request(method: string, path: string, body?: unknown, opts: { contentType?: string; timeoutMs?: number } = {}): Promise<{ status: number; body: unknown }> {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.#server.hostname,
          port: this.#server.port || 443,
          method,
          path,
          agent: this.#agent,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': payload.length } : {}),
          },
          timeout: opts.timeoutMs ?? 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${opts.timeoutMs ?? 60_000} ms`)));
      req.on('error', (e) => reject(new PodnetError('BENCH_FAILED', `${method} ${path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, { cause: e })));
      if (payload) req.write(payload);
      req.end();
    });
  }

  /** A request that must succeed (2xx); `accept` lists further statuses taken as success (e.g. 404 on delete). */
  async ok(method: string, path: string, body?: unknown, opts: { contentType?: string; timeoutMs?: number; accept?: readonly number[] } = {}): Promise<unknown> {
    const res = await this.request(method, path, body, opts);
    if ((res.status >= 200 && res.status < 300) || opts.accept?.includes(res.status)) return res.body;
    const msg = typeof res.body === 'object' && res.body !== null && 'message' in res.body ? String((res.body as { message: unknown }).message) : String(res.body).slice(0, 300);
    throw new KubeApiError(res.status, `${method} ${path}: HTTP ${res.status}: ${msg}`);
  }

  /** Creates every object (POST to its collection), `parallel` at a time; an existing object (409) counts as created. */
  async createAll(objects: readonly KubeManifest[], parallel = 8): Promise<void> {
    await mapLimit(objects, parallel, (o) => this.ok('POST', collectionPath(o), o, { accept: [409] }));
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#agent.destroy();
  }
}

/** The fields of an object this client needs to place it. */
export interface KubeManifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const PLURALS: Record<string, string> = { Service: 'services', EndpointSlice: 'endpointslices', Namespace: 'namespaces', Pod: 'pods', ConfigMap: 'configmaps' };

/** The collection URL of an object's kind in its namespace. */
export function collectionPath(o: Pick<KubeManifest, 'apiVersion' | 'kind' | 'metadata'>): string {
  const plural = PLURALS[o.kind];
  if (!plural) throw new PodnetError('INVALID_ARGUMENT', `place ${o.kind} ${o.metadata.name}: kind not known to this client`);
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  return o.metadata.namespace ? `${base}/namespaces/${o.metadata.namespace}/${plural}` : `${base}/${plural}`;
}

/** The URL of one object. */
export function objectPath(o: Pick<KubeManifest, 'apiVersion' | 'kind' | 'metadata'>): string {
  return `${collectionPath(o)}/${o.metadata.name}`;
}
