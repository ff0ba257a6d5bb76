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
import { joinKey } from '../util/keys.js';
import { IP_PROTO, IP_PROTO_NAME as PROTO_NAME } from '../maps/services.js';
import {
  SERVICE_NAME_LABEL, backendKey, desiredFrontends, endpointPorts,
  type EndpointPort, type EndpointSliceObject, type Frontend, type FrontendKind, type NodeView, type Protocol, type ServiceObject,
} from './model.js';
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
  /** Map entries read back (load(), verify()) since the last pass: a big read is as much garbage as a big write. */
  read: number;
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
/**
 * A backend as pn_backends holds it, with the counts that decide when it
 * may go. Its address, port and protocol are in its key ("addr:port/PROTO",
 * kept here so every table shares one string). One record per backend
 * carries what would otherwise be two more 100,000-entry Maps at 10,000
 * Services: each costs about 3.7 MB of hash table alone.
 */
interface BackendState {
  id: number;
  flags: number;
  key: string;
  /** How many Service plans list its endpoint port. */
  refs: number;
  /** How many slots name its id, as pn_svc_slots holds them. */
  slots: number;
}

const PROTO: Readonly<Record<Protocol, number>> = IP_PROTO;
const MAX_ID = 0xffff_ffff;

const fkey = (addr: string, port: number, proto: number): string => joinKey(addr, ':', port, '/', PROTO_NAME[proto] ?? proto);
/** The address, port and protocol number of a key made by fkey (or model.ts's backendKey). */
function parseKey(k: string): { addr: string; port: number; proto: number } {
  const colon = k.lastIndexOf(':');
  const slash = k.indexOf('/', colon);
  const name = k.slice(slash + 1) as Protocol;
  return { addr: k.slice(0, colon), port: Number(k.slice(colon + 1, slash)), proto: PROTO[name] ?? Number(name) };
}
/** Adds `d` to the count of `k` in `m`; a count that reaches 0 leaves the map. */
function bump<K>(m: Map<K, number>, k: K, d: number): void {
  const n = (m.get(k) ?? 0) + d;
  if (n > 0) m.set(k, n); else m.delete(k);
}

const groupKeyOf = (f: Frontend): string => joinKey(f.service, '\u0000', f.portName, '\u0000', f.protocol, '\u0000', f.localOnly ? 'local' : 'cluster');

function frontendFlags(f: Frontend): number {
  let flags = 0;
  if (f.affinitySeconds !== undefined) flags |= SVC_FLAG.affinity;
  if (f.localOnly) flags |= SVC_FLAG.local;
  if (f.kind === 'NodePort') flags |= SVC_FLAG.nodeport;
  if (f.kind === 'ExternalIP' || f.kind === 'LoadBalancer') flags |= SVC_FLAG.external;
  return flags;
}

const sameFrontend = (a: FrontendValue, b: FrontendValue): boolean =>
  a.frontendId === b.frontendId && a.groupId === b.groupId && a.count === b.count && a.flags === b.flags && a.affinitySeconds === b.affinitySeconds;

/**
 * Values by id. Backend ids are handed out from 1 up, so an array holds
 * them: 100,000 backends cost 0.8 MB of elements where a Map's hash table
 * costs 3.7 MB. Removed ids are deleted (holes); V8 turns an array that
 * grew too sparse (ids climb with endpoint churn) into a dictionary itself.
 */
class ById<V> {
  private readonly a: V[] = [];
  get(id: number): V | undefined { return this.a[id]; }
  has(id: number): boolean { return this.a[id] !== undefined; }
  set(id: number, v: V): void { this.a[id] = v; }
  delete(id: number): void { delete this.a[id]; }
}

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

/**
 * What one Service (or the slices of a name without a Service) asked for in
 * the last pass. Kept small: at 10,000 Services it is held for every one.
 */
interface ServicePlan {
  svc: ServiceObject | undefined;
  slices: EndpointSliceObject[];
  /** Its frontends; their backend lists only where health checks read them (a healthCheckNodePort). */
  frontends: Frontend[];
  /** Keys of the endpoint ports it lists (backend keys, shared with the backend table). */
  endpointKeys: readonly string[];
  groupKeys: string[];
}

/** True when the Service has a healthCheckNodePort, whose server reads its frontends' backends. */
function hasHealthCheck(svc: ServiceObject | undefined): boolean {
  const hc = svc?.spec?.healthCheckNodePort;
  return typeof hc === 'number' && hc > 0;
}

