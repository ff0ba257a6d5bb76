/**
 * One program's attachment to one interface hook, kept under its pin
 * (pins.ts): attach that repairs whatever an earlier attach, a crash or an
 * operator left there, detach that works whatever is already gone, and a
 * health check that says what is wrong.
 */
import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { PodnetError, SyscallError } from '../errors/index.js';
import {
  attachCgroup, attachTcLegacy, attachTcx, attachXdp, CgroupLink, detachTcLegacy, openPinnedLink, queryTcLegacy, type CgroupHook, type Link, type Program,
} from '../libbpf/index.js';
import { hookLabel, linkKindFor, tcDirection, type TcMode } from './attach-mode.js';
import { isCgroupHook, type ProgramDescriptor } from './objects.js';

/** tc priority/handle of podnet's clsact filters unless a program says otherwise. */
export const TC_PRIORITY = 1;
export const TC_HANDLE = 1;

const tcId = (p: ProgramDescriptor) => ({ priority: p.tcPriority ?? TC_PRIORITY, handle: TC_HANDLE });

/** What attach() did on one hook. */
export type AttachOutcome = 'attached' | 'updated' | 'unchanged';

/** Opens the attachment pinned at `pin`; undefined when there is no pin or it is stale (its filter or device is gone). */
function openLive(pin: string): Link | undefined {
  if (!existsSync(pin)) return undefined;
  try {
    return openPinnedLink(pin);
  } catch (err) {
    if (err instanceof SyscallError && err.is('ENOENT')) return undefined; // a clsact record whose filter is gone
    throw err;
  }
}

function removePin(pin: string): void {
  try {
    unlinkSync(pin);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ENOENT') throw new SyscallError(`remove stale pin ${pin}`, e.errno ?? 5, { cause: err });
  }
}

/** How long a tcx attach waits for a released link of the same program to leave the hook. */
const TCX_RELEASE_WAIT_MS = 1000;
const sleepSync = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };

/**
 * tcx refuses a program that is already on the hook (EEXIST). A link whose
 * last pin or fd just went away stays on the hook until the kernel has
 * released it (an RCU grace period later), so EEXIST right after losing a
 * pin is retried for a bounded time.
 */
function attachTcxWaiting(prog: Program, ifindex: number, direction: 'ingress' | 'egress', ifname: string): Link {
  const deadline = Date.now() + TCX_RELEASE_WAIT_MS;
  for (;;) {
    try {
      return attachTcx(prog, ifindex, direction, { ifname });
    } catch (err) {
      if (!(err instanceof SyscallError && err.is('EEXIST')) || Date.now() >= deadline) throw err;
      sleepSync(5);
    }
  }
}

function attachFresh(prog: Program, desc: ProgramDescriptor, ifindex: number, ifname: string, mode: TcMode): Link {
  switch (linkKindFor(desc.hook, mode)) {
    case 'xdp': return attachXdp(prog, ifindex, 'native', { ifname });
    case 'tcx': return attachTcxWaiting(prog, ifindex, tcDirection(desc.hook), ifname);
    // BPF_TC_F_REPLACE: a filter of ours already at this priority/handle
    // (its record lost, or left by an earlier agent) is replaced atomically
    // instead of failing with EEXIST.
    case 'tc': return attachTcLegacy(prog, ifindex, tcDirection(desc.hook), { ...tcId(desc), replace: true, ifname });
    case 'cgroup': throw new PodnetError('INVALID_ARGUMENT', `attach ${desc.name} to ${ifname}: it is a cgroup program, not a device program`);
  }
}

/**
 * Makes `prog` the program on `desc.hook` of the interface, pinned at
 * `pin`. A live attachment already pinned there is updated in place
 * (BPF_LINK_UPDATE, or a replacing clsact filter: no packet sees the hook
 * empty); a stale pin (device or filter gone, interface re-created) is
 * replaced by a fresh attachment.
 * @throws SyscallError / NotSupportedError naming the hook and interface.
 */
export function attachHook(pin: string, prog: Program, desc: ProgramDescriptor, ifindex: number, ifname: string, mode: TcMode): AttachOutcome {
  const live = openLive(pin);
  if (live) {
    try {
      if (live.ifindex === ifindex) {
        if (live.programId === prog.id) return 'unchanged';
        live.update(prog);
        return 'updated';
      }
      // Pinned for an interface of the same name that no longer exists (a
      // tcx link of a deleted device reports ifindex 0). A clsact record may
      // point at a device whose ifindex was reused: never touch its filter.
      if (live.kind !== 'tc') live.detach();
    } finally {
      live.close();
    }
  }
  removePin(pin);
  pinFresh(attachFresh(prog, desc, ifindex, ifname, mode), pin);
  return 'attached';
}

/**
 * Removes the attachment of `desc` from the interface and its pin; fine when
 * the pin, the filter or the device is already gone. Without a pin, a
 * clsact filter at podnet's priority/handle is removed too when the ifindex
 * is known (its record may be what went missing).
 */
