/**
 * How informers reach the API server: one list call and one watch stream,
 * behind an interface unit tests fake. The real one (apiTransport) speaks
 * HTTP/1.1 to the API server with node's own http/https and JSON.parse:
 * GET a collection with limit/continue, and GET ?watch=true read as
 * newline-delimited JSON events. A general client library would do the
 * same requests but costs the agent tens of MB of memory for the whole
 * generated API it loads (docs/architecture.md, "Decisions").
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { inClusterConfig, loadKubeconfig, type InClusterEnv } from './kubeconfig.js';

/** The fields of any Kubernetes object an informer relies on. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** A resource an informer watches. */
export interface ResourceType {
  /** e.g. "v1", "discovery.k8s.io/v1". */
  readonly apiVersion: string;
  /** e.g. "Node". */
  readonly kind: string;
  /** e.g. "nodes", for the watch URL. */
  readonly plural: string;
}

/** What to list and watch. */
export interface Selection {
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
}

/** One page of a list. */
export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  continueToken?: string;
}

/** A watch event as the API server sends it. */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T | { kind?: string; code?: number; reason?: string; message?: string; metadata?: { resourceVersion?: string } };
}

/** A watch stream in progress. */
export interface WatchHandle {
  abort(): void;
}

/** An API server error with its HTTP status, so informers can tell 410 Gone from the rest. */
export class ApiStatusError extends Error {
  constructor(readonly statusCode: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApiStatusError';
  }
}

/** List and watch, nothing else. */
export interface KubeTransport {
  /** Where the API server is (for messages). */
  readonly server: string;
  list<T extends KubeObject>(type: ResourceType, sel: Selection, page: { limit: number; continueToken?: string }): Promise<ListPage<T>>;
  /**
   * Starts a watch from `resourceVersion`. `onEvent` gets every event;
   * `onDone` is called once when the stream ends (null: closed by the
   * server, as it does after timeoutSeconds) or fails.
   */
  watch<T extends KubeObject>(
    type: ResourceType, sel: Selection, resourceVersion: string, timeoutSeconds: number,
    onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void,
  ): Promise<WatchHandle>;
}

/** The URL path of a resource collection (cluster-scoped or across all namespaces). */
export function collectionPath(type: ResourceType): string {
  return type.apiVersion.includes('/') ? `/apis/${type.apiVersion}/${type.plural}` : `/api/${type.apiVersion}/${type.plural}`;
}

/** Knobs of the transport, with defaults for a real API server. */
export interface ApiTransportOptions {
  /** A list request that has not finished after this long fails (ms, default 60 s). */
  listTimeoutMs?: number;
  /** A watch that has sent nothing for this long past its timeoutSeconds is ended as failed (ms, default 30 s). */
  watchGraceMs?: number;
  /** User-Agent header. */
  userAgent?: string;
}

/** What an answer that is not 2xx says: the Status message when there is one. */
function statusMessage(code: number, body: string): string {
  try {
    const s = JSON.parse(body) as { message?: unknown; reason?: unknown };
    if (typeof s.message === 'string' && s.message !== '') return `${s.message} (HTTP ${code}${typeof s.reason === 'string' ? ` ${s.reason}` : ''})`;
  } catch { /* not JSON */ }
  const text = body.trim().slice(0, 200);
  return `HTTP ${code}${text ? `: ${text}` : ''}`;
}

/**
 * The transport for an API endpoint. `kubeconfig` is a file path, or
 * undefined for the in-cluster config (then `inCluster` gives
 * KUBERNETES_SERVICE_HOST/PORT).
 * @throws KubeconfigError when no usable config is found.
 */
