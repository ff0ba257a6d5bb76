/**
 * Handing back the memory of a big one-off job (a full sync of 10,000
 * Services writes 100,000+ map entries) right away instead of minutes
 * later: V8 collects lazily and keeps the pages of a grown heap, and the C
 * heap keeps freed batch buffers. After a job that large, one full
 * collection (about 0.1-0.3 s at 10,000 Services) and a trim of the C heap
 * bring the agent back to what it holds; smaller jobs leave it to V8.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Knobs; the defaults suit the agent. */
export interface MemoryReleaserOptions {
  /** A job touching at least this many entries is worth a release (default 10,000). */
  minEntries?: number;
  /** At most one release per this many ms (default 30 s): a storm of big jobs does not turn into a GC storm. */
  minIntervalMs?: number;
  /** Trims the C heap (libbpf's mallocTrim); absent: only the JavaScript heap. */
  trim?: () => void;
  now?: () => number;
}

let gcFn: (() => void) | undefined;

/** V8's full collection, exposed once for this process. */
function fullGc(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** Decides after each job whether to release memory, and does it. */
export class MemoryReleaser {
  private last = -Infinity;
  private readonly o: Required<Omit<MemoryReleaserOptions, 'trim'>> & Pick<MemoryReleaserOptions, 'trim'>;
  /** How many releases ran (status, tests). */
  releases = 0;

  constructor(opts: MemoryReleaserOptions = {}) {
    this.o = { minEntries: opts.minEntries ?? 10_000, minIntervalMs: opts.minIntervalMs ?? 30_000, now: opts.now ?? Date.now, trim: opts.trim };
  }

  /** A job touched `entries` entries: releases when it was big and the last release is long enough ago. Returns true when it did. */
  after(entries: number): boolean {
    if (entries < this.o.minEntries) return false;
    const now = this.o.now();
    if (now - this.last < this.o.minIntervalMs) return false;
    this.last = now;
    fullGc();
    this.o.trim?.();
    this.releases++;
    return true;
  }
}
