/**
 * How informers reach the API server: one list call and one watch stream,
 * behind an interface unit tests fake. The real one is built on
 * @kubernetes/client-node (KubeConfig for in-cluster or kubeconfig auth,
 * KubernetesObjectApi for generic lists, Watch for the stream), loaded only
 * when the Kubernetes source is used.
 */

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

/**
 * The client-node transport. `kubeconfig` is a file path, or undefined for
 * the in-cluster config (service-account token and CA, KUBERNETES_SERVICE_HOST).
 * @throws Error when no usable config is found.
 */
export async function clientNodeTransport(kubeconfig: string | undefined): Promise<KubeTransport> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`load kubeconfig ${kubeconfig ?? '(in-cluster)'}: no current cluster`);
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const watcher = new k8s.Watch(kc);
  return {
    server: cluster.server,
    async list<T extends KubeObject>(type: ResourceType, sel: Selection, page: { limit: number; continueToken?: string }): Promise<ListPage<T>> {
      try {
        const res = await objects.list(type.apiVersion, type.kind, undefined, undefined, undefined, undefined, sel.fieldSelector, sel.labelSelector, page.limit, page.continueToken);
        const meta = (res as { metadata?: { resourceVersion?: string; _continue?: string; continue?: string } }).metadata ?? {};
        const cont = meta._continue ?? meta.continue;
        return { items: (res.items ?? []) as T[], resourceVersion: meta.resourceVersion ?? '', ...(cont ? { continueToken: cont } : {}) };
      } catch (err) {
        // client-node resolves the kind through discovery first and throws a
        // plain Error when the group version lacks it: that is a 404 too.
        const missing = /^Unrecognized API version and kind/.test((err as Error)?.message ?? '') ? 404 : undefined;
        const code = (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode ?? missing;
        throw new ApiStatusError(typeof code === 'number' ? code : 0, `list ${type.plural} from ${cluster.server}: ${(err as Error).message}`, { cause: err });
      }
    },
    async watch<T extends KubeObject>(
      type: ResourceType, sel: Selection, resourceVersion: string, timeoutSeconds: number,
      onEvent: (e: WatchEvent<T>) => void, onDone: (err: unknown) => void,
    ): Promise<WatchHandle> {
      const q: Record<string, string | number | boolean | undefined> = {
        resourceVersion, allowWatchBookmarks: true, timeoutSeconds, fieldSelector: sel.fieldSelector, labelSelector: sel.labelSelector,
      };
      const done = (err: unknown): void => {
        const status = (err as { statusCode?: number } | null)?.statusCode;
        onDone(err === null || err === undefined ? null : new ApiStatusError(status ?? 0, `watch ${type.plural} on ${cluster.server}: ${(err as Error).message ?? String(err)}`, { cause: err }));
      };
      const ctl = await watcher.watch(collectionPath(type), q, (phase, obj) => onEvent({ type: phase as WatchEvent<T>['type'], object: obj as T }), done);
      return { abort: () => ctl.abort() };
    },
  };
}