export function detachHook(pin: string, desc: ProgramDescriptor, ifindex: number | undefined): void {
  const live = openLive(pin);
  if (live) {
    live.detach();
  } else {
    removePin(pin);
    if (ifindex !== undefined && desc.hook !== 'xdp' && !isCgroupHook(desc.hook)) detachTcLegacy(ifindex, tcDirection(desc.hook), tcId(desc));
  }
  removeDirIfEmpty(dirname(pin));
}

/** Removes an interface's pin directory once no pin is left in it. */
export function removeDirIfEmpty(dir: string): void {
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * What is wrong with one hook of an interface: nothing (undefined), or a
 * sentence such as "ingress: no program attached" or "egress: program 12
 * attached, want 34".
 */
export function hookProblem(pin: string, desc: ProgramDescriptor, wantProgramId: number, ifindex: number, mode: TcMode): string | undefined {
  const hook = hookLabel(desc.hook);
  let live: Link | undefined;
  try {
    live = openLive(pin);
  } catch (err) {
    return `${hook}: cannot read pin ${pin}: ${(err as Error).message}`;
  }
  if (!live) {
    const unpinned = desc.hook !== 'xdp' && !isCgroupHook(desc.hook) && linkKindFor(desc.hook, mode) === 'tc' ? queryTcLegacy(ifindex, tcDirection(desc.hook), tcId(desc)) : undefined;
    if (unpinned !== undefined) return `${hook}: program ${unpinned} attached without a pin`;
    return existsSync(pin) ? `${hook}: no program attached (stale pin)` : `${hook}: no program attached`;
  }
  try {
    if (live.ifindex !== ifindex) return `${hook}: pinned attachment is on ifindex ${live.ifindex}, want ${ifindex}`;
    if (live.programId !== wantProgramId) return `${hook}: program ${live.programId} attached, want ${wantProgramId}`;
    return undefined;
  } finally {
    live.close();
  }
}

/** Checks a descriptor's target before attaching it to a pod. */
export function requirePodProgram(desc: ProgramDescriptor): void {
  if (desc.target !== 'pod') throw new PodnetError('INVALID_ARGUMENT', `attach ${desc.name}: it is an ${desc.target} program, not a pod program`);
}

/** The cgroup a cgroup program goes on: its directory and id (the inode number). */
export interface CgroupTarget {
  path: string;
  id: bigint;
}

function cgroupHookOf(desc: ProgramDescriptor): CgroupHook {
  if (!isCgroupHook(desc.hook)) throw new PodnetError('INVALID_ARGUMENT', `attach ${desc.name} to a cgroup: it is a ${desc.hook} program`);
  return desc.hook.slice('cgroup_'.length) as CgroupHook;
}

/**
 * Makes `prog` the program of `desc.hook` on the cgroup, through a link
 * pinned at `pin`. A live link of ours already on that cgroup is updated in
 * place (BPF_LINK_UPDATE: no connect() sees the hook empty); a link pinned
 * for another cgroup (the root moved) is detached and a fresh one made.
 * @throws SyscallError / NotSupportedError naming the hook and cgroup.
 */
export function attachCgroupHook(pin: string, prog: Program, desc: ProgramDescriptor, cgroup: CgroupTarget): AttachOutcome {
  const hook = cgroupHookOf(desc);
  const live = openLive(pin);
  if (live) {
    try {
      if (live instanceof CgroupLink && live.cgroupId === cgroup.id) {
        if (live.programId === prog.id) return 'unchanged';
        live.update(prog);
        return 'updated';
      }
      live.detach();
    } finally {
      live.close();
    }
  }
  removePin(pin);
  pinFresh(attachCgroup(prog, cgroup.path, hook), pin);
  return 'attached';
}

/** Removes a cgroup link and its pin; fine when either is gone already. */
export function detachCgroupHook(pin: string): void {
  const live = openLive(pin);
  if (live) live.detach();
  else removePin(pin);
}

/**
 * What is wrong with one cgroup hook: nothing (undefined), or a sentence
 * such as "cgroup/connect4: no program attached".
 */
export function cgroupHookProblem(pin: string, desc: ProgramDescriptor, wantProgramId: number, cgroup: CgroupTarget): string | undefined {
  const hook = hookLabel(desc.hook);
  let live: Link | undefined;
  try {
    live = openLive(pin);
  } catch (err) {
    return `${hook}: cannot read pin ${pin}: ${(err as Error).message}`;
  }
  if (!live) return `${hook}: no program attached`;
  try {
    if (!(live instanceof CgroupLink) || live.cgroupId !== cgroup.id) return `${hook}: pinned link is not on cgroup ${cgroup.path} (id ${cgroup.id})`;
    if (live.programId !== wantProgramId) return `${hook}: program ${live.programId} attached, want ${wantProgramId}`;
    return undefined;
  } finally {
    live.close();
  }
}

/** Pins a link just made and lets go of its fd; a link that cannot be pinned is detached, so nothing runs unpinned. */
function pinFresh(link: Link, pin: string): void {
  try {
    link.pin(pin);
  } catch (err) {
    link.detach();
    throw err;
  }
  link.close();
}
