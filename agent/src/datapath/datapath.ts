/**
 * The node's datapath: compiles and loads bpf/pod.bpf.c once per node with
 * the node's constants, keeps every map, program and link pinned under the
 * bpffs directory, and attaches the shared pod programs to host veths.
 *
 * Pins (<bpffs> is e.g. /sys/fs/bpf/podnet):
 *   <bpffs>/pn_*                     maps (libbpf pin-by-name; shared by every object and agent generation)
 *   <bpffs>/progs/<id>/{from_pod,to_pod}  programs; <id> hashes the object and its constants
 *   <bpffs>/links/<hostif>_{ingress,egress}  tcx links, or for clsact filters a record of where they are
 *
 * A restarted agent whose object and constants are unchanged re-opens the
 * pinned programs and touches nothing. A changed one loads the new programs
 * and swaps them into every existing link atomically (BPF_LINK_UPDATE), so
 * pod traffic never stops.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  BpfMap, BpfObject, Program, attachTcLegacy, attachTcx, openPinnedLink, probeTcx, updateLink, type Link,
} from '../libbpf/index.js';
import { PodnetError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Pool } from '../ipam/index.js';
import type { PodAttacher } from '../endpoints/index.js';
import { compileBpf } from './compile.js';
import { COUNTERS_MAP, ENDPOINTS_MAP, EVENTS_MAP, IFCOUNT_MAP, IPAM_MAP } from './maps/index.js';

const BPF_FS_MAGIC = 0xcafe4a11;
/** tc priority/handle of podnet's clsact filters (clsact mode only). */
const TC_PRIORITY = 1;
const TC_HANDLE = 1;

/** Options of {@link Datapath.start}. */
export interface DatapathOptions {
  bpffs: string;
  cacheDir: string;
  bpfDir?: string;
  pool: Pool;
  attachMode: 'auto' | 'tcx' | 'clsact';
  log: Logger;
}

/** The pinned maps the agent uses. */
export interface DatapathMaps {
  endpoints: BpfMap;
  ipam: BpfMap;
  counters: BpfMap;
  ifcount: BpfMap;
  events: BpfMap;
}

