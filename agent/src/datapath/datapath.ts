/**
 * The node's datapath: loads every BPF object of the node (objects.ts) once
 * with the node's constants, keeps programs and attachments pinned under the
 * bpffs directory (layout in pins.ts), and attaches the pod programs to
 * host veths. The maps belong to agent/src/maps; the datapath opens them
 * once its objects have created them.
 *
 * A restarted agent whose objects and constants are unchanged re-opens the
 * pinned programs. A changed object is loaded as a new generation and
 * swapped into every attachment of its programs atomically (BPF_LINK_UPDATE,
 * or a replacing clsact filter), so pod traffic never stops; then the old
 * generation is unpinned. Pins of the previous layout are migrated the same
 * way on the first start.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { netnsCookie, openPinnedLink, type Program } from '../libbpf/index.js';
import { PodnetError, SyscallError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Pool } from '../ipam/index.js';
import type { PodAttacher } from '../endpoints/index.js';
import { createAgentMaps, openNodeMaps, type NodeMaps, type ServiceMapSizes } from '../maps/index.js';
import { resolveTcMode, type AttachModeOption, type TcMode } from './attach-mode.js';
import type { HostRouting } from './host-routing.js';
import {
  attachCgroupHook, attachHook, cgroupHookProblem, detachCgroupHook, detachHook, hookProblem, removeDirIfEmpty, requirePodProgram, type AttachOutcome, type CgroupTarget,
} from './attachments.js';
import { cgroupId } from '../libbpf/index.js';
import { cgroup2Root } from './cgroup.js';
import { loadObject, type LoadedObject, type LoadOptions } from './loader.js';
import { migrateLegacyPins } from './migrate.js';
import { NODE_OBJECTS, type ConntrackTimeouts, type NodeConstants, type ObjectDescriptor, type ProgramDescriptor } from './objects.js';
import { attachPin, cgroupLinksDir, cgroupPin, interfaceDir, linksDir, parseAttachPin, progsDir } from './pins.js';
import { SocketDestroyer, type DestroyedSocket, type SocketTarget } from './sock-destroy.js';

const BPF_FS_MAGIC = 0xcafe4a11;

/** Options of {@link Datapath.start}. */
export interface DatapathOptions {
  bpffs: string;
  cacheDir: string;
  bpfDir?: string;
  pool: Pool;
  attachMode: AttachModeOption;
  /** How traffic between pods of this node travels (resolveHostRouting); default bpf. */
  hostRouting?: HostRouting;
  log: Logger;
  /** The objects to load (default: every node object with a program for a target this node has: pods always, the uplink when `uplink` is set). */
  objects?: readonly ObjectDescriptor[];
  /** max_entries of the resizable service maps (default DEFAULT_SERVICE_MAP_SIZES). */
  serviceMapSizes?: ServiceMapSizes;
  /** Conntrack idle timeouts of Service connections (default DEFAULT_CT_TIMEOUTS). */
  ctTimeouts?: ConntrackTimeouts;
  /** The uplink (--uplink): from_netdev goes on its tc ingress. */
  uplink?: string;
  /**
   * Attach the cgroup programs (socket load balancing for the host's own
   * processes) at the cgroup v2 root; default true. False detaches any left
   * from an earlier start: a node whose Service handling is off.
   */
  socketLb?: boolean;
  /** The cgroup v2 directory to attach at; default the hierarchy's root from /proc/self/mountinfo. */
  cgroupRoot?: string;
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
    readonly mode: TcMode,
    /** How traffic between pods of this node travels. */
    readonly hostRouting: HostRouting,
    readonly maps: NodeMaps,
    private readonly objects: LoadedObject[],
    private readonly bpffs: string,
    private readonly log: Logger,
    /** How the objects were loaded, for one loaded later (the uplink's). */
    private readonly load: Omit<LoadOptions, 'bpffs'>,
    /** Where the cgroup programs are attached; undefined with socketLb off. */
    readonly cgroup: CgroupTarget | undefined,
    private readonly destroyer: SocketDestroyer | undefined,
    private readonly destroyerError: Error | undefined,
  ) {}

  /** Creates the agent's maps, loads or adopts every object, migrates and swaps attachments, opens the maps. */
  static async start(o: DatapathOptions): Promise<Datapath> {
    ensureBpffs(o.bpffs);
    const mode = resolveTcMode(o.attachMode);
    const hostRouting = o.hostRouting ?? 'bpf';
    mkdirSync(linksDir(o.bpffs), { recursive: true });
    mkdirSync(progsDir(o.bpffs), { recursive: true });
    const created = createAgentMaps(o.bpffs);
    if (created.length > 0) o.log.info({ maps: created }, 'created agent maps');
    const loaded: LoadedObject[] = [];
    const node: NodeConstants = {
      pool: o.pool, hostNetnsCookie: netnsCookie(), hostRouting,
      ...(o.serviceMapSizes ? { serviceMapSizes: o.serviceMapSizes } : {}), ...(o.ctTimeouts ? { ctTimeouts: o.ctTimeouts } : {}),
    };
    let destroyer: SocketDestroyer | undefined;
    try {
      // The socket object always loads (it declares pn_sock_rev); socketLb decides whether it is attached.
      const targets = new Set<ProgramDescriptor['target']>(o.uplink !== undefined ? ['pod', 'uplink', 'cgroup'] : ['pod', 'cgroup']);
      for (const desc of o.objects ?? NODE_OBJECTS.filter((d) => d.programs.some((p) => targets.has(p.target)))) {
        loaded.push(await loadObject(desc, { bpffs: o.bpffs, cacheDir: o.cacheDir, node, ...(o.bpfDir ? { bpfDir: o.bpfDir } : {}) }));
      }
      const programs = new Map<string, { object: string; prog: Program }>();
      for (const obj of loaded) for (const [name, prog] of obj.programs()) programs.set(name, { object: obj.desc.name, prog });
      migrateLegacyPins(o.bpffs, new Map([...programs].map(([n, p]) => [n, p.prog])), o.log);
      const swapped = Datapath.swapAttachments(o.bpffs, programs);
      // Cgroup links move to the new generation too before the old one goes.
      const socketLb = o.socketLb ?? true;
      const cgroup = Datapath.attachCgroupPrograms(o.bpffs, socketLb ? loaded : [], o.cgroupRoot, o.log);
      for (const obj of loaded) {
        const retired = obj.retireOtherGenerations(o.bpffs);
        o.log.info({ object: obj.desc.name, generation: obj.generation, mode, hostRouting, loaded: obj.loaded, cached: obj.compileCached, linksUpdated: swapped.get(obj.desc.name) ?? 0, retired }, obj.loaded ? 'loaded datapath object' : 'adopted pinned datapath object');
      }
      let destroyerError: Error | undefined;
      if (cgroup) {
        try {
          destroyer = await SocketDestroyer.open({ cacheDir: o.cacheDir, ...(o.bpfDir ? { bpfDir: o.bpfDir } : {}) });
        } catch (err) {
          // Socket load balancing works without it; only stale connected sockets stay.
          destroyerError = err as Error;
          o.log.warn({ err }, 'socket destroyer unavailable: host sockets connected to a removed backend stay until the application closes them');
        }
      }
      const maps = openNodeMaps(o.bpffs, o.serviceMapSizes);
      const dp = new Datapath(mode, hostRouting, maps, loaded, o.bpffs, o.log, { cacheDir: o.cacheDir, node, ...(o.bpfDir ? { bpfDir: o.bpfDir } : {}) }, cgroup, destroyer, destroyerError);
      if (o.uplink !== undefined) {
        try {
          await dp.attachUplink(o.uplink);
        } catch (err) {
          for (const m of Object.values(maps)) m.close();
          throw err;
        }
      }
      return dp;
    } catch (err) {
      destroyer?.close();
      for (const obj of loaded.reverse()) obj.close();
      throw err;
    }
  }

  /**
   * Attaches every cgroup program of the loaded objects at the cgroup v2
   * root, each through a link pinned under cgroup/ (an existing link is
   * updated in place, so an agent restart or upgrade never leaves connect()
   * unhooked), and detaches pinned cgroup links of programs not in that set.
   * Returns where they went; undefined when there are none.
   */
  private static attachCgroupPrograms(bpffs: string, loaded: readonly LoadedObject[], root: string | undefined, log: Logger): CgroupTarget | undefined {
    const progs = loaded.flatMap((obj) => obj.desc.programs.filter((d) => d.target === 'cgroup').map((desc) => ({ desc, prog: obj.program(desc.name) })));
    const keep = new Set(progs.map(({ desc }) => cgroupPin(bpffs, desc.name, desc.hook)));
    const dir = cgroupLinksDir(bpffs);
    if (existsSync(dir)) {
      for (const file of readdirSync(dir)) {
        const pin = join(dir, file);
        if (keep.has(pin)) continue;
        detachCgroupHook(pin);
        log.info({ pin }, 'detached cgroup program');
      }
    }
    if (progs.length === 0) {
      removeDirIfEmpty(dir);
      return undefined;
    }
    const path = root ?? cgroup2Root();
    const cgroup = { path, id: cgroupId(path) };
    mkdirSync(dir, { recursive: true });
    for (const { desc, prog } of progs) {
      const outcome = attachCgroupHook(cgroupPin(bpffs, desc.name, desc.hook), prog, desc, cgroup);
      if (outcome !== 'unchanged') log.info({ program: desc.name, hook: desc.hook, cgroup: path, outcome }, 'cgroup program attached');
    }
    return cgroup;
  }

  /**
   * Destroys the host's sockets connected to removed backends (connected
   * UDP sockets above all: the application gets an error and reconnects to
   * a live backend). Call after the backends are out of every group.
   * @throws NotSupportedError when the kernel cannot destroy sockets (Linux < 6.5) or socket load balancing is off.
   */
  destroySockets(targets: readonly SocketTarget[]): DestroyedSocket[] {
    if (!this.destroyer) {
      if (this.destroyerError) throw this.destroyerError;
      throw new PodnetError('NOT_SUPPORTED', 'destroy sockets: socket load balancing is off on this node');
    }
    return this.destroyer.destroy(targets);
  }

  /** destroySockets() for one backend {addr, port, proto (IP_PROTO.UDP / TCP)}. */
  destroySocketsTo(addr: string, port: number, proto: number): DestroyedSocket[] {
    return this.destroySockets([{ addr, port, proto }]);
  }

  /**
   * What is wrong with the cgroup programs: one sentence per hook, e.g.
   * "cgroup/connect4: no program attached". Empty when all are attached (or
   * socket load balancing is off).
   */
  cgroupHealth(): string[] {
    if (!this.cgroup) return [];
    const problems: string[] = [];
    for (const obj of this.objects) {
      for (const desc of obj.desc.programs) {
        if (desc.target !== 'cgroup') continue;
        const p = cgroupHookProblem(cgroupPin(this.bpffs, desc.name, desc.hook), desc, obj.program(desc.name).id, this.cgroup);
        if (p) problems.push(p);
      }
    }
    return problems;
  }

  /**
   * Points every pinned attachment at the current program of its name
   * (the name is in the pin); pins of programs no loaded object has are
   * left alone. Returns the number updated per object.
   */
  private static swapAttachments(bpffs: string, programs: ReadonlyMap<string, { object: string; prog: Program }>): Map<string, number> {
    const counts = new Map<string, number>();
    for (const ifname of readdirSync(linksDir(bpffs))) {
      const dir = interfaceDir(bpffs, ifname);
      if (!statSync(dir).isDirectory()) continue;
      for (const file of readdirSync(dir)) {
        const parsed = parseAttachPin(file);
        const want = parsed && programs.get(parsed.program);
        if (!want) continue;
        const { prog, object } = want;
        let link;
        try {
          link = openPinnedLink(join(dir, file));
        } catch (err) {
          if (err instanceof SyscallError && err.is('ENOENT')) continue; // a stale clsact record: reconcile repairs it
          throw err;
        }
        try {
          if (link.programId === prog.id) continue;
          link.update(prog);
          counts.set(object, (counts.get(object) ?? 0) + 1);
        } finally {
          link.close();
        }
      }
    }
    return counts;
  }

  private podPrograms(): Array<{ desc: ProgramDescriptor; prog: Program }> {
    return this.targetPrograms('pod');
  }

  private targetPrograms(target: ProgramDescriptor['target']): Array<{ desc: ProgramDescriptor; prog: Program }> {
    const out: Array<{ desc: ProgramDescriptor; prog: Program }> = [];
    for (const obj of this.objects) {
      for (const desc of obj.desc.programs) if (desc.target === target) out.push({ desc, prog: obj.program(desc.name) });
    }
    return out;
  }

  /**
   * Attaches every uplink program (from_netdev on tc ingress, to_netdev on
   * tc egress) to the
   * node's uplink, in this network namespace, loading its object first
   * when this start did not, and pins the attachments
   * under links/<ifname>/ like a pod's; an existing attachment is updated
   * in place. Returns the programs attached or updated.
   * @throws PodnetError NOT_FOUND when the interface does not exist.
   */
  async attachUplink(ifname: string): Promise<string[]> {
    let ifindex: number;
    try {
      ifindex = Number(readFileSync(join('/sys/class/net', ifname, 'ifindex'), 'utf8').trim());
    } catch (err) {
      throw new PodnetError('NOT_FOUND', `attach the uplink programs to ${ifname}: no such interface`, { cause: err });
    }
    // A node started without an uplink has not loaded the uplink's objects.
    const fresh: LoadedObject[] = [];
    for (const desc of NODE_OBJECTS) {
      if (!desc.programs.some((p) => p.target === 'uplink') || this.objects.some((l) => l.desc.name === desc.name)) continue;
      const obj = await loadObject(desc, { bpffs: this.bpffs, ...this.load });
      this.objects.push(obj);
      fresh.push(obj);
      this.log.info({ object: desc.name, generation: obj.generation, loaded: obj.loaded }, obj.loaded ? 'loaded datapath object' : 'adopted pinned datapath object');
    }
    mkdirSync(interfaceDir(this.bpffs, ifname), { recursive: true });
    const done: string[] = [];
    for (const { desc, prog } of this.targetPrograms('uplink')) {
      const outcome = attachHook(attachPin(this.bpffs, ifname, desc.name, desc.hook), prog, desc, ifindex, ifname, this.mode);
      if (outcome !== 'unchanged') done.push(desc.name);
      this.log.info({ ifname, ifindex, program: desc.name, outcome }, 'uplink program attached');
    }
    // Only once the attachment runs the new generation.
    for (const obj of fresh) obj.retireOtherGenerations(this.bpffs);
    return done;
  }

  /** The program loaded under a name (for tests and status). */
  program(name: string): Program {
    for (const obj of this.objects) if (obj.desc.programs.some((p) => p.name === name)) return obj.program(name);
    throw new PodnetError('NOT_FOUND', `program ${name}: no loaded object has it`);
  }

  /**
   * Detaches the uplink programs from `ifname` and removes their pins; a
   * hook already gone is fine.
   * @throws AggregateError of every hook that failed, after trying all of them.
   */
  detachUplink(ifname: string): void {
    let ifindex: number | undefined;
    try {
      ifindex = Number(readFileSync(join('/sys/class/net', ifname, 'ifindex'), 'utf8').trim());
    } catch {
      ifindex = undefined; // the device is gone, and its hooks with it
    }
    const errors: unknown[] = [];
    for (const { desc } of this.targetPrograms('uplink')) {
      try {
        detachHook(attachPin(this.bpffs, ifname, desc.name, desc.hook), desc, ifindex);
      } catch (err) {
        errors.push(err);
      }
    }
    removeDirIfEmpty(interfaceDir(this.bpffs, ifname));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `detach uplink programs from ${ifname}`);
  }

  /**
   * Attaches every pod program (from_pod on tc ingress, to_pod on tc
   * egress) to a host veth and pins each attachment. Whatever is already
   * there is repaired: an attachment of ours is updated in place, a stale
   * pin or record is replaced. On failure the hooks this call attached
   * fresh are detached again.
   */
  attach(hostIfName: string, ifindex: number): void {
    mkdirSync(interfaceDir(this.bpffs, hostIfName), { recursive: true });
    const fresh: ProgramDescriptor[] = [];
    try {
      for (const { desc, prog } of this.podPrograms()) {
        requirePodProgram(desc);
        const outcome: AttachOutcome = attachHook(attachPin(this.bpffs, hostIfName, desc.name, desc.hook), prog, desc, ifindex, hostIfName, this.mode);
        if (outcome === 'attached') fresh.push(desc);
        if (outcome === 'updated') this.log.info({ ifname: hostIfName, program: desc.name }, 'updated an existing attachment');
      }
    } catch (err) {
      for (const desc of fresh.reverse()) {
        try {
          detachHook(attachPin(this.bpffs, hostIfName, desc.name, desc.hook), desc, ifindex);
        } catch (undoErr) {
          this.log.error({ err: undoErr, ifname: hostIfName, program: desc.name }, 'undo attach failed');
        }
      }
      removeDirIfEmpty(interfaceDir(this.bpffs, hostIfName));
      throw err;
    }
  }

  /**
   * Detaches every pod program and removes the pins; each hook on its own,
   * so one already gone (veth deleted, filter removed by hand) never stops
   * the other.
   * @throws AggregateError of every hook that failed, after trying all of them.
   */
  detach(hostIfName: string, ifindex: number | undefined): void {
    const errors: unknown[] = [];
    const dir = interfaceDir(this.bpffs, hostIfName);
    const known = new Set<string>();
    for (const { desc } of this.podPrograms()) {
      const pin = attachPin(this.bpffs, hostIfName, desc.name, desc.hook);
      known.add(pin);
      try {
        detachHook(pin, desc, ifindex);
      } catch (err) {
        errors.push(err);
      }
    }
    // Pins of programs this build no longer has go too.
    if (existsSync(dir)) {
      for (const file of readdirSync(dir)) {
        const pin = join(dir, file);
        if (known.has(pin)) continue;
        try {
          openPinnedLink(pin).detach();
        } catch {
          rmSync(pin, { force: true }); // its attachment is gone already
        }
      }
      removeDirIfEmpty(dir);
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `detach datapath programs from ${hostIfName}`);
  }

  /** True when this instance has attachment pins for the interface (it attached there). */
  owns(hostIfName: string): boolean {
    const dir = interfaceDir(this.bpffs, hostIfName);
    return existsSync(dir) && readdirSync(dir).length > 0;
  }

  /**
   * What is wrong with the datapath on one host veth: one sentence per
   * hook, e.g. "ingress: no program attached", "egress: program 12
   * attached, want 34". Empty when every pod program of this generation is
   * attached there.
   */
  health(hostIfName: string, ifindex: number): string[] {
    const problems: string[] = [];
    for (const { desc, prog } of this.podPrograms()) {
      const p = hookProblem(attachPin(this.bpffs, hostIfName, desc.name, desc.hook), desc, prog.id, ifindex, this.mode);
      if (p) problems.push(p);
    }
    return problems;
  }

  /** Closes this process's fds; pins keep the datapath running. */
  close(): void {
    this.destroyer?.close();
    for (const m of Object.values(this.maps)) m.close();
    for (const obj of this.objects) obj.close();
  }
}
