/**
 * Moves attachments pinned in the previous layout (links/<ifname>_ingress,
 * links/<ifname>_egress; programs under progs/<16 hex>/) to the current one
 * without detaching anything: each live attachment is switched to the new
 * program in place, pinned under its new name, and only then is the old
 * pin removed. Traffic never sees an empty hook. pn_ifcount, the map of
 * the interface counter program that nodes no longer load, is unpinned.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { openPinnedLink, type Program } from '../libbpf/index.js';
import { SyscallError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { attachPin, interfaceDir, isLegacyGeneration, linksDir, parseLegacyLinkPin, progsDir } from './pins.js';
import type { Hook } from './objects.js';

/** Which program each previous-layout pin held: that layout only ever attached the pod programs. */
const LEGACY_PROGRAMS: Record<'ingress' | 'egress', { program: string; hook: Hook }> = {
  ingress: { program: 'from_pod', hook: 'tc_ingress' },
  egress: { program: 'to_pod', hook: 'tc_egress' },
};

/** Maps the previous layout pinned that no object declares any more. */
const LEGACY_MAPS = ['pn_ifcount'];

/** What a migration did. */
export interface MigrationResult {
  /** Attachments moved to the new layout. */
  moved: number;
  /** Previous-layout pins whose attachment was already gone (reconcile re-attaches those). */
  stale: number;
  /** Previous-layout program generations removed. */
  generations: number;
  /** Previous-layout maps unpinned. */
  maps: string[];
}

/**
 * Migrates every previous-layout pin under `bpffs`, switching each live
 * attachment to `programs[<program name>]`. Runs after the pod object is
 * loaded and before anything else reads links/.
 */
export function migrateLegacyPins(bpffs: string, programs: ReadonlyMap<string, Program>, log: Logger): MigrationResult {
  const res: MigrationResult = { moved: 0, stale: 0, generations: 0, maps: [] };
  const links = linksDir(bpffs);
  for (const name of readdirSync(links)) {
    const old = join(links, name);
    if (statSync(old).isDirectory()) continue;
    const legacy = parseLegacyLinkPin(name);
    if (!legacy) continue;
    const { program, hook } = LEGACY_PROGRAMS[legacy.direction];
    const prog = programs.get(program);
    if (!prog) continue;
    let link;
    try {
      link = openPinnedLink(old);
    } catch (err) {
      if (!(err instanceof SyscallError && err.is('ENOENT'))) throw err;
      unlinkSync(old); // its clsact filter is gone
      res.stale++;
      continue;
    }
    try {
      if (link.programId !== prog.id) link.update(prog);
      mkdirSync(interfaceDir(bpffs, legacy.ifname), { recursive: true });
      // A second pin of the same link (tcx), or a new record of the same filter (clsact).
      link.pin(attachPin(bpffs, legacy.ifname, program, hook));
      unlinkSync(old);
      res.moved++;
    } finally {
      link.close();
    }
  }
  for (const d of readdirSync(progsDir(bpffs))) {
    if (!isLegacyGeneration(d)) continue;
    rmSync(join(progsDir(bpffs), d), { recursive: true, force: true });
    res.generations++;
  }
  for (const m of LEGACY_MAPS) {
    if (!existsSync(join(bpffs, m))) continue;
    rmSync(join(bpffs, m), { force: true });
    res.maps.push(m);
  }
  if (res.moved + res.stale + res.generations + res.maps.length > 0) log.info({ ...res }, 'migrated datapath pins from the previous layout');
  return res;
}
