/**
 * The service maps as the reconciler sees them: a narrow interface over
 * pn_services, pn_svc_slots, pn_backends, pn_svc_ranges and pn_svc_stats
 * (bpf/include/shared/services.h), a BPF implementation through the codecs
 * of maps/services.ts, and an in-memory fake for tests.
 *
 * Writes take whole lists and report the elements they could not apply
 * instead of stopping at the first: a full map refuses new keys, and the
 * reconciler still applies the rest of its diff.
 */
import { SyscallError } from '../errors/index.js';
import type { BpfMap } from '../libbpf/index.js';
import {
  ctExpired, type ConntrackTimeouts, type ServiceMapHandles,
  backendKey as backendKeyCodec, backendValue, slotKey as slotKeyCodec, slotValue, svcKey, svcRangeKey, svcRangeValue, svcStatsKey, svcStatsValue, svcValue,
} from '../maps/services.js';

/** Bits of pn_svc.flags and pn_backend.flags (generated from services.h). */
export { BACKEND_FLAG, SVC_FLAG } from '../maps/gen/enums.js';

/** Key of pn_services: a frontend. */
export interface FrontendKey { addr: string; port: number; proto: number }
/** Value of pn_services. */
export interface FrontendValue { frontendId: number; groupId: number; count: number; flags: number; affinitySeconds: number }
/** Key of pn_svc_slots. */
export interface SlotKey { groupId: number; slot: number }
/** Value of pn_backends. */
export interface BackendValue { addr: string; port: number; proto: number; flags: number }
/** pn_svc_stats of one frontend, summed over CPUs. */
export interface FrontendStats { connections: bigint; packets: bigint; bytes: bigint; noBackend: bigint }

/** The service maps by kernel name. */
export const SERVICE_MAP_NAMES = ['pn_services', 'pn_svc_slots', 'pn_backends', 'pn_ct', 'pn_affinity', 'pn_svc_stats', 'pn_svc_ranges'] as const;
export type ServiceMapName = (typeof SERVICE_MAP_NAMES)[number];

/** One element of a write or delete that did not apply: its index in the list given, and why. */
export interface WriteFailure { index: number; error: Error }

/** What the reconciler, the API and metrics need from the service maps; tests fake it. */
export interface ServiceTables {
  readFrontends(): Array<[FrontendKey, FrontendValue]>;
  readSlots(): Array<[SlotKey, number]>;
  readBackends(): Array<[number, BackendValue]>;
  /** Every slot, keeping no object per slot (100,000 of them at 10k Services). */
  forEachSlot(visit: (groupId: number, slot: number, backendId: number) => void): void;
  /** Every backend, keeping no object per backend. */
  forEachBackend(visit: (id: number, addr: string, port: number, proto: number, flags: number) => void): void;
  /** CIDRs in pn_svc_ranges, "a.b.c.d/len". */
  readRanges(): string[];
  /** The highest backend and frontend ids conntrack entries still name, so they are not handed out again. */
  conntrackMaxIds(): { backend: number; frontend: number };
  /** Deletes the pn_ct entries idle past their timeout at `nowNs` (CLOCK_MONOTONIC ns): how many were read and removed. */
  sweepConntrack(nowNs: bigint, timeouts: ConntrackTimeouts): { scanned: number; removed: number };
  /** pn_svc_stats by frontend id, summed over CPUs. */
  readStats(): Map<number, FrontendStats>;
  writeBackends(entries: Array<[number, BackendValue]>): WriteFailure[];
  writeSlots(entries: Array<[SlotKey, number]>): WriteFailure[];
  writeFrontends(entries: Array<[FrontendKey, FrontendValue]>): WriteFailure[];
  writeRanges(cidrs: string[]): WriteFailure[];
  deleteFrontends(keys: FrontendKey[]): WriteFailure[];
  deleteSlots(keys: SlotKey[]): WriteFailure[];
  deleteBackends(ids: number[]): WriteFailure[];
  deleteRanges(cidrs: string[]): WriteFailure[];
  /** Drops the stats of frontends that are gone (absent ones are skipped). */
  deleteStats(frontendIds: number[]): void;
  /** max_entries of a map. */
  capacity(map: ServiceMapName): number;
  /** Entries in a map right now (walks maps the agent does not mirror). */
  entries(map: ServiceMapName): number;
}