const NO_BACKENDS: Frontend['backends'] = Object.freeze([]) as unknown as Frontend['backends'];
const NO_KEYS: readonly string[] = Object.freeze([]);

/**
 * The plan as kept after its pass, with the keys of its endpoint ports:
 * what later passes and health checks read, nothing more.
 */
function keepPlan(p: ServicePlan, keys: Iterable<string>, canonical: (k: string) => string): ServicePlan {
  const frontends = hasHealthCheck(p.svc) ? p.frontends : p.frontends.map((f) => ({ ...f, backends: NO_BACKENDS }));
  const endpointKeys: string[] = [];
  for (const k of keys) endpointKeys.push(canonical(k));
  return { ...p, frontends, endpointKeys };
}

const versionOf = (o: { metadata?: unknown } | undefined): string | undefined => (o?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;

/** The same object, or the same resourceVersion (a source that copies objects). */
function sameObject<T extends { metadata?: unknown }>(a: T | undefined, b: T | undefined): boolean {
  if (a === b) return true;
  const va = versionOf(a);
  return va !== undefined && va === versionOf(b) && (a?.metadata as { uid?: string })?.uid === (b?.metadata as { uid?: string })?.uid;
}

const ownerOf = (s: EndpointSliceObject): string | undefined => {
  const name = s.metadata?.labels?.[SERVICE_NAME_LABEL];
  return name ? joinKey(s.metadata?.namespace ?? 'default', '/', name) : undefined;
};

/**
 * Keeps the service maps equal to what the last snapshot asks for. A pass
 * recomputes only the Services whose object or slices changed since the
 * last one (same object, or same resourceVersion), so a single endpoint
 * change costs about as much as that Service, not the whole cluster; the
 * first pass after load() (start, periodic resync) recomputes everything
 * and also removes whatever the maps hold that no Service asks for.
 */
export class ServiceReconciler {
  private readonly t: ServiceTables;
  private fe = new Map<string, FrontendState>();
  /** Which Service each frontend belongs to. */
  private feOwner = new Map<string, string>();
  /** Frontend keys by the group they point at, as the map holds them. */
  private groupFes = new Map<number, string[]>();
  /** Slots as the map holds them, per group (0: no slot there). */
  private groups = new Map<number, number[]>();
  /** Slot counts of backend ids pn_backends does not hold (a failed write, a map edited behind the agent's back). */
  private orphanSlots = new Map<number, number>();
  private groupIds = new Map<string, number>();
  /** groupIds the other way, id -> key: which ids are claimed, without a Set of 10,000 made every pass. */
  private groupKeyById = new Map<number, string>();
  private be = new Map<string, BackendState>();
  private beById = new ById<BackendState>();
  /** Plan counts of endpoint ports pn_backends does not hold (their write failed, or is in flight). */
  private pendingRefs = new Map<string, number>();
  private ranges = new Set<string>();
  private feIds = new Set<number>();
  private readonly ids = { frontend: new Ids('frontend'), group: new Ids('group'), backend: new Ids('backend') };
  private plans = new Map<string, ServicePlan>();
  /** Keys of the plans whose Service has a healthCheckNodePort. */
  private hcKeys = new Set<string>();
  private nodeSig = '';
  private loaded = false;
  /** The next pass removes everything no Service asks for (after load()). */
  private sweep = false;
  /** Entries read back from the maps since the last pass. */
  private readBack = 0;
  /** The last snapshot's objects by identity, with their key and the pass that last saw them (index()). */
  private seenServices = new Map<ServiceObject, { key: string; epoch: number }>();
  private seenSlices = new Map<EndpointSliceObject, { key: string | undefined; epoch: number }>();
  private services = new Map<string, ServiceObject>();
  private slicesOf = new Map<string, EndpointSliceObject[]>();
  /** Keys more than one Service object of a snapshot had. */
  private dupes = new Set<string>();
  private epoch = 0;

  constructor(private readonly d: ServiceReconcilerDeps) {
    this.t = d.tables;
  }

  /**
   * Reads the maps back (at start, and for a periodic full pass), so ids
   * and slots that are in the maps stay as they are; the next apply()
   * recomputes every Service. Names are kept where the ids match.
   */
  load(): void {
    const names = new Map<number, FrontendName>();
    for (const f of this.fe.values()) if (f.name) names.set(f.value.frontendId, f.name);
    this.fe = new Map();
    this.feIds = new Set();
    this.groupFes = new Map();
    for (const [k, v] of this.t.readFrontends()) {
      const fk = fkey(k.addr, k.port, k.proto);
      this.setFe(fk, { key: k, value: v, name: names.get(v.frontendId) });
      this.readBack++;
      this.ids.frontend.floor(v.frontendId);
      this.ids.group.floor(v.groupId);
    }
    this.be = new Map();
    this.beById = new ById();
    this.t.forEachBackend((id, addr, port, proto, flags) => {
      const key = fkey(addr, port, proto);
      const st: BackendState = { id, flags, key, refs: 0, slots: 0 };
      this.be.set(key, st);
      this.ids.backend.floor(id);
      this.readBack++;
    });
    // In id order: the map gives them in hash order, and an array first written at a high index starts as a dictionary.
    for (const st of [...this.be.values()].sort((x, y) => x.id - y.id)) this.beById.set(st.id, st);
    this.groups = new Map();
    this.orphanSlots = new Map();
    this.t.forEachSlot((groupId, slot, backendId) => {
      this.setSlot(groupId, slot, backendId);
      this.ids.group.floor(groupId);
      this.readBack++;
    });
    this.ranges = new Set(this.t.readRanges());
    if (!this.loaded) {
      // Only at start: ids are never handed out twice while this process runs anyway.
      const ct = this.t.conntrackMaxIds();
      this.ids.backend.floor(ct.backend);
      this.ids.frontend.floor(ct.frontend);
    }
    this.forgetPlans();
    // Group ids stay claimed by their keys only while something in the maps uses them.
    this.groupIds.forEach((id, k) => { if (!this.groupFes.has(id) && !this.groups.has(id)) this.releaseGroup(k); });
    this.loaded = true;
  }

  /**
   * True when the maps hold exactly what this reconciler believes they do:
   * the cheap periodic check (reads the maps, computes nothing). False
   * before the first load().
   */
  verify(): boolean {
    if (!this.loaded) return false;
    const fes = this.t.readFrontends();
    this.readBack += fes.length;
    if (fes.length !== this.fe.size) return false;
    for (const [k, v] of fes) {
      const m = this.fe.get(fkey(k.addr, k.port, k.proto));
      if (!m || !sameFrontend(m.value, v)) return false;
    }
    let slots = 0;
    for (const g of this.groups.values()) for (const id of g) if (id !== 0) slots++;
    let same = true;
    let held = 0;
    this.t.forEachSlot((groupId, slot, id) => {
      held++;
      if (same && this.groups.get(groupId)?.[slot] !== id) same = false;
    });
    this.readBack += held;
    if (!same || held !== slots) return false;
    let bes = 0;
    this.t.forEachBackend((id, addr, port, proto, flags) => {
      bes++;
      if (!same) return;
      const m = this.beById.get(id);
      if (!m || m.flags !== flags || m.key !== fkey(addr, port, proto)) same = false;
    });
    this.readBack += bes;
    if (!same || bes !== this.be.size) return false;
    const ranges = this.t.readRanges();
    return ranges.length === this.ranges.size && ranges.every((r) => this.ranges.has(r));
  }

  /** The next pass recomputes every Service and removes what none asks for. */
  private forgetPlans(): void {
    this.plans = new Map();
    this.hcKeys = new Set();
    for (const st of this.be.values()) st.refs = 0;
    this.pendingRefs = new Map();
    this.feOwner = new Map();
    this.sweep = true;
  }

  private setFe(k: string, s: FrontendState): void {
    const was = this.fe.get(k);
    if (was) {
      this.leaveGroup(was.value.groupId, k);
      if (was.value.frontendId !== s.value.frontendId) this.feIds.delete(was.value.frontendId);
    }
    this.fe.set(k, s);
    this.feIds.add(s.value.frontendId);
    const g = this.groupFes.get(s.value.groupId);
    if (!g) this.groupFes.set(s.value.groupId, [k]); else if (!g.includes(k)) g.push(k);
  }

  /** Frontend `k` no longer points at group `gid` (a group's list is a few frontends: an array, not a Set). */
  private leaveGroup(gid: number, k: string): void {
    const g = this.groupFes.get(gid);
    const at = g ? g.indexOf(k) : -1;
    if (at < 0) return;
    g!.splice(at, 1);
    if (g!.length === 0) this.groupFes.delete(gid);
  }

  private deleteFe(k: string): void {
    const was = this.fe.get(k);
    if (!was) return;
    this.fe.delete(k);
    this.feIds.delete(was.value.frontendId);
    this.leaveGroup(was.value.groupId, k);
  }

  /** Records slot `slot` of group `gid` as the map holds it; 0 for none. */
  private setSlot(gid: number, slot: number, backendId: number): void {
    let g = this.groups.get(gid);
    if (!g) this.groups.set(gid, (g = []));
    while (g.length <= slot) g.push(0);
    const old = g[slot]!;
    if (old !== 0) this.countSlot(old, -1);
    g[slot] = backendId;
    if (backendId !== 0) this.countSlot(backendId, 1);
    if (backendId === 0) {
      while (g.length > 0 && g[g.length - 1] === 0) g.pop();
      if (g.length === 0) this.groups.delete(gid);
    }
  }

  /**
   * Brings the Service and slice indexes up to `snap` and returns the keys
   * ("namespace/name") whose Service or slices are not the objects of the
   * last pass. Unchanged objects are the same objects from one snapshot to
   * the next, so a pass costs one lookup per object and allocates only for
   * what changed: with 10,000 Services and a stream of endpoint changes,
   * rebuilding both indexes each pass was megabytes of garbage a second.
   */
  private index(snap: ServiceSnapshot): Set<string> {
    const epoch = ++this.epoch;
    const dirty = new Set<string>();
    for (const o of snap.services) {
      const seen = this.seenServices.get(o);
      if (seen) { seen.epoch = epoch; continue; }
      const key = joinKey(o.metadata?.namespace ?? 'default', '/', o.metadata?.name ?? '');
      const other = this.services.get(key);
      if (other !== undefined && this.seenServices.get(other)?.epoch === epoch) this.dupes.add(key);
      this.seenServices.set(o, { key, epoch });
      this.services.set(key, o);
      dirty.add(key);
    }
    for (const o of snap.slices) {
      const seen = this.seenSlices.get(o);
      if (seen) { seen.epoch = epoch; continue; }
      const key = ownerOf(o);
      this.seenSlices.set(o, { key, epoch });
      if (key === undefined) continue;
      // A new list, never one changed in place: plans keep the list they were made from.
      this.slicesOf.set(key, [...(this.slicesOf.get(key) ?? []), o]);
      dirty.add(key);
    }
    // forEach, not for-of over entries: that makes a [key, value] array per entry, 20,000 a pass.
    this.seenServices.forEach((seen, o) => {
      if (seen.epoch === epoch) return;
      this.seenServices.delete(o);
      if (this.services.get(seen.key) === o) this.services.delete(seen.key);
      dirty.add(seen.key);
    });
    this.seenSlices.forEach((seen, o) => {
      if (seen.epoch === epoch) return;
      this.seenSlices.delete(o);
      if (seen.key === undefined) return;
      const l = (this.slicesOf.get(seen.key) ?? []).filter((x) => x !== o);
      if (l.length > 0) this.slicesOf.set(seen.key, l); else this.slicesOf.delete(seen.key);
      dirty.add(seen.key);
    });
    // Two objects of one name in a snapshot (no source sends them; the last one counts): the one still there keeps the key.
    for (const key of this.dupes) {
      let n = 0;
      for (const [o, seen] of this.seenServices) if (seen.key === key) { n++; if (!this.services.has(key)) this.services.set(key, o); }
      if (n < 2) this.dupes.delete(key);
    }
    return dirty;
  }

  /** Group key `gk` gives up its id. */
  private releaseGroup(gk: string): void {
    const id = this.groupIds.get(gk);
    if (id === undefined) return;
    this.groupIds.delete(gk);
    if (this.groupKeyById.get(id) === gk) this.groupKeyById.delete(id);
  }

  /** Adds `d` to the number of slots naming backend `id`. */
  private countSlot(id: number, d: number): void {
    const st = this.beById.get(id);
    if (st) st.slots += d; else bump(this.orphanSlots, id, d);
  }

  /** How many slots name backend `id`. */
  private slotsOf(id: number): number {
    return this.beById.get(id)?.slots ?? this.orphanSlots.get(id) ?? 0;
  }

  /** How many plans list endpoint port `k`. */
  private refsOf(k: string): number {
    return this.be.get(k)?.refs ?? this.pendingRefs.get(k) ?? 0;
  }

  /** Adds `d` to the number of plans listing endpoint port `k`. */
  private countRef(k: string, d: number): void {
    const st = this.be.get(k);
    if (st) st.refs += d; else bump(this.pendingRefs, k, d);
  }

  /** The highest count of any frontend pointing at a group: its slots below it must stay. */
  private reach(gid: number): number {
    let n = 0;
    for (const k of this.groupFes.get(gid) ?? []) n = Math.max(n, this.fe.get(k)!.value.count);
    return n;
  }

  /** Applies a snapshot for this node; reads the maps first on the first call. */
  apply(snap: ServiceSnapshot, node: NodeView): ServiceReconcileOutcome {
    const t0 = process.hrtime.bigint();
    if (!this.loaded) this.load();
    const out: ServiceReconcileOutcome = {
      result: 'ok', written: { backends: 0, slots: 0, frontends: 0, ranges: 0 }, removed: { backends: 0, slots: 0, frontends: 0, ranges: 0 },
      errors: [], full: {}, seconds: 0, frontends: 0, backends: 0, read: 0,
    };
    const fail = (map: ServiceMapName, verb: string, failures: WriteFailure[]): Set<number> => {
      if (failures.length === 0) return new Set();
      const full = failures.filter((f) => isMapFull(f.error));
      if (full.length > 0) {
        out.full[map] = (out.full[map] ?? 0) + full.length;
        out.errors.push(new MapFullError(map, this.t.capacity(map), full.length, full[0]!.error).message);
      }
      const other = failures.filter((f) => !isMapFull(f.error));
      if (other.length > 0) out.errors.push(`${verb} ${other.length} ${other.length === 1 ? 'entry' : 'entries'} of ${map}: ${other[0]!.error.message}`);
      return new Set(failures.map((f) => f.index));
    };

    const sig = `${node.name}\u0000${node.addresses.join(',')}`;
    if (sig !== this.nodeSig) {
      // NodePort frontends and Local scopes depend on the node: every Service again.
      this.nodeSig = sig;
      this.forgetPlans();
    }
    const sweep = this.sweep;
    this.sweep = false;

    // Which Services changed since the last pass.
    const dirty = this.index(snap);
    const services = this.services;
    const slicesOf = this.slicesOf;
    interface Change { key: string; old: ServicePlan | undefined; plan: ServicePlan | undefined; endpoints: Map<string, EndpointPort> }
    const changes: Change[] = [];
    const consider = (key: string): void => {
      const svc = services.get(key);
      const slices = slicesOf.get(key) ?? [];
      const old = this.plans.get(key);
      if (old && sameObject(old.svc, svc) && old.slices.length === slices.length && old.slices.every((x, i) => sameObject(x, slices[i]))) return;
      // Ports outside 1..65535 cannot be written (the API server never sends them; a hand-written file might).
      const okPort = (p: number): boolean => Number.isInteger(p) && p > 0 && p <= 0xffff;
      const frontends = (svc ? desiredFrontends([svc], slices, node) : []).filter((f) => okPort(f.port));
      for (const f of frontends) if (f.backends.some((b) => !okPort(b.port))) f.backends = f.backends.filter((b) => okPort(b.port));
      const endpoints = endpointPorts(slices, node);
      for (const [k, e] of endpoints) if (!okPort(e.port)) endpoints.delete(k);
      // endpointKeys: made by keepPlan from `endpoints` once the backends are written.
      const plan: ServicePlan = { svc, slices, frontends, endpointKeys: NO_KEYS, groupKeys: [] };
      changes.push({ key, old, plan: svc || slices.length > 0 ? plan : undefined, endpoints });
    };
    const keys = sweep ? new Set([...services.keys(), ...slicesOf.keys(), ...this.plans.keys()]) : dirty;
    for (const key of keys) {
      if (services.has(key) || slicesOf.has(key)) consider(key);
      else if (this.plans.has(key)) changes.push({ key, old: this.plans.get(key), plan: undefined, endpoints: new Map() });
    }

    // 1. Backends: one per endpoint port that exists at all.
    const beCandidates = new Set<string>();
    const beWrites: Array<[number, BackendValue]> = [];
    const beWriteKeys: string[] = [];
    const queued = new Set<string>();
    for (const c of changes) {
      const now = c.plan ? c.endpoints : new Map<string, EndpointPort>();
      const had = new Set(c.old?.endpointKeys);
      for (const [k, e] of now) {
        if (!had.has(k)) this.countRef(k, 1);
        const value: BackendValue = { addr: e.ip, port: e.port, proto: PROTO[e.protocol], flags: (e.terminating ? BACKEND_FLAG.terminating : 0) | (e.local ? BACKEND_FLAG.local : 0) };
        const st = this.be.get(k);
        if ((st && st.flags === value.flags) || queued.has(k)) continue;
        queued.add(k);
        beWrites.push([st?.id ?? this.ids.backend.take((x) => this.beById.has(x) || this.orphanSlots.has(x)), value]);
        beWriteKeys.push(k);
      }
      for (const k of had) {
        if (now.has(k)) continue;
        this.countRef(k, -1);
        if (this.refsOf(k) === 0) beCandidates.add(k);
      }
    }
    if (sweep) for (const [k, st] of this.be) if (st.refs === 0) beCandidates.add(k);
    const beFailed = fail('pn_backends', 'write', this.t.writeBackends(beWrites));
    beWrites.forEach(([id, value], i) => {
      if (beFailed.has(i)) return;
      const k = beWriteKeys[i]!;
      const st = this.be.get(k);
      if (st) {
        st.flags = value.flags;
      } else {
        const fresh: BackendState = { id, flags: value.flags, key: k, refs: this.pendingRefs.get(k) ?? 0, slots: this.orphanSlots.get(id) ?? 0 };
        this.pendingRefs.delete(k);
        this.orphanSlots.delete(id);
        this.be.set(k, fresh);
        this.beById.set(id, fresh);
      }
      out.written.backends++;
    });

    // 2. Groups of the changed Services and their slots.
    interface Group { id: number; frontends: Frontend[]; next: number[] }
    const groups = new Map<string, Group>();
    const touchedGroups = new Set<number>();
    const releasedKeys: string[] = [];
    for (const c of changes) {
      for (const gk of c.old?.groupKeys ?? []) releasedKeys.push(gk);
      if (!c.plan) continue;
      const byKey = new Map<string, Frontend[]>();
      for (const f of c.plan.frontends) {
        const gk = groupKeyOf(f);
        const list = byKey.get(gk);
        if (list) list.push(f); else byKey.set(gk, [f]);
      }
      c.plan.groupKeys = [...byKey.keys()];
      for (const [gk, fs] of byKey) groups.set(gk, { id: 0, frontends: fs, next: [] });
    }
    // Ids: a key keeps its id; after a restart a group takes the id its
    // frontends already point at; others get a new one.
    const keep = new Set<string>(groups.keys());
    for (const gk of releasedKeys) {
      if (keep.has(gk)) continue;
      const id = this.groupIds.get(gk);
      this.releaseGroup(gk);
      if (id !== undefined) touchedGroups.add(id);
    }
    const pending: Array<[string, Group]> = [];
    for (const [gk, g] of groups) {
      const id = this.groupIds.get(gk);
      if (id !== undefined) g.id = id; else pending.push([gk, g]);
    }
    for (const [gk, g] of pending) {
      let id: number | undefined;
      for (const f of g.frontends) {
        const cur = this.fe.get(fkey(f.address, f.port, PROTO[f.protocol]));
        if (cur && !this.groupKeyById.has(cur.value.groupId)) { id = cur.value.groupId; break; }
      }
      id ??= this.ids.group.take((x) => this.groupKeyById.has(x) || this.groups.has(x) || this.groupFes.has(x));
      g.id = id;
      this.groupIds.set(gk, id);
      this.groupKeyById.set(id, gk);
    }
    const slotWrites: Array<[SlotKey, number]> = [];
    for (const g of groups.values()) {
      touchedGroups.add(g.id);
      const want = new Set<number>();
      const proto = g.frontends[0]!.protocol;
      for (const b of g.frontends[0]!.backends) {
        const st = this.be.get(backendKey(b.ip, b.port, proto));
        if (st) want.add(st.id); // absent: its write failed (map full), reported above
      }
      const cur = this.groups.get(g.id) ?? [];
      g.next = placeSlots(cur, want);
      for (let i = 0; i < g.next.length; i++) if (g.next[i] !== cur[i]) slotWrites.push([{ groupId: g.id, slot: i }, g.next[i]!]);
    }
    const slotFailed = fail('pn_svc_slots', 'write', this.t.writeSlots(slotWrites));
    slotWrites.forEach(([k, id], i) => {
      if (slotFailed.has(i)) return;
      this.setSlot(k.groupId, k.slot, id);
      out.written.slots++;
    });

    // 3. Frontends of the changed Services: count = the longest prefix of slots the map holds as wanted.
    const feWrites: Array<[FrontendKey, FrontendValue]> = [];
    const feWriteState: FrontendState[] = [];
    const wantedBy = new Map<string, string>();
    const changedKeys = new Set(changes.map((c) => c.key));
    for (const c of changes) {
      if (!c.plan) continue;
      for (const gk of c.plan.groupKeys) {
        const g = groups.get(gk)!;
        const held = this.groups.get(g.id) ?? [];
        let count = 0;
        while (count < g.next.length && held[count] === g.next[count]) count++;
        for (const f of g.frontends) {
          const proto = PROTO[f.protocol];
          const k = fkey(f.address, f.port, proto);
          const owner = this.feOwner.get(k);
          if ((owner !== undefined && owner !== c.key && !changedKeys.has(owner)) || wantedBy.has(k)) {
            out.errors.push(`frontend ${k} of Service ${c.key}: already used by Service ${wantedBy.get(k) ?? owner}; ignoring it`);
            continue;
          }
          wantedBy.set(k, c.key);
          const cur = this.fe.get(k);
          const name: FrontendName = { service: f.service, portName: f.portName, kind: f.kind, localOnly: f.localOnly };
          const value: FrontendValue = {
            frontendId: cur?.value.frontendId ?? this.ids.frontend.take((x) => this.feIds.has(x)),
            groupId: g.id, count, flags: frontendFlags(f), affinitySeconds: f.affinitySeconds ?? 0,
          };
          if (cur && sameFrontend(cur.value, value)) { cur.name = name; continue; }
          if (!cur) this.feIds.add(value.frontendId); // reserved while the write is in flight
          feWrites.push([{ addr: f.address, port: f.port, proto }, value]);
          feWriteState.push({ key: { addr: f.address, port: f.port, proto }, value, name });
        }
      }
    }
    const feFailed = fail('pn_services', 'write', this.t.writeFrontends(feWrites));
    feWriteState.forEach((s, i) => {
      const k = fkey(s.key.addr, s.key.port, s.key.proto);
      if (feFailed.has(i)) {
        const cur = this.fe.get(k);
        if (cur) cur.name = s.name; else this.feIds.delete(s.value.frontendId);
        return;
      }
      this.setFe(k, s);
      out.written.frontends++;
    });
    for (const [k, owner] of wantedBy) this.feOwner.set(k, owner);

    // Ranges after the frontends: a new range never drops traffic to a Service just added.
    // IPv4 only: the datapath has no IPv6 Services (a dual-stack cluster's ServiceCIDRs have both).
    const v4 = (cidrs: readonly string[] | undefined): string[] => (cidrs ?? []).filter((c) => /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(c));
    const wantRanges = new Set(v4(snap.serviceCidrs).length > 0 ? v4(snap.serviceCidrs) : v4(this.d.defaultServiceCidrs));
    const addRanges = [...wantRanges].filter((c) => !this.ranges.has(c));
    const rangeFailed = fail('pn_svc_ranges', 'write', this.t.writeRanges(addRanges));
    addRanges.forEach((c, i) => { if (!rangeFailed.has(i)) { this.ranges.add(c); out.written.ranges++; } });

    // 4. Frontends no Service asks for any more.
    const feGone = new Set<string>();
    for (const c of changes) {
      for (const f of c.old?.frontends ?? []) {
        const k = fkey(f.address, f.port, PROTO[f.protocol]);
        if (!wantedBy.has(k) && this.feOwner.get(k) === c.key) feGone.add(k);
      }
    }
    if (sweep) for (const k of this.fe.keys()) if (!this.feOwner.has(k) || (!wantedBy.has(k) && changedKeys.has(this.feOwner.get(k)!))) feGone.add(k);
    const goneList = [...feGone].filter((k) => this.fe.has(k));
    const feDelFailed = fail('pn_services', 'delete', this.t.deleteFrontends(goneList.map((k) => this.fe.get(k)!.key)));
    const statsGone: number[] = [];
    goneList.forEach((k, i) => {
      if (feDelFailed.has(i)) return;
      const s = this.fe.get(k)!;
      touchedGroups.add(s.value.groupId);
      statsGone.push(s.value.frontendId);
      this.deleteFe(k);
      this.feOwner.delete(k);
      out.removed.frontends++;
    });
    if (statsGone.length > 0) this.t.deleteStats(statsGone);

    // 5. Slots past every count that could read them and not wanted by their group.
    const wantLen = new Map<number, number>();
    for (const g of groups.values()) wantLen.set(g.id, g.next.length);
    if (sweep) for (const gid of this.groups.keys()) touchedGroups.add(gid);
    const slotDels: SlotKey[] = [];
    for (const gid of touchedGroups) {
      const held = this.groups.get(gid);
      if (!held) continue;
      const from = Math.max(this.reach(gid), this.groupKeyById.has(gid) ? wantLen.get(gid) ?? held.length : 0);
      for (let i = from; i < held.length; i++) if (held[i] !== 0) slotDels.push({ groupId: gid, slot: i });
    }
    const slotDelFailed = fail('pn_svc_slots', 'delete', this.t.deleteSlots(slotDels));
    slotDels.forEach((k, i) => {
      if (slotDelFailed.has(i)) return;
      this.setSlot(k.groupId, k.slot, 0);
      out.removed.slots++;
    });

    // 6. Backends whose endpoint is gone and that no slot names.
    const beGone = [...beCandidates].filter((k) => { const s = this.be.get(k); return s !== undefined && s.refs === 0 && this.slotsOf(s.id) === 0; });
    const beDelFailed = fail('pn_backends', 'delete', this.t.deleteBackends(beGone.map((k) => this.be.get(k)!.id)));
    beGone.forEach((k, i) => {
      if (beDelFailed.has(i)) return;
      const s = this.be.get(k)!;
      this.be.delete(k);
      this.beById.delete(s.id);
      out.removed.backends++;
      const b = parseKey(s.key);
      if (b.proto === IP_PROTO.UDP && this.d.onUdpBackendRemoved) {
        try {
          this.d.onUdpBackendRemoved(b.addr, b.port, b.proto);
        } catch (err) {
          out.errors.push(`destroy sockets to ${b.addr}:${b.port}/UDP: ${(err as Error).message}`);
        }
      }
    });

    const rangeGone = [...this.ranges].filter((c) => !wantRanges.has(c));
    const rangeDelFailed = fail('pn_svc_ranges', 'delete', this.t.deleteRanges(rangeGone));
    rangeGone.forEach((c, i) => { if (!rangeDelFailed.has(i)) { this.ranges.delete(c); out.removed.ranges++; } });

    const canonical = (k: string): string => this.be.get(k)?.key ?? k;
    for (const c of changes) {
      if (c.plan) this.plans.set(c.key, keepPlan(c.plan, c.endpoints.keys(), canonical)); else this.plans.delete(c.key);
      if (hasHealthCheck(c.plan?.svc)) this.hcKeys.add(c.key); else this.hcKeys.delete(c.key);
    }
    // After a refused write the next pass computes every Service again, so what did not fit gets another try.
    if (out.errors.length > 0) this.forgetPlans();

    const changed = Object.values(out.written).some((n) => n > 0) || Object.values(out.removed).some((n) => n > 0);
    out.result = out.errors.length > 0 ? 'failed' : changed ? 'changed' : 'ok';
    out.frontends = this.fe.size;
    out.backends = this.be.size;
    out.read = this.readBack;
    this.readBack = 0;
    out.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return out;
  }

  /** Every frontend id the agent has a name for. */
  names(): Map<number, FrontendName> {
    const out = new Map<number, FrontendName>();
    for (const f of this.fe.values()) if (f.name) out.set(f.value.frontendId, f.name);
    return out;
  }

  /**
   * The desired frontends of one Service ("namespace/name") in the last
   * snapshot, for health checks: their backend lists are kept only for
   * Services with a healthCheckNodePort (empty for the others).
   */
  frontendsOf(service: string): readonly Frontend[] {
    return this.plans.get(service)?.frontends ?? [];
  }

  /** The Service objects of the last snapshot that have a healthCheckNodePort (kept as plans change: this runs every pass). */
  healthCheckServices(): ServiceObject[] {
    const out: ServiceObject[] = [];
    for (const k of this.hcKeys) { const svc = this.plans.get(k)?.svc; if (svc) out.push(svc); }
    return out;
  }

  /** How many entries the agent holds in each map it writes. */
  sizes(): { frontends: number; groups: number; slots: number; backends: number } {
    let slots = 0;
    for (const g of this.groups.values()) for (const id of g) if (id !== 0) slots++;
    return { frontends: this.fe.size, groups: this.groups.size, slots, backends: this.be.size };
  }
}