export function apiTransport(kubeconfig: string | undefined, inCluster: InClusterEnv = {}, opts: ApiTransportOptions = {}): KubeTransport {
  const ep = kubeconfig ? loadKubeconfig(kubeconfig) : inClusterConfig(inCluster);
  const url = new URL(ep.server);
  const tls = url.protocol === 'https:';
  const base = url.pathname.replace(/\/+$/, '');
  const listTimeoutMs = opts.listTimeoutMs ?? 60_000;
  const watchGraceMs = opts.watchGraceMs ?? 30_000;
  // One keep-alive pool: lists reuse connections; each watch holds one while it runs.
  const agent = tls
    ? new HttpsAgent({
      keepAlive: true, maxFreeSockets: 4,
      ...(ep.ca ? { ca: ep.ca } : {}), ...(ep.cert ? { cert: ep.cert, key: ep.key } : {}),
      ...(ep.tlsServerName ? { servername: ep.tlsServerName } : {}),
      rejectUnauthorized: !ep.insecureSkipTlsVerify,
    })
    : new HttpAgent({ keepAlive: true, maxFreeSockets: 4 });
  const headers = (): Record<string, string> => {
    const h: Record<string, string> = { accept: 'application/json', 'user-agent': opts.userAgent ?? 'podnet-agent' };
    // A token file is read for every request: service-account tokens are rotated in place.
    const token = ep.token ?? (ep.tokenFile ? readFileSync(ep.tokenFile, 'utf8').trim() : undefined);
    if (token) h['authorization'] = `Bearer ${token}`;
    else if (ep.username !== undefined) h['authorization'] = `Basic ${Buffer.from(`${ep.username}:${ep.password ?? ''}`).toString('base64')}`;
    return h;
  };
  const get = (path: string, q: Record<string, string | number | boolean | undefined>, onResponse: (res: IncomingMessage) => void, onError: (err: Error) => void): ClientRequest => {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') qs.set(k, String(v));
    const s = qs.toString();
    const o = { method: 'GET', protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || (tls ? 443 : 80), path: `${base}${path}${s ? `?${s}` : ''}`, agent, headers: headers() };
    const req = tls ? httpsRequest(o, onResponse) : httpRequest(o, onResponse);
    req.on('error', onError);
    req.end();
    return req;
  };
  const server = ep.server;
  return {
    server,
    list<T extends KubeObject>(type: ResourceType, sel: Selection, page: { limit: number; continueToken?: string }): Promise<ListPage<T>> {
      const what = `list ${type.plural} from ${server}`;
      return new Promise<ListPage<T>>((resolve, reject) => {
        let req: ClientRequest;
        const fail = (code: number, msg: string, cause?: unknown): void => reject(new ApiStatusError(code, `${what}: ${msg}`, { cause }));
        try {
          req = get(collectionPath(type), { limit: page.limit, continue: page.continueToken, fieldSelector: sel.fieldSelector, labelSelector: sel.labelSelector }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', (err) => fail(0, err.message, err));
            res.on('end', () => {
              const body = Buffer.concat(chunks).toString('utf8');
              const code = res.statusCode ?? 0;
              if (code < 200 || code > 299) { fail(code, statusMessage(code, body)); return; }
              let list: { items?: unknown; metadata?: { resourceVersion?: string; continue?: string } };
              try {
                list = JSON.parse(body) as typeof list;
              } catch (err) {
                fail(code, `answer is not JSON: ${(err as Error).message}`, err);
                return;
              }
              const cont = list.metadata?.continue;
              resolve({ items: Array.isArray(list.items) ? (list.items as T[]) : [], resourceVersion: list.metadata?.resourceVersion ?? '', ...(cont ? { continueToken: cont } : {}) });
            });
          }, (err) => fail(0, err.message, err));
        } catch (err) {
          fail(0, (err as Error).message, err);
          return;
        }
        req.setTimeout(listTimeoutMs, () => req.destroy(new Error(`no answer within ${listTimeoutMs} ms`)));
      });
    },
    watch<T extends KubeObject>(
      type: ResourceType, sel: Selection, resourceVersion: string, timeoutSeconds: number,
      onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void,
    ): Promise<WatchHandle> {
      const what = `watch ${type.plural} on ${server}`;
      let finished = false;
      const done = (err: Error | null): void => {
        if (finished) return;
        finished = true;
        onDone(err);
      };
      let req: ClientRequest | undefined;
      try {
        req = get(collectionPath(type), { watch: true, resourceVersion, allowWatchBookmarks: true, timeoutSeconds, fieldSelector: sel.fieldSelector, labelSelector: sel.labelSelector }, (res) => {
          const code = res.statusCode ?? 0;
          if (code !== 200) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => done(new ApiStatusError(code, `${what}: ${statusMessage(code, Buffer.concat(chunks).toString('utf8'))}`)));
            res.on('error', (err) => done(new ApiStatusError(code, `${what}: ${err.message}`, { cause: err })));
            return;
          }
          res.setEncoding('utf8');
          let rest = '';
          res.on('data', (chunk: string) => {
            if (finished) return;
            rest += chunk;
            let nl: number;
            while ((nl = rest.indexOf('\n')) >= 0) {
              const line = rest.slice(0, nl).trim();
              rest = rest.slice(nl + 1);
              if (line === '') continue;
              let e: WatchEvent<T>;
              try {
                e = JSON.parse(line) as WatchEvent<T>;
              } catch (err) {
                req?.destroy();
                done(new ApiStatusError(0, `${what}: an event is not JSON: ${(err as Error).message}`, { cause: err }));
                return;
              }
              onEvent(e);
              if (finished) return;
            }
          });
          res.on('end', () => done(null));
          res.on('error', (err) => done(new ApiStatusError(0, `${what}: ${err.message}`, { cause: err })));
          res.on('aborted', () => done(new ApiStatusError(0, `${what}: the server closed the stream mid-answer`)));
        }, (err) => done(new ApiStatusError(0, `${what}: ${err.message}`, { cause: err })));
        // The server ends the stream after timeoutSeconds; silence well past that is a dead connection.
        const r = req;
        r.setTimeout(timeoutSeconds * 1000 + watchGraceMs, () => r.destroy(new Error(`nothing received for ${timeoutSeconds}s + ${watchGraceMs} ms`)));
      } catch (err) {
        done(new ApiStatusError(0, `${what}: ${(err as Error).message}`, { cause: err }));
      }
      return Promise.resolve({
        abort: () => {
          finished = true;
          req?.destroy();
        },
      });
    },
  };
}