/** Mounts bpffs at /sys/fs/bpf when nothing is mounted there, and creates `dir`. */
export function ensureBpffs(dir: string): void {
  const root = '/sys/fs/bpf';
  if (dir.startsWith(`${root}/`) && statfsSync(root).type !== BPF_FS_MAGIC) {
    // A DaemonSet mounts the host's bpffs; on a bare machine nobody may have.
    execFileSync('mount', ['-t', 'bpf', 'bpf', root]);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (statfsSync(dir).type !== BPF_FS_MAGIC) {
    throw new PodnetError('NO_BPFFS', `use ${dir} for pins: it is not on a bpf filesystem (mount -t bpf bpf <dir>)`);
  }
}

/** The loaded datapath of this node. */
export class Datapath implements PodAttacher {
  private constructor(
    readonly mode: 'tcx' | 'clsact',
    readonly maps: DatapathMaps,
    private readonly fromPod: Program,
    private readonly toPod: Program,
    private readonly linkDir: string,
    private readonly log: Logger,
  ) {}

  /** Compiles if needed, loads or re-opens the programs, opens the pinned maps. */
  static async start(o: DatapathOptions): Promise<Datapath> {
    ensureBpffs(o.bpffs);
    const mode = o.attachMode === 'auto' ? (probeTcx() ? 'tcx' : 'clsact') : o.attachMode;
    if (mode === 'tcx' && !probeTcx()) throw new PodnetError('NOT_SUPPORTED', 'attach mode tcx: not supported by this kernel (needs Linux >= 6.6); use --attach-mode clsact or auto');
    const compiled = await compileBpf('pod', { cacheDir: o.cacheDir, ...(o.bpfDir ? { srcDir: o.bpfDir } : {}) });

    const cidr = Buffer.alloc(4);
    cidr.writeUInt32BE(o.pool.network);
    const mask = Buffer.alloc(4);
    mask.writeUInt32BE(o.pool.prefixLen === 0 ? 0 : (0xffffffff << (32 - o.pool.prefixLen)) >>> 0);
    const constants = { pn_pod_cidr_addr: new Uint8Array(cidr), pn_pod_cidr_mask: new Uint8Array(mask) };
    const id = createHash('sha256').update(compiled.hash).update(cidr).update(mask).digest('hex').slice(0, 16);

    const progRoot = join(o.bpffs, 'progs');
    const progDir = join(progRoot, id);
    const linkDir = join(o.bpffs, 'links');
    mkdirSync(linkDir, { recursive: true });
    let fromPod: Program | undefined;
    let toPod: Program | undefined;
    const opened: Array<{ close(): void }> = [];
    try {
      if (existsSync(join(progDir, 'from_pod')) && existsSync(join(progDir, 'to_pod'))) {
        fromPod = Program.openPinned(join(progDir, 'from_pod'));
        opened.push(fromPod);
        toPod = Program.openPinned(join(progDir, 'to_pod'));
        opened.push(toPod);
        o.log.info({ id, mode }, 'adopted pinned datapath programs');
      } else {
        using obj = BpfObject.open(compiled.path, { pinRoot: o.bpffs });
        obj.setConstants(constants);
        obj.load();
        fromPod = obj.program('from_pod').clone();
        opened.push(fromPod);
        toPod = obj.program('to_pod').clone();
        opened.push(toPod);
        mkdirSync(progDir, { recursive: true });
        fromPod.pin(join(progDir, 'from_pod'));
        toPod.pin(join(progDir, 'to_pod'));
        const swapped = Datapath.swapPrograms(linkDir, fromPod, toPod);
        o.log.info({ id, mode, cached: compiled.cached, linksUpdated: swapped }, 'loaded datapath programs');
      }
      // Older program generations: no link uses them any more.
      for (const old of readdirSync(progRoot)) if (old !== id) rmSync(join(progRoot, old), { recursive: true, force: true });
      const maps: DatapathMaps = {
        endpoints: BpfMap.openPinned(join(o.bpffs, ENDPOINTS_MAP)),
        ipam: BpfMap.openPinned(join(o.bpffs, IPAM_MAP)),
        counters: BpfMap.openPinned(join(o.bpffs, COUNTERS_MAP)),
        ifcount: BpfMap.openPinned(join(o.bpffs, IFCOUNT_MAP)),
        events: BpfMap.openPinned(join(o.bpffs, EVENTS_MAP)),
      };
      return new Datapath(mode, maps, fromPod, toPod, linkDir, o.log);
    } catch (err) {
      for (const c of opened.reverse()) c.close();
      throw err;
    }
  }

  /** Points every pinned attachment at the new programs; returns how many were updated. */
  private static swapPrograms(linkDir: string, fromPod: Program, toPod: Program): number {
    let n = 0;
    for (const name of readdirSync(linkDir)) {
      using link = openPinnedLink(join(linkDir, name));
      updateLink(link, name.endsWith('_ingress') ? fromPod : toPod);
      n++;
    }
    return n;
  }

  private linkPins(hostIfName: string): { ingress: string; egress: string } {
    // bpffs refuses names with a dot (EPERM): it reserves them for its own files.
    return { ingress: join(this.linkDir, `${hostIfName}_ingress`), egress: join(this.linkDir, `${hostIfName}_egress`) };
  }

  private attachOne(prog: Program, ifindex: number, dir: 'ingress' | 'egress'): Link {
    return this.mode === 'tcx'
      ? attachTcx(prog, ifindex, dir)
      : attachTcLegacy(prog, ifindex, dir, { priority: TC_PRIORITY, handle: TC_HANDLE });
  }

  /** Attaches from_pod (ingress) and to_pod (egress) to a host veth and pins both; all or nothing. */
  attach(hostIfName: string, ifindex: number): void {
    const pins = this.linkPins(hostIfName);
    const ing = this.attachOne(this.fromPod, ifindex, 'ingress');
    try {
      const eg = this.attachOne(this.toPod, ifindex, 'egress');
      try {
        ing.pin(pins.ingress);
        eg.pin(pins.egress);
      } catch (err) {
        eg.detach();
        throw err;
      }
      eg.close();
    } catch (err) {
      ing.detach();
      throw err;
    }
    ing.close();
  }

  /** Detaches both programs and removes their pins; anything already gone (veth deleted) is fine. */
  detach(hostIfName: string, _ifindex: number | undefined): void {
    for (const pin of Object.values(this.linkPins(hostIfName))) {
      if (!existsSync(pin)) continue;
      let link: Link;
      try {
        link = openPinnedLink(pin);
      } catch {
        // A clsact filter whose device is gone cannot be confirmed any more:
        // nothing is attached, only its record is left.
        rmSync(pin, { force: true });
        continue;
      }
      link.detach();
    }
  }

  /** True when this instance has link pins for the interface (it attached there). */
  owns(hostIfName: string): boolean {
    const pins = this.linkPins(hostIfName);
    return existsSync(pins.ingress) || existsSync(pins.egress);
  }

  /** True when both programs of this generation are attached to the interface. */
  isAttached(hostIfName: string, ifindex: number): boolean {
    const pins = this.linkPins(hostIfName);
    const want = [[pins.ingress, this.fromPod.id], [pins.egress, this.toPod.id]] as const;
    return want.every(([p, progId]) => {
      if (!existsSync(p)) return false;
      try {
        using link = openPinnedLink(p);
        return link.ifindex === ifindex && link.programId === progId;
      } catch {
        return false;
      }
    });
  }

  /** Closes this process's fds; pins keep the datapath running. */
  close(): void {
    for (const m of Object.values(this.maps)) m.close();
    this.fromPod.close();
    this.toPod.close();
  }
}
