/**
 * The pod IP allocator. Its only state is the pinned pn_ipam BPF map:
 * allocation is an insert with BPF_NOEXIST, so two writers (two agents
 * during a rolling restart, or a racing retry) can never hand out the same
 * address, and a restarted agent finds every allocation where it left it.
 */
import { PodnetError } from '../errors/index.js';
import { fromNumber, inPool, toNumber, type Pool } from './pool.js';
import type { IpamOwner, IpamStore } from '../maps/index.js';

export type { IpamOwner, IpamStore };

/** The pool has no free address left. */
export class PoolExhaustedError extends PodnetError {
  constructor(pool: Pool) {
    super('POOL_EXHAUSTED', `allocate address from ${pool.cidr}: pool exhausted (${pool.size} addresses in use)`);
  }
}

/** Usage figures of the pool. */
export interface IpamUsage {
  pool: string;
  size: number;
  used: number;
  free: number;
}

const ownerKey = (containerId: string, ifName: string): string => `${containerId}/${ifName}`;

/** Allocates pod addresses from one pool into an {@link IpamStore}. */
export class Ipam {
  private readonly byOwner = new Map<string, string>();
  private cursor: number;
  private used = 0;

  constructor(
    readonly pool: Pool,
    private readonly store: IpamStore,
    private readonly now: () => number = Date.now,
  ) {
    this.cursor = pool.first;
    this.resync();
  }

  /** Rebuilds the in-memory owner index from the store (at start, after restarts). */
  resync(): void {
    this.byOwner.clear();
    this.used = 0;
    for (const [ip, owner] of this.store.entries()) {
      this.byOwner.set(ownerKey(owner.containerId, owner.ifName), ip);
      if (inPool(this.pool, ip)) this.used++;
    }
  }

  /**
   * Allocates an address for (containerId, ifName). Idempotent: an owner that
   * already holds an address gets the same one back.
   * @throws PoolExhaustedError when every address is taken.
   */
  allocate(containerId: string, ifName: string): string {
    const existing = this.byOwner.get(ownerKey(containerId, ifName));
    if (existing !== undefined) return existing;
    const owner: IpamOwner = { containerId, ifName, createdMs: this.now() };
    const span = this.pool.size;
    // Next-fit from a cursor: recently freed addresses are not reused at
    // once, which keeps stale conntrack/ARP state from hitting a new pod.
    for (let i = 0; i < span; i++) {
      const n = this.cursor;
      this.cursor = n >= this.pool.last ? this.pool.first : n + 1;
      const ip = fromNumber(n);
      let inserted: boolean;
      try {
        inserted = this.store.insertIfAbsent(ip, owner);
      } catch (err) {
        // E2BIG: the map is full even though the pool is not.
        if ((err as { errnoName?: string }).errnoName === 'E2BIG') throw new PoolExhaustedError(this.pool);
        throw err;
      }
      if (inserted) {
        this.byOwner.set(ownerKey(containerId, ifName), ip);
        this.used++;
        return ip;
      }
    }
    throw new PoolExhaustedError(this.pool);
  }

  /** The address held by (containerId, ifName), if any. */
  lookup(containerId: string, ifName: string): string | undefined {
    return this.byOwner.get(ownerKey(containerId, ifName));
  }

  /** The owner of an address, read from the store. */
  owner(ip: string): IpamOwner | undefined {
    return this.store.get(ip);
  }

  /** Releases the address of (containerId, ifName); returns it, or undefined if none was held. */
  release(containerId: string, ifName: string): string | undefined {
    const key = ownerKey(containerId, ifName);
    const ip = this.byOwner.get(key);
    if (ip === undefined) return undefined;
    this.releaseIp(ip);
    return ip;
  }

  /** Releases one address whoever holds it; true if it was allocated. */
  releaseIp(ip: string): boolean {
    const owner = this.store.get(ip);
    const deleted = this.store.delete(ip);
    if (owner) this.byOwner.delete(ownerKey(owner.containerId, owner.ifName));
    if (deleted && inPool(this.pool, ip)) this.used--;
    return deleted;
  }

  /** Releases every allocation whose owner is not in `valid`; returns what was released. */
  releaseAllBut(valid: Iterable<{ containerId: string; ifName: string }>): Array<{ ip: string; owner: IpamOwner }> {
    const keep = new Set<string>();
    for (const v of valid) keep.add(ownerKey(v.containerId, v.ifName));
    const released: Array<{ ip: string; owner: IpamOwner }> = [];
    for (const [ip, owner] of [...this.store.entries()]) {
      if (keep.has(ownerKey(owner.containerId, owner.ifName))) continue;
      if (this.releaseIp(ip)) released.push({ ip, owner });
    }
    return released;
  }

  /** Every allocation, sorted by address. */
  allocations(): Array<{ ip: string; owner: IpamOwner }> {
    return [...this.store.entries()]
      .map(([ip, owner]) => ({ ip, owner }))
      .sort((a, b) => toNumber(a.ip) - toNumber(b.ip));
  }

  /** Pool size, used and free counts. */
  usage(): IpamUsage {
    return { pool: this.pool.cidr, size: this.pool.size, used: this.used, free: this.pool.size - this.used };
  }
}
