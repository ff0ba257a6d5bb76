/** pn_ipam: pod IPv4 -> owner. Written and read by the agent only: the allocator's whole state. */
import { BPF_NOEXIST, cstring, paddedString, u64, type BpfMap, type TypedMap } from '../libbpf/index.js';
import { SyscallError } from '../errors/index.js';
import { defineMap } from './descriptor.js';
import { cStruct } from './layout.js';
import { ip4Key } from './endpoints.js';

/* The allocator (agent/src/ipam) keeps its whole state in this map through IpamStore. */
/** Who holds an address. */
export interface IpamOwner {
  containerId: string;
  ifName: string;
  /** Unix milliseconds of the allocation. */
  createdMs: number;
}

/** The storage the allocator needs; IpamMap implements it, tests fake it. */
export interface IpamStore {
  /** Inserts only if absent (BPF_NOEXIST); false when the address is taken. */
  insertIfAbsent(ip: string, owner: IpamOwner): boolean;
  get(ip: string): IpamOwner | undefined;
  /** False when the address was not allocated. */
  delete(ip: string): boolean;
  entries(): Iterable<[string, IpamOwner]>;
  readonly capacity: number;
}

export const ipamValue = cStruct('pn_ipam_entry', 88, {
  // Container runtimes use 64 hex characters: the whole field, no NUL.
  containerId: ['container_id', 0, paddedString(64)],
  ifName: ['ifname', 64, cstring(16)],
  created: ['created_unix_ms', 80, u64],
});

/**
 * The pn_ipam descriptor. No BPF program uses the map, so no object carries
 * it: the agent creates and pins it from this descriptor (registry.ts),
 * and test/bpf/maps.test.ts checks it against bpf/lib/maps/ipam.h.
 */
export const IPAM = defineMap({
  name: 'pn_ipam',
  type: 'hash',
  key: ip4Key,
  value: ipamValue,
  maxEntries: 65536,
  perCpu: false,
  pinned: true,
  origin: 'agent',
  description: 'pod IPv4 -> container id, ifname, creation time; written and read by the agent (the allocator state)',
});
export const IPAM_MAP = IPAM.name;

/** The IPAM store on the pinned map: insertIfAbsent is BPF_NOEXIST. */
export class IpamMap implements IpamStore {
  private readonly t: TypedMap<{ addr: string }, { containerId: string; ifName: string; created: bigint }>;
  readonly capacity: number;
  constructor(readonly map: BpfMap) {
    this.t = map.typed(ip4Key, ipamValue);
    this.capacity = map.maxEntries;
  }
  insertIfAbsent(ip: string, owner: IpamOwner): boolean {
    try {
      this.t.set({ addr: ip }, { containerId: owner.containerId, ifName: owner.ifName, created: BigInt(owner.createdMs) }, BPF_NOEXIST);
      return true;
    } catch (err) {
      if (err instanceof SyscallError && err.is('EEXIST')) return false;
      throw err;
    }
  }
  get(ip: string): IpamOwner | undefined {
    const v = this.t.get({ addr: ip });
    return v && { containerId: v.containerId, ifName: v.ifName, createdMs: Number(v.created) };
  }
  delete(ip: string): boolean { return this.t.delete({ addr: ip }); }
  *entries(): Generator<[string, IpamOwner]> {
    for (const [k, v] of this.t.entries()) yield [k.addr, { containerId: v.containerId, ifName: v.ifName, createdMs: Number(v.created) }];
  }
}
