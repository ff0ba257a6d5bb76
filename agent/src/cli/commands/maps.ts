/**
 * `podnet maps list` and `podnet maps dump <pin>`: the BPF maps as the kernel
 * holds them, read straight from bpffs (no agent needed; root required).
 */
import { readdirSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { BpfMap, closeFd, objectKind, objGet } from '../../libbpf/index.js';
import { DEFAULTS } from '../../config/index.js';
import { KNOWN_MAPS } from '../../datapath/maps/index.js';
import { PodnetError } from '../../errors/index.js';
import { print, table, type OutputFormat } from '../output.js';
import type { GlobalArgs } from '../globals.js';

interface MapsArgs extends GlobalArgs {
  bpffs?: string;
  pin?: string;
  limit?: number;
}

/** One pinned map as `maps list` shows it. */
export interface PinnedMapRow {
  pin: string;
  id: number;
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  entries: number | null;
}

/** Every map pinned under `dir` (recursively), with its kernel info and fill count. */
export function listPinnedMaps(dir: string): PinnedMapRow[] {
  const rows: PinnedMapRow[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const n of names.sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) { walk(p); continue; }
      const fd = objGet(p);
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

const flat = (v: unknown): string =>
  v !== null && typeof v === 'object' ? Object.entries(v).map(([k, x]) => `${k}=${String(x)}`).join(' ') : String(v);

export const mapsCommand: CommandModule<GlobalArgs, MapsArgs> = {
  command: 'maps',
  describe: 'Inspect pinned BPF maps: list | dump <pin>',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('bpffs', { type: 'string', describe: `bpffs directory of this instance (default ${DEFAULTS.bpffs})` })
      .command<MapsArgs>('list', 'List maps pinned under --bpffs with type, sizes and fill', (yy) => yy, (argv) => {
        const rows = listPinnedMaps(argv.bpffs ?? DEFAULTS.bpffs);
        print(argv.output as OutputFormat, rows, (d) =>
          table(['pin', 'id', 'name', 'type', 'key', 'value', 'max', 'entries'], d.map((r) => [r.pin, r.id, r.name, r.type, r.keySize, r.valueSize, r.maxEntries, r.entries ?? undefined])));
      })
      .command<MapsArgs>('dump <pin>', 'Print every entry of a pinned map (decoded for podnet maps)', (yy) =>
        yy.positional('pin', { type: 'string', describe: 'Pin path, or a name under --bpffs (e.g. pn_endpoints)' })
          .option('limit', { type: 'number', default: 10000, describe: 'Stop after this many entries' }) as Argv<MapsArgs>,
      (argv) => {
        const pin = argv.pin!;
        const path = isAbsolute(pin) ? pin : join(argv.bpffs ?? DEFAULTS.bpffs, pin);
        using m = BpfMap.openPinned(path);
        if (m.type === 'ringbuf') throw new PodnetError('INVALID_ARGUMENT', `dump ${path}: ring buffers have no entries; use podnet monitor`);
        const entries = dumpMap(m, argv.limit ?? 10000);
        print(argv.output as OutputFormat, { map: m.name, type: m.type, pin: path, entries }, (d) =>
          `${d.map} (${d.type}, ${d.entries.length} entries) at ${d.pin}\n` + table(['key', 'value'], d.entries.map((e) => [flat(e.key), flat(e.value)])));
      })
      .demandCommand(1, 'give list or dump <pin>') as unknown as Argv<MapsArgs>,
  handler: () => {},
};