/** True when an error says a map had no room: E2BIG from hash maps, ENOSPC from LPM tries. */
export function isMapFull(err: unknown): boolean {
  return err instanceof SyscallError && (err.errnoName === 'E2BIG' || err.errnoName === 'ENOSPC');
}

function parseCidr(cidr: string): { prefixLen: number; data: string } {
  const [addr, len] = cidr.split('/');
  return { prefixLen: Number(len ?? 32), data: addr! };
}

const MAP_OF: Record<ServiceMapName, keyof ServiceMapHandles> = {
  pn_services: 'services', pn_svc_slots: 'svcSlots', pn_backends: 'backends', pn_ct: 'conntrack', pn_affinity: 'affinity', pn_svc_stats: 'svcStats', pn_svc_ranges: 'svcRanges',
};

interface Codec<T> { size: number; encode(v: T, b: Buffer, off: number): void; decode(b: Buffer, off: number): T }

/** The BPF-backed tables. Does not own the maps. */
export class BpfServiceTables implements ServiceTables {
  /** The datapath's maps (NodeMaps has them under these names). */
  constructor(private readonly m: ServiceMapHandles) {}

  readFrontends(): Array<[FrontendKey, FrontendValue]> {
    return this.m.services.lookupBatch().map(([k, v]) => {
      const key = svcKey.decode(k, 0);
      const val = svcValue.decode(v, 0);
      return [{ addr: key.addr, port: key.port, proto: key.proto }, { frontendId: val.frontendId, groupId: val.groupId, count: val.count, flags: val.flags, affinitySeconds: val.affinitySeconds }];
    });
  }

  // The two big maps are decoded by hand (the layout of slotKey/slotValue and
  // backendKey/backendValue, which the BTF layout test checks), straight
  // from the batch buffers: 15-45% faster than the generic struct codecs at
  // 100,000 entries, and no object per entry for the reconciler's checks.
  readSlots(): Array<[SlotKey, number]> {
    const out: Array<[SlotKey, number]> = [];
    this.forEachSlot((groupId, slot, id) => { out.push([{ groupId, slot }, id]); });
    return out;
  }

  readBackends(): Array<[number, BackendValue]> {
    const out: Array<[number, BackendValue]> = [];
    this.forEachBackend((id, addr, port, proto, flags) => { out.push([id, { addr, port, proto, flags }]); });
    return out;
  }

  forEachSlot(visit: (groupId: number, slot: number, backendId: number) => void): void {
    const m = this.m.svcSlots;
    const ks = m.keySize, vs = m.valueBufferSize;
    m.forEachBatch((k, v, n) => {
      for (let i = 0; i < n; i++) visit(k.readUInt32LE(i * ks), k.readUInt32LE(i * ks + 4), v.readUInt32LE(i * vs));
    });
  }

  forEachBackend(visit: (id: number, addr: string, port: number, proto: number, flags: number) => void): void {
    const m = this.m.backends;
    const ks = m.keySize, vs = m.valueBufferSize;
    m.forEachBatch((k, v, n) => {
      for (let i = 0; i < n; i++) {
        const o = i * vs;
        visit(k.readUInt32LE(i * ks), `${v[o]}.${v[o + 1]}.${v[o + 2]}.${v[o + 3]}`, v.readUInt16BE(o + 4), v[o + 6]!, v[o + 7]!);
      }
    });
  }

