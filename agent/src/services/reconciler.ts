/**
 * The Service reconciler: turns a snapshot of Services and EndpointSlices
 * into the service maps and keeps them there, writing only the difference.
 *
 * Model (bpf/include/shared/services.h): a frontend (address:port/protocol)
 * points at a group; a group is the backend list of one Service port in one
 * traffic-policy scope, shared by every frontend with that (service, port
 * name, protocol, scope): the ClusterIP and the NodePort on each node
 * address. Ids are never 0 and never handed out twice while this agent
 * runs: a backend keeps its id as long as its endpoint exists in any slice,
 * so conntrack keeps established connections on it while it terminates.
 *
 * One pass writes, in this order, so no BPF program ever sees a live
 * frontend with a slot that names no backend, or a Service that has
 * backends before and after with none in between:
 *   1. new and changed backends
 *   2. slots (a backend that stays keeps its slot; new ones fill the holes
 *      of removed ones, then grow the list; a shrinking list first moves its
 *      tail into the holes)
 *   3. frontends (new ones, and counts: a growing group's slots exist
 *      already; a shrinking one's count drops before its slots go)
 *   4. removed frontends, 5. slots past every count that names them,
 *   6. backends no slot within a count names and whose endpoint is gone.
 * Deletions are computed from what the maps hold after the writes, so a
 * write that failed (a full map) never leaves a reference to something
 * deleted; the failure is reported as an error naming the map, its size and
 * the setting that raises it, and the rest of the diff still applies.
 *
 * At start the reconciler rebuilds its picture from the pinned maps
 * (load()), so a restarted agent keeps every id and rewrites nothing that
 * is already right.
 */
import { PodnetError } from '../errors/index.js';
import { IP_PROTO } from '../maps/services.js';
import { backendKey, desiredFrontends, endpointPorts, type Frontend, type FrontendKind, type NodeView, type Protocol } from './model.js';
import type { ServiceSnapshot } from './source.js';
import {
  BACKEND_FLAG, SVC_FLAG, isMapFull,
  type BackendValue, type FrontendKey, type FrontendValue, type ServiceMapName, type ServiceTables, type SlotKey, type WriteFailure,
} from './tables.js';

/** The setting that sizes each map, for "map full" errors. */
export const MAP_SIZE_SETTING: Record<ServiceMapName, string> = {
  pn_services: '--lb-map-size', pn_svc_slots: '--lb-map-size (slots get 4x)', pn_backends: '--lb-map-size (backends get 2x)',
  pn_svc_stats: '--lb-map-size', pn_affinity: '--lb-map-size', pn_ct: '--ct-map-size', pn_svc_ranges: 'nothing (at most 64 service CIDRs)',
};

/** A map refused new entries: which map, its size and what raises it. */
export class MapFullError extends PodnetError {
  constructor(readonly map: ServiceMapName, readonly capacity: number, readonly refused: number, cause?: unknown) {
    super('MAP_FULL', `write ${refused} ${refused === 1 ? 'entry' : 'entries'} to ${map}: the map is full (${capacity} entries); raise ${MAP_SIZE_SETTING[map]}`, { cause });
  }
}

/** What one pass did. */
export interface ServiceReconcileOutcome {
  /** ok: nothing to write; changed: the maps were updated; failed: at least one write was refused (see errors). */
  result: 'ok' | 'changed' | 'failed';
  written: { backends: number; slots: number; frontends: number; ranges: number };
  removed: { backends: number; slots: number; frontends: number; ranges: number };
  /** One message per map that refused writes, and any other write failure. */
  errors: string[];
  /** Entries refused because a map was full, by map. */
  full: Partial<Record<ServiceMapName, number>>;
  seconds: number;
  frontends: number;
  backends: number;
}

/** How the agent names a frontend (the maps know only its id). */
export interface FrontendName {
  service: string;
  portName: string;
  kind: FrontendKind;
  localOnly: boolean;
}

