/**
 * Where the API server is and how to authenticate to it: a kubeconfig
 * file's current context, or the in-cluster config of a pod's service
 * account. What the agent's transport needs and nothing more: server URL,
 * CA, client certificate, bearer token (inline or a file read per request,
 * so rotated service-account tokens are picked up), basic auth, TLS server
 * name and insecure-skip-tls-verify. Exec credential plugins and
 * auth-provider entries are refused with a message saying what to use
 * instead: a node agent should not run programs from a kubeconfig.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { load } from 'js-yaml';

/** An API server endpoint and the credentials for it. */
export interface ApiEndpoint {
  /** e.g. https://10.0.0.1:6443 (no trailing slash). */
  server: string;
  /** PEM CA bundle; undefined: the system's roots. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Static bearer token. */
  token?: string;
  /** File holding the bearer token, read for every request. */
  tokenFile?: string;
  username?: string;
  password?: string;
  tlsServerName?: string;
  insecureSkipTlsVerify: boolean;
  /** Where it came from, for messages: a kubeconfig path or "in-cluster". */
  origin: string;
}

/** Paths and environment of the in-cluster config, injectable for tests. */
export interface InClusterEnv {
  host?: string;
  port?: string;
  /** Directory with token and ca.crt (default /var/run/secrets/kubernetes.io/serviceaccount). */
  dir?: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A config that cannot be used: names the file and the field. */
export class KubeconfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeconfigError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The entry of a named list (clusters, users, contexts) by name. */
function named(doc: Obj, list: 'clusters' | 'users' | 'contexts', name: string, origin: string): Obj {
  const entries = doc[list];
  if (!Array.isArray(entries)) throw new KubeconfigError(`${origin}: ${list} is missing or not a list`);
  const e = entries.find((x) => isObj(x) && x['name'] === name) as Obj | undefined;
  const inner = e?.[list.slice(0, -1)];
  if (!isObj(inner)) throw new KubeconfigError(`${origin}: ${list} has no entry named "${name}"`);
  return inner;
}

/**
 * The current context of a kubeconfig file (relative file paths in it are
 * relative to the file, as kubectl reads them).
 * @throws KubeconfigError naming the file and the field.
 */
export function loadKubeconfig(path: string): ApiEndpoint {
  const text = readFileSync(path, 'utf8');
  let doc: unknown;
  try {
    doc = load(text);
  } catch (err) {
    throw new KubeconfigError(`${path}: not YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isObj(doc)) throw new KubeconfigError(`${path}: not a kubeconfig (no mapping at the top)`);
  const ctxName = doc['current-context'];
  if (typeof ctxName !== 'string' || ctxName === '') throw new KubeconfigError(`${path}: current-context is not set`);
  const ctx = named(doc, 'contexts', ctxName, path);
  const clusterName = ctx['cluster'];
  if (typeof clusterName !== 'string') throw new KubeconfigError(`${path}: context "${ctxName}" names no cluster`);
  const cluster = named(doc, 'clusters', clusterName, path);
  const userName = ctx['user'];
  const user = typeof userName === 'string' && userName !== '' ? named(doc, 'users', userName, path) : {};
  const base = dirname(path);
  const file = (p: unknown): string => (typeof p === 'string' && !isAbsolute(p) ? join(base, p) : String(p));
  const bytes = (data: unknown, fileField: unknown, what: string): Buffer | undefined => {
    if (typeof data === 'string' && data !== '') return Buffer.from(data, 'base64');
    if (typeof fileField === 'string' && fileField !== '') {
      try {
        return readFileSync(file(fileField));
      } catch (err) {
        throw new KubeconfigError(`${path}: read ${what} ${file(fileField)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    return undefined;
  };
  const server = cluster['server'];
  if (typeof server !== 'string' || !/^https?:\/\//.test(server)) {
    throw new KubeconfigError(`${path}: cluster "${clusterName}" server must be an http(s) URL, got ${JSON.stringify(server)}`);
  }
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    throw new KubeconfigError(`${path}: user "${String(userName)}" uses ${user['exec'] !== undefined ? 'an exec credential plugin' : 'an auth-provider'}, which the podnet agent does not run; give it a token, a tokenFile or a client certificate`);
  }
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const tokenFile = str(user['tokenFile']);
  const out: ApiEndpoint = {
    server: server.replace(/\/+$/, ''),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    origin: path,
  };
  const ca = bytes(cluster['certificate-authority-data'], cluster['certificate-authority'], 'certificate-authority');
  const cert = bytes(user['client-certificate-data'], user['client-certificate'], 'client-certificate');
  const key = bytes(user['client-key-data'], user['client-key'], 'client-key');
  if ((cert === undefined) !== (key === undefined)) throw new KubeconfigError(`${path}: user "${String(userName)}" has a client ${cert ? 'certificate without a key' : 'key without a certificate'}`);
  if (ca) out.ca = ca;
  if (cert && key) { out.cert = cert; out.key = key; }
  if (str(user['token'])) out.token = str(user['token'])!;
  else if (tokenFile) out.tokenFile = file(tokenFile);
  if (str(user['username'])) { out.username = str(user['username'])!; out.password = typeof user['password'] === 'string' ? user['password'] : ''; }
  if (str(cluster['tls-server-name'])) out.tlsServerName = str(cluster['tls-server-name'])!;
  return out;
}

/**
 * The in-cluster config: KUBERNETES_SERVICE_HOST/PORT (given by the caller:
 * no module reads process.env) and the service account's token and CA.
 * @throws KubeconfigError when not running in a pod.
 */
export function inClusterConfig(env: InClusterEnv): ApiEndpoint {
  const dir = env.dir ?? SA_DIR;
  if (!env.host || !env.port) {
    throw new KubeconfigError('in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod? pass --kubeconfig)');
  }
  const host = env.host.includes(':') ? `[${env.host}]` : env.host;
  let ca: Buffer;
  try {
    ca = readFileSync(join(dir, 'ca.crt'));
    readFileSync(join(dir, 'token'));
  } catch (err) {
    throw new KubeconfigError(`in-cluster config: read the service account in ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { server: `https://${host}:${env.port}`, ca, tokenFile: join(dir, 'token'), insecureSkipTlsVerify: false, origin: 'in-cluster' };
}