  readRanges(): string[] {
    return [...this.m.svcRanges.keys()].map((k) => { const r = svcRangeKey.decode(k, 0); return `${r.data}/${r.prefixLen}`; });
  }

  conntrackMaxIds(): { backend: number; frontend: number } {
    let backend = 0, frontend = 0;
    const vs = this.m.conntrack.valueBufferSize;
    this.m.conntrack.forEachBatch((_k, v, n) => {
      for (let i = 0; i < n; i++) {
        backend = Math.max(backend, v.readUInt32LE(i * vs + 8));
        frontend = Math.max(frontend, v.readUInt32LE(i * vs + 12));
      }
    });
    return { backend, frontend };
  }

  sweepConntrack(nowNs: bigint, timeouts: ConntrackTimeouts): { scanned: number; removed: number } {
    // Straight from the batch buffers (pn_ct_key.proto at 12; pn_ct_entry.last_seen_ns at 0, flags at 26: the BTF layout
    // test checks both structs), the expired keys of each batch deleted in one call: no object per entry.
    const m = this.m.conntrack;
    const ks = m.keySize, vs = m.valueBufferSize;
    let gone = Buffer.allocUnsafe(64 * ks);
    let scanned = 0, removed = 0;
    m.forEachBatch((k, v, n) => {
      scanned += n;
      if (gone.length < n * ks) gone = Buffer.allocUnsafe(n * ks);
      let g = 0;
      for (let i = 0; i < n; i++) {
        if (!ctExpired(k[i * ks + 12]!, v[i * vs + 26]!, v.readBigUInt64LE(i * vs), nowNs, timeouts)) continue;
        k.copy(gone, g * ks, i * ks, (i + 1) * ks);
        g++;
      }
      if (g > 0) removed += m.deleteBatchRaw(gone, g);
    });
    return { scanned, removed };
  }

  readStats(): Map<number, FrontendStats> {
    const out = new Map<number, FrontendStats>();
    const m = this.m.svcStats;
    const stride = (m.valueSize + 7) & ~7;
    for (const [k, v] of m.lookupBatch()) {
      const s: FrontendStats = { connections: 0n, packets: 0n, bytes: 0n, noBackend: 0n };
      for (let c = 0; c < m.possibleCpus; c++) {
        const x = svcStatsValue.decode(v, c * stride);
        s.connections += x.connections; s.packets += x.packets; s.bytes += x.bytes; s.noBackend += x.noBackend;
      }
      out.set(svcStatsKey.decode(k, 0).frontendId, s);
    }
    return out;
  }

  writeBackends(entries: Array<[number, BackendValue]>): WriteFailure[] {
    return write(this.m.backends, backendKeyCodec, backendValue, entries.map(([id, v]) => [{ backendId: id }, v]));
  }

  writeSlots(entries: Array<[SlotKey, number]>): WriteFailure[] {
    return write(this.m.svcSlots, slotKeyCodec, slotValue, entries.map(([k, id]) => [k, { backendId: id }]));
  }

  writeFrontends(entries: Array<[FrontendKey, FrontendValue]>): WriteFailure[] {
    return write(this.m.services, svcKey, svcValue, entries.map(([k, v]) => [{ ...k, pad: 0 }, { ...v, pad: 0 }]));
  }

  writeRanges(cidrs: string[]): WriteFailure[] {
    return write(this.m.svcRanges, svcRangeKey, svcRangeValue, cidrs.map((c) => [parseCidr(c), { flags: 0 }]));
  }

  deleteFrontends(keys: FrontendKey[]): WriteFailure[] {
    return del(this.m.services, svcKey, keys.map((k) => ({ ...k, pad: 0 })));
  }

  deleteSlots(keys: SlotKey[]): WriteFailure[] {
    return del(this.m.svcSlots, slotKeyCodec, keys);
  }

  deleteBackends(ids: number[]): WriteFailure[] {
    return del(this.m.backends, backendKeyCodec, ids.map((backendId) => ({ backendId })));
  }