/** Called for every backend removed from pn_backends (its endpoint is gone). */
export type BackendRemovedHook = (addr: string, port: number, proto: number) => void;

/** Dependencies of the reconciler. */
export interface ServiceReconcilerDeps {
  tables: ServiceTables;
  /** Service CIDRs for pn_svc_ranges when the snapshot has none (the API has no ServiceCIDR objects). */
  defaultServiceCidrs: string[];
  /** Called for each removed UDP backend, so connected sockets to it are not left stale. */
  onUdpBackendRemoved?: BackendRemovedHook;
}

interface FrontendState { key: FrontendKey; value: FrontendValue; name: FrontendName | undefined }
interface BackendState { id: number; value: BackendValue }

const PROTO: Record<Protocol, number> = { TCP: IP_PROTO.TCP, UDP: IP_PROTO.UDP, SCTP: IP_PROTO.SCTP };
const PROTO_NAME: Record<number, Protocol> = { [IP_PROTO.TCP]: 'TCP', [IP_PROTO.UDP]: 'UDP', [IP_PROTO.SCTP]: 'SCTP' };
const MAX_ID = 0xffff_ffff;

const fkey = (addr: string, port: number, proto: number): string => `${addr}:${port}/${PROTO_NAME[proto] ?? proto}`;
const groupKeyOf = (f: Frontend): string => `${f.service}\u0000${f.portName}\u0000${f.protocol}\u0000${f.localOnly ? 'local' : 'cluster'}`;

function frontendFlags(f: Frontend): number {
  let flags = 0;
  if (f.affinitySeconds !== undefined) flags |= SVC_FLAG.affinity;
  if (f.localOnly) flags |= SVC_FLAG.local;
  if (f.kind === 'NodePort') flags |= SVC_FLAG.nodePort;
  if (f.kind === 'ExternalIP' || f.kind === 'LoadBalancer') flags |= SVC_FLAG.external;
  return flags;
}

const sameFrontend = (a: FrontendValue, b: FrontendValue): boolean =>
  a.frontendId === b.frontendId && a.groupId === b.groupId && a.count === b.count && a.flags === b.flags && a.affinitySeconds === b.affinitySeconds;

/** Hands out ids from 1 up, skipping ids in use; wraps at 2^32-1. */
class Ids {
  next = 1;
  constructor(readonly what: string) {}
  /** Makes sure ids up to `n` are never handed out again. */
  floor(n: number): void { if (n >= this.next) this.next = n + 1 > MAX_ID ? 1 : n + 1; }
  take(inUse: (id: number) => boolean): number {
    for (let tries = 0; tries < 1_000_000; tries++) {
      const id = this.next;
      this.next = id >= MAX_ID ? 1 : id + 1;
      if (!inUse(id)) return id;
    }
    throw new PodnetError('TOO_BIG', `allocate a ${this.what} id: no free id found`);
  }
}

/**
 * Places `want` (backend ids) into the slots of `cur` so that ids that stay
 * keep their slot: new ids fill the holes removed ones leave, then extend
 * the list; a shorter list moves its tail into the holes.
 */
export function placeSlots(cur: readonly number[], want: ReadonlySet<number>): number[] {
  const next = cur.slice();
  const holes: number[] = [];
  const have = new Set<number>();
  for (let i = 0; i < next.length; i++) {
    const id = next[i]!;
    if (want.has(id) && !have.has(id)) have.add(id); else holes.push(i);
  }
  const add: number[] = [];
  for (const id of want) if (!have.has(id)) add.push(id);
  let h = 0;
  for (const id of add) {
    if (h < holes.length) next[holes[h++]!] = id; else next.push(id);
  }
  if (h < holes.length) {
    // Shrinking: the holes below the new length take the last live entries,
    // then the tail is cut. As many live entries sit past the new length as
    // there are holes below it, so the last live one is always past it.
    const len = want.size;
    const isHole = new Set(holes.slice(h));
    let tail = next.length - 1;
    for (const hole of holes.slice(h)) {
      if (hole >= len) break;
      while (isHole.has(tail)) tail--;
      next[hole] = next[tail]!;
      isHole.add(tail);
      tail--;
    }
    next.length = len;
  }
  return next;
}

