/**
 * Endpoint metadata the kernel does not hold (pod name, netns path, creation
 * time), one JSON file per endpoint under <stateDir>/endpoints. The kernel
 * state (maps, links) stays the truth; this only labels it.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { EndpointRecord } from '../api/protocol.js';

/** What podnet remembers about one endpoint: exactly what the API shows. */
export type EndpointMeta = EndpointRecord;

function isMeta(m: unknown): m is EndpointMeta {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  return ['containerId', 'ifName', 'netns', 'ip', 'hostIfName', 'podMac', 'hostMac'].every((k) => typeof r[k] === 'string')
    && typeof r['endpointId'] === 'number' && typeof r['hostIfIndex'] === 'number';
}

/**
 * A DEL that was answered but whose teardown (veth, address, labels) has not
 * finished. Written before the DEL is answered, removed when the teardown is
 * done, so a restarted agent finishes it instead of repairing the endpoint.
 */
export interface PendingTeardown {
  containerId: string;
  ifName: string;
  hostIfName: string;
  ip?: string;
  endpointId?: number;
}

function isPending(m: unknown): m is PendingTeardown {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  return ['containerId', 'ifName', 'hostIfName'].every((k) => typeof r[k] === 'string');
}

/** Writes `value` as JSON to `path` through a temporary file and a rename. */
function writeAtomic(dir: string, path: string, value: unknown): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(`${path}.tmp`, JSON.stringify(value), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

function readJsonDir<T>(dir: string, valid: (v: unknown) => v is T): T[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return []; /* nothing stored yet */
  }
  const out: T[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      const v = JSON.parse(readFileSync(join(dir, n), 'utf8')) as unknown;
      if (valid(v)) out.push(v);
    } catch {
      /* unreadable: skipped, reconcile deals with the kernel side */
    }
  }
  return out;
}

/**
 * Reads and writes endpoint metadata files atomically; reads are served from
 * memory. Beside them, in `pendingDir`, one record per answered DEL whose
 * teardown is not finished.
 */
export class MetaStore {
  private cache: Map<string, EndpointMeta> | undefined;
  private readonly pendingDir: string;

  constructor(private readonly dir: string, pendingDir?: string) {
    this.pendingDir = pendingDir ?? join(dirname(dir), 'deleting');
  }

  /** Records a DEL whose teardown is about to start (durable before the DEL is answered). */
  markDeleting(rec: PendingTeardown): void {
    writeAtomic(this.pendingDir, join(this.pendingDir, `${rec.hostIfName}.json`), rec);
  }

  /** The pending teardown of one host veth, if any. */
  pending(hostIfName: string): PendingTeardown | undefined {
    try {
      const v = JSON.parse(readFileSync(join(this.pendingDir, `${hostIfName}.json`), 'utf8')) as unknown;
      return isPending(v) ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every DEL whose teardown has not finished. */
  pendingList(): PendingTeardown[] {
    return readJsonDir(this.pendingDir, isPending);
  }

  /** The teardown of one host veth is done. */
  clearDeleting(hostIfName: string): void {
    rmSync(join(this.pendingDir, `${hostIfName}.json`), { force: true });
  }

  private all(): Map<string, EndpointMeta> {
    if (this.cache) return this.cache;
    return (this.cache = new Map(readJsonDir(this.dir, isMeta).map((m) => [m.hostIfName, m])));
  }

  private path(hostIfName: string): string {
    return join(this.dir, `${hostIfName}.json`);
  }

  /** Writes (or replaces) one endpoint's metadata. */
  put(meta: EndpointMeta): void {
    writeAtomic(this.dir, this.path(meta.hostIfName), meta);
    this.all().set(meta.hostIfName, meta);
  }

  /** One endpoint's metadata, or undefined. */
  get(hostIfName: string): EndpointMeta | undefined {
    return this.all().get(hostIfName);
  }

  /** Removes one endpoint's metadata; missing is fine. */
  remove(hostIfName: string): void {
    rmSync(this.path(hostIfName), { force: true });
    this.all().delete(hostIfName);
  }

  /** Every stored endpoint. */
  list(): EndpointMeta[] {
    return [...this.all().values()];
  }
}