  deleteRanges(cidrs: string[]): WriteFailure[] {
    return del(this.m.svcRanges, svcRangeKey, cidrs.map(parseCidr));
  }

  deleteStats(frontendIds: number[]): void {
    del(this.m.svcStats, svcStatsKey, frontendIds.map((frontendId) => ({ frontendId })));
  }

  capacity(map: ServiceMapName): number {
    return this.m[MAP_OF[map]].maxEntries;
  }

  entries(map: ServiceMapName): number {
    return this.m[MAP_OF[map]].countBatch();
  }
}

/**
 * Writes every entry: one BPF_MAP_UPDATE_BATCH, and when that fails part
 * way, element by element from the start (rewriting an entry with the
 * value it already has changes nothing), collecting what failed.
 */
function write<K, V>(map: BpfMap, kc: Codec<K>, vc: Codec<V>, entries: Array<[K, V]>): WriteFailure[] {
  if (entries.length === 0) return [];
  const ks = map.keySize;
  const vs = map.valueBufferSize;
  const kb = Buffer.alloc(entries.length * ks);
  const vb = Buffer.alloc(entries.length * vs);
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i]!;
    kc.encode(k, kb, i * ks);
    vc.encode(v, vb, i * vs);
  }
  // Batches of BPF_MAP_UPDATE_BATCH are applied in order, so a partial
  // write keeps the order rule; LPM tries have no batch and go one by one.
  if (map.type !== 'lpm_trie') {
    try {
      map.updateBatchRaw(kb, vb, entries.length);
      return [];
    } catch { /* retried one by one below, to learn which elements fail */ }
  }
  const failed: WriteFailure[] = [];
  for (let i = 0; i < entries.length; i++) {
    try {
      map.update(kb.subarray(i * ks, (i + 1) * ks), vb.subarray(i * vs, (i + 1) * vs));
    } catch (err) {
      failed.push({ index: i, error: err as Error });
    }
  }
  return failed;
}

function del<K>(map: BpfMap, kc: Codec<K>, keys: K[]): WriteFailure[] {
  const failed: WriteFailure[] = [];
  const ks = map.keySize;
  const kb = Buffer.alloc(Math.max(1, keys.length) * ks);
  for (let i = 0; i < keys.length; i++) kc.encode(keys[i]!, kb, i * ks);
  if (map.type !== 'lpm_trie' && keys.length > 1) {
    try {
      map.deleteBatchRaw(kb, keys.length);
      return [];
    } catch { /* one by one below */ }
  }
  for (let i = 0; i < keys.length; i++) {
    try {
      map.delete(kb.subarray(i * ks, (i + 1) * ks));
    } catch (err) {
      failed.push({ index: i, error: err as Error });
    }
  }
  return failed;
}

const fk = (k: FrontendKey): string => `${k.addr}:${k.port}/${k.proto}`;
const sk = (k: SlotKey): string => `${k.groupId}/${k.slot}`;

/** One write the fake saw, in order. */
export type FakeWrite =
  | { op: 'set' | 'delete'; map: 'pn_services'; key: FrontendKey; value?: FrontendValue }
  | { op: 'set' | 'delete'; map: 'pn_svc_slots'; key: SlotKey; value?: number }
  | { op: 'set' | 'delete'; map: 'pn_backends'; key: number; value?: BackendValue }
  | { op: 'set' | 'delete'; map: 'pn_svc_ranges'; key: string };

/**
 * In-memory tables for tests: applies batches element by element, like the
 * kernel, calls `afterWrite` after each single element (to check an
 * invariant at every point a BPF program could look), and refuses new keys
 * beyond each map's capacity with E2BIG.
 */
