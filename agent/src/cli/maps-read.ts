/**
 * `podnet maps list|dump`: the BPF maps as the kernel holds them, read
 * straight from bpffs (no agent needed; root required). Loaded on demand:
 * it pulls in the FFI.
 */
import { readdirSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, closeFd, objectKind, objGet } from '../libbpf/index.js';
import { KNOWN_MAPS } from '../maps/index.js';
import { PodnetError, SyscallError } from '../errors/index.js';

/** statfs f_type of bpffs (include/uapi/linux/magic.h). */
const BPF_FS_MAGIC = 0xcafe4a11;

/** One pinned map as `maps list` shows it. */
export interface PinnedMapRow {
  pin: string;
  id: number;
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** Entries in the map; null for ring buffers, which have none. */
  entries: number | null;
}

const NEEDS_ROOT = 'needs root (bpffs directories are private and reading maps needs CAP_BPF)';

/** Rewrites a filesystem or bpf() failure on `what` as a message that says why. */
function explain(verb: string, err: unknown): PodnetError {
  const code = err instanceof SyscallError ? err.errnoName : (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return new PodnetError('PERMISSION', `${verb}: ${code}: ${NEEDS_ROOT}`, { cause: err });
  if (code === 'ENOENT') return new PodnetError('NOT_FOUND', `${verb}: ENOENT: no such file`, { cause: err });
  if (err instanceof PodnetError) return err;
  return new PodnetError('SYSCALL', `${verb}: ${code ?? (err as Error).message}`, { cause: err });
}

/** True when `path` lives on a bpf filesystem. */
function onBpffs(path: string): boolean {
  return statfsSync(path).type === BPF_FS_MAGIC;
}

/**
 * Every map pinned under `dir` (recursively), with its kernel info and fill count.
 * @throws PodnetError NOT_FOUND when `dir` does not exist, PERMISSION without root, NO_BPFFS off bpffs
 */
export function listPinnedMaps(dir: string): PinnedMapRow[] {
  const verb = `list maps under ${dir}`;
  try {
    if (!statSync(dir).isDirectory()) throw new PodnetError('INVALID_ARGUMENT', `${verb}: not a directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PodnetError('NOT_FOUND', `${verb}: ENOENT: no such directory (is the agent's --bpffs elsewhere?)`, { cause: err });
    throw explain(verb, err);
  }
  if (!onBpffs(dir)) throw new PodnetError('NO_BPFFS', `${verb}: not on a bpf filesystem`);
  const rows: PinnedMapRow[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && d !== dir) return; // removed while we walked
      throw explain(verb, err);
    }
    for (const n of names.sort()) {
      const p = join(d, n);
      let isDir: boolean;
      try { isDir = statSync(p).isDirectory(); } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw explain(verb, err);
      }
      if (isDir) { walk(p); continue; }
      let fd: number;
      try { fd = objGet(p); } catch (err) { throw explain(`${verb}: open ${p}`, err); }
      let isMap: boolean;
      try { isMap = objectKind(fd) === 'map'; } finally { closeFd(fd); }
      if (!isMap) continue;
      using m = BpfMap.openPinned(p);
      rows.push({ pin: p, id: m.id, name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, entries: m.type === 'ringbuf' ? null : m.count() });
    }
  };
  walk(dir);
  return rows;
}

/** Decodes every entry of a map: known podnet maps by their codecs (per-CPU summed), others as hex. */
export function dumpMap(m: BpfMap, limit: number): Array<{ key: unknown; value: unknown }> {
  const known = KNOWN_MAPS[m.name];
  const showKey = (k: Buffer): unknown => {
    const decoded = known!.key.decode(k, 0);
    return known!.present ? known!.present(decoded) : decoded;
  };
  const out: Array<{ key: unknown; value: unknown }> = [];
  const perCpu = m.type.startsWith('percpu') || m.type === 'lru_percpu_hash';
  for (const key of m.keys()) {
    if (out.length >= limit) break;
    if (perCpu) {
      const vals = m.lookupPerCpu(key);
      if (!vals) continue;
      out.push(known
        ? { key: showKey(key), value: sumFields(vals.map((v) => known.value.decode(v, 0) as Record<string, unknown>)) }
        : { key: key.toString('hex'), value: vals.map((v) => v.toString('hex')) });
    } else {
      const v = m.lookup(key);
      if (!v) continue; // deleted while we iterated
      out.push(known ? { key: showKey(key), value: known.value.decode(v, 0) } : { key: key.toString('hex'), value: v.toString('hex') });
    }
  }
  return out;
}

function sumFields(vals: Array<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const v of vals) {
    for (const [k, x] of Object.entries(v)) {
      out[k] = typeof x === 'bigint' ? ((out[k] as bigint | undefined) ?? 0n) + x : typeof x === 'number' ? ((out[k] as number | undefined) ?? 0) + x : x;
    }
  }
  return out;
}

/** What `maps dump` prints. */
export interface MapDump {
  map: string;
  type: string;
  pin: string;
  entries: Array<{ key: unknown; value: unknown }>;
}

/**
 * Opens the map pinned at `path` and reads up to `limit` entries.
 * @throws PodnetError naming the path: NOT_FOUND, PERMISSION, NO_BPFFS, INVALID_ARGUMENT (a program or link pin, a ring buffer)
 */
export function dumpPin(path: string, limit: number): MapDump {
  const verb = `dump ${path}`;
  try {
    statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PodnetError('NOT_FOUND', `${verb}: ENOENT: no such pin (podnet maps list shows the pins)`, { cause: err });
    throw explain(verb, err);
  }
  if (!onBpffs(path)) throw new PodnetError('NO_BPFFS', `${verb}: not on a bpf filesystem, so not a pinned map`);
  let fd: number;
  try { fd = objGet(path); } catch (err) { throw explain(verb, err); }
  let kind: string;
  try { kind = objectKind(fd); } finally { closeFd(fd); }
  if (kind !== 'map') throw new PodnetError('INVALID_ARGUMENT', `${verb}: it is a pinned ${kind}, not a map`);
  using m = BpfMap.openPinned(path);
  if (m.type === 'ringbuf') throw new PodnetError('INVALID_ARGUMENT', `${verb}: ${m.name} is a ring buffer; it holds events in flight, not entries to dump`);
  return { map: m.name, type: m.type, pin: path, entries: dumpMap(m, limit) };
}
