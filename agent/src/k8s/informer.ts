/**
 * A supervised informer for any resource: list, then watch from the list's
 * resourceVersion with bookmarks, keeping a local store and telling
 * handlers what was added, changed or deleted.
 *
 * Supervision:
 * - a watch the server ends normally (timeoutSeconds) is resumed at once from
 *   the last resourceVersion seen (events and bookmarks both advance it);
 * - a watch that fails is resumed after a backoff (doubling, capped, with
 *   jitter), still from the last resourceVersion;
 * - 410 Gone (the resourceVersion is too old) relists; the relist diffs the
 *   new list against the store, so handlers hear about deletions missed
 *   while disconnected;
 * - a list that fails is retried with the same backoff.
 * `synced` resolves after the first complete list; stats count restarts and
 * relists and keep the time of the last event, for metrics and status.
 */
import type { Logger } from '../log/index.js';
import type { KubeObject, KubeTransport, ResourceType, Selection, WatchEvent, WatchHandle } from './transport.js';

/** What an informer tells its handlers. */
export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
  /** After the first complete list and after every relist, once handlers saw its changes. */
  synced?(): void;
}

/** Knobs, with defaults for a real API server. */
export interface InformerOptions {
  /** Server-side watch timeout, seconds (default 300, jittered by up to 10%). */
  watchTimeoutSeconds?: number;
  /** First retry delay after a failure, ms (default 500). */
  backoffInitialMs?: number;
  /** Longest retry delay, ms (default 30 000). */
  backoffMaxMs?: number;
  /** Page size of lists (default 500). */
  pageSize?: number;
  /** Random source for jitter, for tests (default Math.random). */
  random?: () => number;
  /**
   * Applied to every listed and watched object before it is stored or
   * handed to handlers, e.g. to keep only the fields a consumer reads
   * (the store then holds the smaller object). Must keep metadata name,
   * namespace and resourceVersion. Default: none.
   */
  transform?: (obj: KubeObject) => KubeObject;
}

/** Counters an informer keeps about its own health. */
export interface InformerStats {
  /** Watches resumed after a failure or a server-side close. */
  watchRestarts: number;
  /** Lists after the first (410 Gone, or failures). */
  relists: number;
  /** Failed list or watch attempts. */
  errors: number;
  /** Unix ms of the last event or bookmark; undefined before the first. */
  lastEventMs: number | undefined;
  /** The last error, for status. */
  lastError: string | undefined;
}