export class FakeServiceTables implements ServiceTables {
  readonly frontends = new Map<string, [FrontendKey, FrontendValue]>();
  readonly slots = new Map<string, [SlotKey, number]>();
  readonly backends = new Map<number, BackendValue>();
  readonly ranges = new Set<string>();
  readonly stats = new Map<number, FrontendStats>();
  readonly log: FakeWrite[] = [];
  /** Record every write in `log` (off for benchmarks). */
  record = true;
  afterWrite: ((w: FakeWrite) => void) | undefined;
  readonly caps: Record<ServiceMapName, number>;
  conntrack = { backend: 0, frontend: 0 };

  constructor(caps: Partial<Record<ServiceMapName, number>> = {}) {
    this.caps = { pn_services: 65536, pn_svc_slots: 262144, pn_backends: 131072, pn_ct: 262144, pn_affinity: 65536, pn_svc_stats: 65536, pn_svc_ranges: 64, ...caps };
  }

  private seen(w: FakeWrite): void {
    if (this.record) this.log.push(w);
    this.afterWrite?.(w);
  }

  private full(map: ServiceMapName): Error {
    return new SyscallError(`update map ${map}`, 7 /* E2BIG */);
  }

  readFrontends(): Array<[FrontendKey, FrontendValue]> { return [...this.frontends.values()].map(([k, v]) => [{ ...k }, { ...v }]); }
  readSlots(): Array<[SlotKey, number]> { return [...this.slots.values()].map(([k, v]) => [{ ...k }, v]); }
  readBackends(): Array<[number, BackendValue]> { return [...this.backends].map(([k, v]) => [k, { ...v }]); }
  forEachSlot(visit: (groupId: number, slot: number, backendId: number) => void): void { for (const [k, v] of this.slots.values()) visit(k.groupId, k.slot, v); }
  forEachBackend(visit: (id: number, addr: string, port: number, proto: number, flags: number) => void): void { for (const [id, v] of this.backends) visit(id, v.addr, v.port, v.proto, v.flags); }
  readRanges(): string[] { return [...this.ranges]; }
  conntrackMaxIds(): { backend: number; frontend: number } { return { ...this.conntrack }; }
  /** Conntrack entries as the fake holds them, by any key the test picks. */
  readonly ct = new Map<string, { proto: number; flags: number; lastSeenNs: bigint }>();
  sweepConntrack(nowNs: bigint, timeouts: ConntrackTimeouts): { scanned: number; removed: number } {
    const scanned = this.ct.size;
    let removed = 0;
    for (const [k, e] of this.ct) if (ctExpired(e.proto, e.flags, e.lastSeenNs, nowNs, timeouts)) { this.ct.delete(k); removed++; }
    return { scanned, removed };
  }
  readStats(): Map<number, FrontendStats> { return new Map(this.stats); }

  writeBackends(entries: Array<[number, BackendValue]>): WriteFailure[] {
    const failed: WriteFailure[] = [];
    entries.forEach(([id, v], index) => {
      if (!this.backends.has(id) && this.backends.size >= this.caps.pn_backends) { failed.push({ index, error: this.full('pn_backends') }); return; }
      this.backends.set(id, { ...v });
      this.seen({ op: 'set', map: 'pn_backends', key: id, value: { ...v } });
    });
    return failed;
  }

  writeSlots(entries: Array<[SlotKey, number]>): WriteFailure[] {
    const failed: WriteFailure[] = [];
    entries.forEach(([k, v], index) => {
      const s = sk(k);
      if (!this.slots.has(s) && this.slots.size >= this.caps.pn_svc_slots) { failed.push({ index, error: this.full('pn_svc_slots') }); return; }
      this.slots.set(s, [{ ...k }, v]);
      this.seen({ op: 'set', map: 'pn_svc_slots', key: { ...k }, value: v });
    });
    return failed;
  }

