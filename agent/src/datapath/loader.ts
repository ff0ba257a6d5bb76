/**
 * One loader per BPF object: compile (cached), then adopt the pinned
 * generation when its hash matches, or load a new one and pin its programs.
 * Swapping attachments to a new generation and retiring old generations is
 * the Datapath's (it knows the attachments); this module only hands over
 * open programs, all or none.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, Program, type ConstantValue } from '../libbpf/index.js';
import { PodnetError } from '../errors/index.js';
import { openPinnedMap, sizedDescriptor } from '../maps/index.js';
import { compileBpf } from './compile.js';
import { generationDir, generationObject, progsDir } from './pins.js';
import type { NodeConstants, ObjectDescriptor } from './objects.js';

/** Options of {@link loadObject}. */
export interface LoadOptions {
  bpffs: string;
  cacheDir: string;
  bpfDir?: string;
  node: NodeConstants;
}

/** An object's programs as loaded or adopted. */
export class LoadedObject implements Disposable {
  private constructor(
    readonly desc: ObjectDescriptor,
    readonly generation: string,
    /** True when this start loaded the programs; false when it adopted pinned ones. */
    readonly loaded: boolean,
    readonly compileCached: boolean,
    private readonly progs: ReadonlyMap<string, Program>,
  ) {}

  /** @internal */
  static make(desc: ObjectDescriptor, generation: string, loaded: boolean, cached: boolean, progs: Map<string, Program>): LoadedObject {
    return new LoadedObject(desc, generation, loaded, cached, progs);
  }

  /** A program of this object. Throws PodnetError ENOENT for a name the object does not have. */
  program(name: string): Program {
    const p = this.progs.get(name);
    if (!p) throw new PodnetError('NOT_FOUND', `program ${name}: not in object ${this.desc.name}`);
    return p;
  }

  /** Every program by name. */
  programs(): ReadonlyMap<string, Program> {
    return this.progs;
  }

  /**
   * Unpins every other generation of this object; the caller has moved
   * every attachment off them first. Returns the directories removed.
   */
  retireOtherGenerations(bpffs: string): string[] {
    const removed: string[] = [];
    for (const d of readdirSync(progsDir(bpffs))) {
      if (generationObject(d) !== this.desc.name || d === `${this.desc.name}-${this.generation}`) continue;
      rmSync(join(progsDir(bpffs), d), { recursive: true, force: true });
      removed.push(d);
    }
    return removed;
  }

  /** Closes this process's program fds; the pins keep them loaded. */
  close(): void {
    for (const p of this.progs.values()) p.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The generation id: the compiled object's hash and its constants. */
export function generationId(objectHash: string, constants: Record<string, ConstantValue>): string {
  const h = createHash('sha256').update(objectHash);
  for (const [k, v] of Object.entries(constants).sort(([a], [b]) => a.localeCompare(b))) {
    h.update(`\0${k}=`).update(v instanceof Uint8Array ? Buffer.from(v).toString('hex') : String(v));
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * Compiles the object if needed, then adopts its pinned generation or loads
 * and pins a new one (maps pinned by name under `bpffs`, shared with every
 * other object and generation). Closes everything it opened on failure.
 * @throws PodnetError ECOMPILE, PodnetError MAP_MISMATCH (a pinned map of another size or layout), VerifierError, SyscallError.
 */
export async function loadObject(desc: ObjectDescriptor, o: LoadOptions): Promise<LoadedObject> {
  const compiled = await compileBpf(desc.source, { cacheDir: o.cacheDir, ...(o.bpfDir ? { srcDir: o.bpfDir } : {}) });
  const constants = desc.constants(o.node);
  const generation = generationId(compiled.hash, constants);
  const dir = generationDir(o.bpffs, desc.name, generation);
  const progs = new Map<string, Program>();
  // A pinned map of another size than configured: libbpf would refuse to
  // reuse it with a bare EINVAL, and adopted programs would keep using it.
  // Say which map and what to do instead.
  for (const m of desc.maps) {
    if (m.pinned && existsSync(join(o.bpffs, m.name))) openPinnedMap(o.bpffs, m, o.node.serviceMapSizes).close();
  }
  try {
    if (desc.programs.every((p) => existsSync(join(dir, p.name)))) {
      for (const p of desc.programs) progs.set(p.name, Program.openPinned(join(dir, p.name)));
      return LoadedObject.make(desc, generation, false, compiled.cached, progs);
    }
    using obj = BpfObject.open(compiled.path, { pinRoot: o.bpffs });
    obj.setConstants(constants);
    for (const m of desc.maps) {
      const sized = sizedDescriptor(m, o.node.serviceMapSizes);
      if (sized !== m) obj.setMapMaxEntries(m.name, sized.maxEntries);
    }
    obj.load();
    for (const p of desc.programs) progs.set(p.name, obj.program(p.name).clone());
    // A start that died half-way through pinning left a partial directory.
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const [name, p] of progs) p.pin(join(dir, name));
    return LoadedObject.make(desc, generation, true, compiled.cached, progs);
  } catch (err) {
    for (const p of progs.values()) p.close();
    throw err;
  }
}