/** The store key of an object: namespace/name, or name for cluster-scoped ones. */
export function objectKey(o: KubeObject): string {
  const m = o.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name ?? ''}` : (m.name ?? '');
}

/** Lists and watches one resource with one selection until stopped. */
export class Informer<T extends KubeObject> {
  private readonly store = new Map<string, T>();
  /** list()'s answer until the store changes. */
  private listed: readonly T[] | undefined;
  private resourceVersion = '';
  private watchHandle: WatchHandle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private backoff: number;
  private hasSyncedOnce = false;
  private resolveSynced!: () => void;
  /** Resolves after the first complete list. */
  readonly synced: Promise<void>;
  readonly stats: InformerStats = { watchRestarts: 0, relists: 0, errors: 0, lastEventMs: undefined, lastError: undefined };
  private readonly o: Required<Omit<InformerOptions, 'transform'>>;
  private readonly transform: ((obj: KubeObject) => KubeObject) | undefined;
  /** Bumped by every (re)start of the loop: callbacks of an older stream are ignored. */
  private epoch = 0;

  constructor(
    private readonly transport: KubeTransport,
    readonly type: ResourceType,
    private readonly selection: Selection,
    private readonly handlers: InformerHandlers<T>,
    private readonly log: Logger,
    opts: InformerOptions = {},
  ) {
    this.o = {
      watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 300,
      backoffInitialMs: opts.backoffInitialMs ?? 500,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      pageSize: opts.pageSize ?? 500,
      random: opts.random ?? Math.random,
    };
    this.transform = opts.transform;
    this.backoff = this.o.backoffInitialMs;
    this.synced = new Promise((resolve) => { this.resolveSynced = resolve; });
  }

  /** True once the first list completed. */
  get hasSynced(): boolean {
    return this.hasSyncedOnce;
  }

  /**
   * Every object in the store. The same array until the store changes (a
   * consumer that reads it on every event does not copy 10,000 objects
   * each time); never change it.
   */
  list(): readonly T[] {
    return (this.listed ??= [...this.store.values()]);
  }

  /** How many objects the store holds. */
  get size(): number {
    return this.store.size;
  }

  /** One object by namespace/name (or name). */
  get(key: string): T | undefined {
    return this.store.get(key);
  }

  /** Starts listing and watching; returns at once. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.relist(++this.epoch, false);
  }

  /** Stops the watch and every pending retry. */
  stop(): void {
    this.stopped = true;
    this.epoch++;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.watchHandle?.abort();
    this.watchHandle = undefined;
  }

  private schedule(epoch: number, what: 'list' | 'watch', err: unknown): void {
    if (this.stopped || epoch !== this.epoch) return;
    this.stats.errors++;
    this.stats.lastError = (err as Error)?.message ?? String(err);
    const delay = Math.round(this.backoff * (0.8 + 0.4 * this.o.random()));
    this.backoff = Math.min(this.backoff * 2, this.o.backoffMaxMs);
    this.log.warn({ resource: this.type.plural, err: this.stats.lastError, retryInMs: delay }, `${what} ${this.type.plural} failed; retrying`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (what === 'list') void this.relist(epoch, true);
      else this.watch(epoch, true);
    }, delay);
  }

  private async relist(epoch: number, again: boolean): Promise<void> {
    if (again) this.stats.relists++;
    const items: T[] = [];
    let rv = '';
    try {
      let cont: string | undefined;
      let pages = 0;
      do {
        const page = await this.transport.list<T>(this.type, this.selection, { limit: this.o.pageSize, ...(cont ? { continueToken: cont } : {}) });
        if (this.stopped || epoch !== this.epoch) return;
        for (const item of page.items) items.push(this.transform ? (this.transform(item) as T) : item);
        rv = page.resourceVersion;
        cont = page.continueToken;
        if (++pages > 100_000) throw new Error(`list ${this.type.plural}: more than 100000 pages`);
      } while (cont);
    } catch (err) {
      this.schedule(epoch, 'list', err);
      return;
    }
    this.replace(items);
    this.resourceVersion = rv;
    this.backoff = this.o.backoffInitialMs;
    if (!this.hasSyncedOnce) {
      this.hasSyncedOnce = true;
      this.resolveSynced();
    }
    this.handlers.synced?.();
    this.watch(epoch, false);
  }

  /** Makes the store equal `items`, telling handlers every difference. */
  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      this.apply('ADDED', obj);
    }
    for (const [key, old] of [...this.store]) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.listed = undefined;
        this.handlers.delete?.(old);
      }
    }
  }

  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T): void {
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (type === 'DELETED') {
      if (old) {
        this.store.delete(key);
        this.listed = undefined;
        this.handlers.delete?.(obj);
      }
      return;
    }
    this.store.set(key, obj);
    this.listed = undefined;
    if (!old) this.handlers.add?.(obj);
    else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.handlers.update?.(obj, old);
  }

  private watch(epoch: number, restart: boolean): void {
    if (this.stopped || epoch !== this.epoch) return;
    if (restart) this.stats.watchRestarts++;
    const timeout = Math.max(1, Math.round(this.o.watchTimeoutSeconds * (0.9 + 0.1 * this.o.random())));
    let gone = false;
    const onEvent = (e: WatchEvent<T>): void => {
      if (epoch !== this.epoch || gone) return;
      this.stats.lastEventMs = Date.now();
      if (e.type === 'ERROR') {
        const status = e.object as { code?: number; message?: string };
        gone = true;
        this.watchHandle?.abort();
        if (status.code === 410) {
          this.log.info({ resource: this.type.plural, resourceVersion: this.resourceVersion }, 'watch expired (410 Gone); relisting');
          void this.relist(epoch, true);
        } else {
          this.schedule(epoch, 'watch', new Error(`watch ${this.type.plural}: server sent error ${status.code ?? '?'}: ${status.message ?? ''}`));
        }
        return;
      }
      this.backoff = this.o.backoffInitialMs;
      const rv = (e.object as KubeObject).metadata?.resourceVersion;
      if (rv) this.resourceVersion = rv;
      if (e.type === 'BOOKMARK') return;
      this.apply(e.type, (this.transform ? this.transform(e.object as KubeObject) : e.object) as T);
    };
    const onDone = (err: unknown): void => {
      if (epoch !== this.epoch || gone || this.stopped) return;
      gone = true;
      this.watchHandle = undefined;
      const status = (err as { statusCode?: number } | null)?.statusCode;
      if (status === 410) {
        void this.relist(epoch, true);
      } else if (err) {
        this.schedule(epoch, 'watch', err);
      } else {
        // The server closed the stream (timeoutSeconds): resume from where we are.
        this.backoff = this.o.backoffInitialMs;
        this.watch(epoch, true);
      }
    };
    this.transport.watch<T>(this.type, this.selection, this.resourceVersion, timeout, onEvent, onDone).then(
      (h) => {
        if (epoch !== this.epoch || gone || this.stopped) h.abort();
        else this.watchHandle = h;
      },
      (err: unknown) => onDone(err ?? new Error('watch failed')),
    );
  }
}