  writeFrontends(entries: Array<[FrontendKey, FrontendValue]>): WriteFailure[] {
    const failed: WriteFailure[] = [];
    entries.forEach(([k, v], index) => {
      const s = fk(k);
      if (!this.frontends.has(s) && this.frontends.size >= this.caps.pn_services) { failed.push({ index, error: this.full('pn_services') }); return; }
      this.frontends.set(s, [{ ...k }, { ...v }]);
      this.seen({ op: 'set', map: 'pn_services', key: { ...k }, value: { ...v } });
    });
    return failed;
  }

  writeRanges(cidrs: string[]): WriteFailure[] {
    const failed: WriteFailure[] = [];
    cidrs.forEach((c, index) => {
      if (!this.ranges.has(c) && this.ranges.size >= this.caps.pn_svc_ranges) { failed.push({ index, error: new SyscallError('update map pn_svc_ranges', 28 /* ENOSPC */) }); return; }
      this.ranges.add(c);
      this.seen({ op: 'set', map: 'pn_svc_ranges', key: c });
    });
    return failed;
  }

  deleteFrontends(keys: FrontendKey[]): WriteFailure[] {
    for (const k of keys) if (this.frontends.delete(fk(k))) this.seen({ op: 'delete', map: 'pn_services', key: { ...k } });
    return [];
  }

  deleteSlots(keys: SlotKey[]): WriteFailure[] {
    for (const k of keys) if (this.slots.delete(sk(k))) this.seen({ op: 'delete', map: 'pn_svc_slots', key: { ...k } });
    return [];
  }

  deleteBackends(ids: number[]): WriteFailure[] {
    for (const id of ids) if (this.backends.delete(id)) this.seen({ op: 'delete', map: 'pn_backends', key: id });
    return [];
  }

  deleteRanges(cidrs: string[]): WriteFailure[] {
    for (const c of cidrs) if (this.ranges.delete(c)) this.seen({ op: 'delete', map: 'pn_svc_ranges', key: c });
    return [];
  }

  deleteStats(frontendIds: number[]): void {
    for (const id of frontendIds) this.stats.delete(id);
  }

  capacity(map: ServiceMapName): number { return this.caps[map]; }

  entries(map: ServiceMapName): number {
    switch (map) {
      case 'pn_services': return this.frontends.size;
      case 'pn_svc_slots': return this.slots.size;
      case 'pn_backends': return this.backends.size;
      case 'pn_svc_ranges': return this.ranges.size;
      case 'pn_svc_stats': return this.stats.size;
      default: return 0;
    }
  }

  /** The frontend at `addr:port/proto`, if any. */
  frontend(addr: string, port: number, proto: number): FrontendValue | undefined {
    return this.frontends.get(fk({ addr, port, proto }))?.[1];
  }

  /** The backends (address:port) a frontend's slots 0..count-1 name, in slot order; undefined for a missing slot or backend. */
  backendsOf(addr: string, port: number, proto: number): Array<string | undefined> {
    const f = this.frontend(addr, port, proto);
    if (!f) return [];
    const out: Array<string | undefined> = [];
    for (let i = 0; i < f.count; i++) {
      const id = this.slots.get(sk({ groupId: f.groupId, slot: i }))?.[1];
      const b = id === undefined ? undefined : this.backends.get(id);
      out.push(b && `${b.addr}:${b.port}`);
    }
    return out;
  }

  /** Every frontend whose slots 0..count-1 do not all name an existing backend, with why; empty when consistent. */
  broken(): string[] {
    const out: string[] = [];
    for (const [k, v] of this.frontends.values()) {
      for (let i = 0; i < v.count; i++) {
        const slot = this.slots.get(sk({ groupId: v.groupId, slot: i }));
        if (!slot) { out.push(`${fk(k)}: slot ${v.groupId}/${i} missing (count ${v.count})`); break; }
        if (!this.backends.has(slot[1])) { out.push(`${fk(k)}: slot ${v.groupId}/${i} names missing backend ${slot[1]}`); break; }
      }
    }
    return out;
  }
}
