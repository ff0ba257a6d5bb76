/**
 * Endpoint metadata the kernel does not hold (pod name, netns path, creation
 * time), one JSON file per endpoint under <stateDir>/endpoints. The kernel
 * state (maps, links) stays the truth; this only labels it.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointRecord } from '../api/protocol.js';

/** What podnet remembers about one endpoint: exactly what the API shows. */
export type EndpointMeta = EndpointRecord;

function isMeta(m: unknown): m is EndpointMeta {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  return ['containerId', 'ifName', 'netns', 'ip', 'hostIfName', 'podMac', 'hostMac'].every((k) => typeof r[k] === 'string')
    && typeof r['endpointId'] === 'number' && typeof r['hostIfIndex'] === 'number';
}

/** Reads and writes endpoint metadata files atomically; reads are served from memory. */
export class MetaStore {
  private cache: Map<string, EndpointMeta> | undefined;

  constructor(private readonly dir: string) {}

  private all(): Map<string, EndpointMeta> {
    if (this.cache) return this.cache;
    const cache = new Map<string, EndpointMeta>();
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      /* no endpoints yet */
    }
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      try {
        const m = JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as unknown;
        if (isMeta(m)) cache.set(m.hostIfName, m);
      } catch {
        /* unreadable: skipped, reconcile deals with the kernel side */
      }
    }
    return (this.cache = cache);
  }

  private path(hostIfName: string): string {
    return join(this.dir, `${hostIfName}.json`);
  }

  /** Writes (or replaces) one endpoint's metadata. */
  put(meta: EndpointMeta): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const p = this.path(meta.hostIfName);
    writeFileSync(`${p}.tmp`, JSON.stringify(meta), { mode: 0o600 });
    renameSync(`${p}.tmp`, p);
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