/** Keeps the service maps equal to what the last snapshot asks for. */
export class ServiceReconciler {
  private readonly t: ServiceTables;
  private fe = new Map<string, FrontendState>();
  /** Slots as the map holds them, per group (0: no slot there). */
  private groups = new Map<number, number[]>();
  private groupIds = new Map<string, number>();
  private readonly groupNames = new Map<number, string>();
  private be = new Map<string, BackendState>();
  private beById = new Map<number, string>();
  private ranges = new Set<string>();
  private feIds = new Set<number>();
  private readonly ids = { frontend: new Ids('frontend'), group: new Ids('group'), backend: new Ids('backend') };
  private loaded = false;
  /** The last desired frontends, for health checks and names. */
  private desired: Frontend[] = [];

  constructor(private readonly d: ServiceReconcilerDeps) {
    this.t = d.tables;
  }

  /**
   * Reads the maps back (at start, and before a periodic full pass), so ids
   * and slots that are in the maps stay as they are. Names are restored from
   * the remembered ones where the ids match.
   */
  load(): void {
    const names = new Map<number, FrontendName>();
    for (const f of this.fe.values()) if (f.name) names.set(f.value.frontendId, f.name);
    this.fe = new Map();
    this.feIds = new Set();
    for (const [k, v] of this.t.readFrontends()) {
      this.fe.set(fkey(k.addr, k.port, k.proto), { key: k, value: v, name: names.get(v.frontendId) });
      this.feIds.add(v.frontendId);
      this.ids.frontend.floor(v.frontendId);
      this.ids.group.floor(v.groupId);
    }
    this.groups = new Map();
    for (const [k, backendId] of this.t.readSlots()) {
      let g = this.groups.get(k.groupId);
      if (!g) this.groups.set(k.groupId, (g = []));
      while (g.length <= k.slot) g.push(0);
      g[k.slot] = backendId;
      this.ids.group.floor(k.groupId);
    }
    this.be = new Map();
    this.beById = new Map();
    for (const [id, v] of this.t.readBackends()) {
      const k = fkey(v.addr, v.port, v.proto);
      this.be.set(k, { id, value: v });
      this.beById.set(id, k);
      this.ids.backend.floor(id);
    }
    this.ranges = new Set(this.t.readRanges());
    const ct = this.t.conntrackMaxIds();
    this.ids.backend.floor(ct.backend);
    this.ids.frontend.floor(ct.frontend);
    // Group ids stay claimed by their keys only while frontends point at them.
    const live = new Set([...this.fe.values()].map((f) => f.value.groupId));
    for (const [k, id] of this.groupIds) if (!live.has(id) && !this.groups.has(id)) this.groupIds.delete(k);
    this.loaded = true;
  }

