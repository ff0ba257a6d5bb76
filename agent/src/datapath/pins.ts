/**
 * The datapath's bpffs layout (<bpffs> is e.g. /sys/fs/bpf/podnet):
 *
 *   <bpffs>/pn_*                                   maps (agent/src/maps)
 *   <bpffs>/progs/<object>-<generation>/<program>  programs; <generation> hashes the object and its constants
 *   <bpffs>/links/<ifname>/<program>-<hook>        one attachment: a tcx/XDP link, or the record of a clsact filter
 *   <bpffs>/cgroup/<program>-<hook>                one cgroup link at the cgroup v2 root (hook cgroup_connect4, ...)
 *
 * An attachment pin names its program and hook, so an upgrade finds the
 * program for every pin by name whatever object it belongs to. bpffs
 * refuses names with a dot (it reserves them), and C names have no dash,
 * so "<program>-<hook>" splits unambiguously.
 *
 * The layout before this one (migrated on start, see migrate.ts):
 *   <bpffs>/progs/<16 hex>/{from_pod,to_pod}
 *   <bpffs>/links/<ifname>_{ingress,egress}
 */
import { join } from 'node:path';
import { HOOKS, type Hook } from './objects.js';

/** Directory of every attachment pin. */
export const linksDir = (bpffs: string): string => join(bpffs, 'links');
/** Directory of every program generation. */
export const progsDir = (bpffs: string): string => join(bpffs, 'progs');

/** The directory of one generation of an object. */
export function generationDir(bpffs: string, object: string, generation: string): string {
  return join(progsDir(bpffs), `${object}-${generation}`);
}

/** The object a generation directory name belongs to, or undefined for a name of another layout. */
export function generationObject(dirName: string): string | undefined {
  return /^([a-z0-9_]+)-[0-9a-f]{16}$/.exec(dirName)?.[1];
}

/** True for a generation directory of the previous layout (progs/<16 hex>). */
export function isLegacyGeneration(dirName: string): boolean {
  return /^[0-9a-f]{16}$/.test(dirName);
}

/** The attachments directory of one interface. */
export function interfaceDir(bpffs: string, ifname: string): string {
  return join(linksDir(bpffs), ifname);
}

/** The pin of one program's attachment on one interface. */
export function attachPin(bpffs: string, ifname: string, program: string, hook: Hook): string {
  return join(interfaceDir(bpffs, ifname), `${program}-${hook}`);
}

/** The directory of the cgroup links (beside links/, which holds one directory per interface). */
export const cgroupLinksDir = (bpffs: string): string => join(bpffs, 'cgroup');

/** The pin of one program's cgroup link. */
export function cgroupPin(bpffs: string, program: string, hook: Hook): string {
  return join(cgroupLinksDir(bpffs), `${program}-${hook}`);
}

/** Program and hook of an attachment pin's file name; undefined when it is not one. */
export function parseAttachPin(fileName: string): { program: string; hook: Hook } | undefined {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)-([a-z0-9_]+)$/.exec(fileName);
  if (!m || !(HOOKS as readonly string[]).includes(m[2]!)) return undefined;
  return { program: m[1]!, hook: m[2] as Hook };
}

/** A previous-layout link pin (links/<ifname>_ingress|_egress): its interface and direction. */
export function parseLegacyLinkPin(fileName: string): { ifname: string; direction: 'ingress' | 'egress' } | undefined {
  const m = /^(.+)_(ingress|egress)$/.exec(fileName);
  return m ? { ifname: m[1]!, direction: m[2] as 'ingress' | 'egress' } : undefined;
}