  /** Applies a snapshot for this node; reads the maps first on the first call. */
  apply(snap: ServiceSnapshot, node: NodeView): ServiceReconcileOutcome {
    const t0 = process.hrtime.bigint();
    if (!this.loaded) this.load();
    const out: ServiceReconcileOutcome = {
      result: 'ok', written: { backends: 0, slots: 0, frontends: 0, ranges: 0 }, removed: { backends: 0, slots: 0, frontends: 0, ranges: 0 },
      errors: [], full: {}, seconds: 0, frontends: 0, backends: 0,
    };
    const fail = (map: ServiceMapName, verb: string, failures: WriteFailure[]): void => {
      if (failures.length === 0) return;
      const full = failures.filter((f) => isMapFull(f.error));
      if (full.length > 0) {
        out.full[map] = (out.full[map] ?? 0) + full.length;
        out.errors.push(new MapFullError(map, this.t.capacity(map), full.length, full[0]!.error).message);
      }
      const other = failures.filter((f) => !isMapFull(f.error));
      if (other.length > 0) out.errors.push(`${verb} ${other.length} of ${map}: ${other[0]!.error.message}`);
    };

    const frontends = desiredFrontends(snap.services, snap.slices, node);
    this.desired = frontends;
    const endpoints = endpointPorts(snap.slices, node);

    // 1. Backends: one per endpoint port that exists at all.
    const beWrites: Array<[number, BackendValue]> = [];
    const beWriteKeys: string[] = [];
    for (const [k, e] of endpoints) {
      const value: BackendValue = { addr: e.ip, port: e.port, proto: PROTO[e.protocol], flags: (e.terminating ? BACKEND_FLAG.terminating : 0) | (e.local ? BACKEND_FLAG.local : 0) };
      const had = this.be.get(k);
      if (had && had.value.flags === value.flags) continue;
      const id = had?.id ?? this.ids.backend.take((x) => this.beById.has(x));
      beWrites.push([id, value]);
      beWriteKeys.push(k);
    }
    const beFailed = this.t.writeBackends(beWrites);
    fail('pn_backends', 'write', beFailed);
    const beFailedAt = new Set(beFailed.map((f) => f.index));
    beWrites.forEach(([id, value], i) => {
      if (beFailedAt.has(i)) return;
      const k = beWriteKeys[i]!;
      this.be.set(k, { id, value });
      this.beById.set(id, k);
      out.written.backends++;
    });

    // 2. Groups and their slots.
    interface Group { id: number; frontends: Frontend[]; next: number[] }
    const groups = new Map<string, Group>();
    const claimed = new Set<number>();
    const byKey = new Map<string, Frontend[]>();
    for (const f of frontends) {
      const gk = groupKeyOf(f);
      const list = byKey.get(gk);
      if (list) list.push(f); else byKey.set(gk, [f]);
    }
    // Keys known from earlier passes keep their ids first, so a group read
    // back from the maps cannot take an id another key already holds.
    const pending: string[] = [];
    const heldIds = new Set(this.groupIds.values());
    for (const gk of byKey.keys()) {
      const id = this.groupIds.get(gk);
      if (id !== undefined && !claimed.has(id)) { claimed.add(id); groups.set(gk, { id, frontends: byKey.get(gk)!, next: [] }); } else pending.push(gk);
    }
    for (const gk of pending) {
      const fs = byKey.get(gk)!;
      // After a restart: the group its frontends already point at.
      let id: number | undefined;
      for (const f of fs) {
        const cur = this.fe.get(fkey(f.address, f.port, PROTO[f.protocol]));
        if (cur && !claimed.has(cur.value.groupId)) { id = cur.value.groupId; break; }
      }
      id ??= this.ids.group.take((x) => claimed.has(x) || this.groups.has(x) || heldIds.has(x));
      claimed.add(id);
      groups.set(gk, { id, frontends: fs, next: [] });
    }
    this.groupIds = new Map([...groups].map(([gk, g]) => [gk, g.id]));
    this.groupNames.clear();
    for (const [gk, g] of groups) this.groupNames.set(g.id, gk);

    const slotWrites: Array<[SlotKey, number]> = [];
    for (const g of groups.values()) {
      const want = new Set<number>();
      for (const b of g.frontends[0]!.backends) {
        const st = this.be.get(backendKey(b.ip, b.port, g.frontends[0]!.protocol));
        if (st) want.add(st.id); // absent: its write failed (map full), reported above
      }
      const cur = this.groups.get(g.id) ?? [];
      g.next = placeSlots(cur, want);
      for (let i = 0; i < g.next.length; i++) if (g.next[i] !== cur[i]) slotWrites.push([{ groupId: g.id, slot: i }, g.next[i]!]);
    }
    const slotFailed = this.t.writeSlots(slotWrites);
    fail('pn_svc_slots', 'write', slotFailed);
    const slotFailedAt = new Set(slotFailed.map((f) => f.index));
    slotWrites.forEach(([k, id], i) => {
      if (slotFailedAt.has(i)) return;
      let g = this.groups.get(k.groupId);
      if (!g) this.groups.set(k.groupId, (g = []));
      while (g.length <= k.slot) g.push(0);
      g[k.slot] = id;
      out.written.slots++;
    });

    // 3. Frontends: count = the longest prefix of slots the map holds as wanted.
    const feWrites: Array<[FrontendKey, FrontendValue]> = [];
    const feWriteState: FrontendState[] = [];
    const wanted = new Set<string>();
    for (const g of groups.values()) {
      const held = this.groups.get(g.id) ?? [];
      let count = 0;
      while (count < g.next.length && held[count] === g.next[count]) count++;
      for (const f of g.frontends) {
        const proto = PROTO[f.protocol];
        const k = fkey(f.address, f.port, proto);
        wanted.add(k);
        const cur = this.fe.get(k);
        const name: FrontendName = { service: f.service, portName: f.portName, kind: f.kind, localOnly: f.localOnly };
        const value: FrontendValue = {
          frontendId: cur?.value.frontendId ?? this.ids.frontend.take((x) => this.feIds.has(x)),
          groupId: g.id, count, flags: frontendFlags(f), affinitySeconds: f.affinitySeconds ?? 0,
        };
        if (cur && sameFrontend(cur.value, value)) { cur.name = name; continue; }
        if (!cur) this.feIds.add(value.frontendId);
        feWrites.push([{ addr: f.address, port: f.port, proto }, value]);
        feWriteState.push({ key: { addr: f.address, port: f.port, proto }, value, name });
      }
    }
    const feFailed = this.t.writeFrontends(feWrites);
    fail('pn_services', 'write', feFailed);
    const feFailedAt = new Set(feFailed.map((f) => f.index));
    feWriteState.forEach((s, i) => {
      const k = fkey(s.key.addr, s.key.port, s.key.proto);
      if (feFailedAt.has(i)) {
        const cur = this.fe.get(k);
        if (cur) cur.name = s.name; else this.feIds.delete(s.value.frontendId);
        return;
      }
      this.fe.set(k, s);
      out.written.frontends++;
    });

    // Ranges after the frontends: a new range never drops traffic to a Service just added.
    const wantRanges = new Set(snap.serviceCidrs && snap.serviceCidrs.length > 0 ? snap.serviceCidrs : this.d.defaultServiceCidrs);
    const addRanges = [...wantRanges].filter((c) => !this.ranges.has(c));
    const rangeFailed = this.t.writeRanges(addRanges);
    fail('pn_svc_ranges', 'write', rangeFailed);
    const rangeFailedAt = new Set(rangeFailed.map((f) => f.index));
    addRanges.forEach((c, i) => { if (!rangeFailedAt.has(i)) { this.ranges.add(c); out.written.ranges++; } });

    // 4. Removed frontends.
    const feGone = [...this.fe].filter(([k]) => !wanted.has(k));
    const feDelFailed = this.t.deleteFrontends(feGone.map(([, s]) => s.key));
    fail('pn_services', 'delete', feDelFailed);
    const feDelFailedAt = new Set(feDelFailed.map((f) => f.index));
    const statsGone: number[] = [];
    feGone.forEach(([k, s], i) => {
      if (feDelFailedAt.has(i)) return;
      this.fe.delete(k);
      this.feIds.delete(s.value.frontendId);
      statsGone.push(s.value.frontendId);
      out.removed.frontends++;
    });
    if (statsGone.length > 0) this.t.deleteStats(statsGone);

    // 5. Slots past every count that could read them and not wanted by their group.
    const reach = new Map<number, number>();
    for (const s of this.fe.values()) reach.set(s.value.groupId, Math.max(reach.get(s.value.groupId) ?? 0, s.value.count));
    const wantLen = new Map<number, number>();
    for (const g of groups.values()) wantLen.set(g.id, g.next.length);
    const slotDels: SlotKey[] = [];
    for (const [gid, held] of this.groups) {
      const keep = Math.max(reach.get(gid) ?? 0, wantLen.get(gid) ?? 0);
      for (let i = keep; i < held.length; i++) if (held[i] !== 0) slotDels.push({ groupId: gid, slot: i });
    }
    const slotDelFailed = this.t.deleteSlots(slotDels);
    fail('pn_svc_slots', 'delete', slotDelFailed);
    const slotDelFailedAt = new Set(slotDelFailed.map((f) => f.index));
    slotDels.forEach((k, i) => {
      if (slotDelFailedAt.has(i)) return;
      const held = this.groups.get(k.groupId)!;
      held[k.slot] = 0;
      out.removed.slots++;
    });
    for (const [gid, held] of this.groups) {
      while (held.length > 0 && held[held.length - 1] === 0) held.pop();
      if (held.length === 0) this.groups.delete(gid);
    }

    // 6. Backends whose endpoint is gone and that no reachable slot names.
    const named = new Set<number>();
    for (const [gid, n] of reach) {
      const held = this.groups.get(gid) ?? [];
      for (let i = 0; i < n && i < held.length; i++) named.add(held[i]!);
    }
    const beGone = [...this.be].filter(([k, s]) => !endpoints.has(k) && !named.has(s.id));
    const beDelFailed = this.t.deleteBackends(beGone.map(([, s]) => s.id));
    fail('pn_backends', 'delete', beDelFailed);
    const beDelFailedAt = new Set(beDelFailed.map((f) => f.index));
    beGone.forEach(([k, s], i) => {
      if (beDelFailedAt.has(i)) return;
      this.be.delete(k);
      this.beById.delete(s.id);
      out.removed.backends++;
      if (s.value.proto === IP_PROTO.UDP && this.d.onUdpBackendRemoved) {
        try {
          this.d.onUdpBackendRemoved(s.value.addr, s.value.port, s.value.proto);
        } catch (err) {
          out.errors.push(`destroy sockets to ${s.value.addr}:${s.value.port}/UDP: ${(err as Error).message}`);
        }
      }
    });

    const rangeGone = [...this.ranges].filter((c) => !wantRanges.has(c));
    const rangeDelFailed = this.t.deleteRanges(rangeGone);
    fail('pn_svc_ranges', 'delete', rangeDelFailed);
    const rangeDelFailedAt = new Set(rangeDelFailed.map((f) => f.index));
    rangeGone.forEach((c, i) => { if (!rangeDelFailedAt.has(i)) { this.ranges.delete(c); out.removed.ranges++; } });

    const changed = Object.values(out.written).some((n) => n > 0) || Object.values(out.removed).some((n) => n > 0);
    out.result = out.errors.length > 0 ? 'failed' : changed ? 'changed' : 'ok';
    out.frontends = this.fe.size;
    out.backends = this.be.size;
    out.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return out;
  }

  /** The agent's name for a frontend id (undefined for one it did not write). */
  nameOf(frontendId: number): FrontendName | undefined {
    for (const f of this.fe.values()) if (f.value.frontendId === frontendId) return f.name;
    return undefined;
  }

  /** Every frontend id the agent has a name for. */
  names(): Map<number, FrontendName> {
    const out = new Map<number, FrontendName>();
    for (const f of this.fe.values()) if (f.name) out.set(f.value.frontendId, f.name);
    return out;
  }

  /** The frontends of the last snapshot (for health checks). */
  lastDesired(): readonly Frontend[] {
    return this.desired;
  }

  /** How many entries the agent holds in each map it writes. */
  sizes(): { frontends: number; groups: number; slots: number; backends: number } {
    let slots = 0;
    for (const g of this.groups.values()) for (const id of g) if (id !== 0) slots++;
    return { frontends: this.fe.size, groups: this.groups.size, slots, backends: this.be.size };
  }
}
