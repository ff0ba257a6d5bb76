/**
 * The BPF objects of a node and the programs in each: what the loader
 * compiles, which maps an object declares, and where each program attaches.
 * A new object (netdev, xdp) is one more descriptor here.
 */
import type { ConstantValue } from '../libbpf/index.js';
import type { Pool } from '../ipam/index.js';
import { COUNTERS, ENDPOINTS, EVENTS, type MapDescriptor } from '../maps/index.js';

/** Where a program runs: a tc hook (tcx link or clsact filter) or XDP. */
export type Hook = 'tc_ingress' | 'tc_egress' | 'xdp';
export const HOOKS: readonly Hook[] = ['tc_ingress', 'tc_egress', 'xdp'];

/** Which interfaces a program goes on: every pod's host veth, the uplink, the tunnel device. */
export type AttachTarget = 'pod' | 'uplink' | 'tunnel';

/** One program of an object. */
export interface ProgramDescriptor {
  /** The C function name; also names its pins. Unique across objects. */
  readonly name: string;
  readonly hook: Hook;
  readonly target: AttachTarget;
  /** clsact filter priority and handle on its hook (clsact mode only); default 1. */
  readonly tcPriority?: number;
}

/** Per-node values the objects' load-time constants come from. */
export interface NodeConstants {
  pool: Pool;
}

/** One BPF object: bpf/<source>.bpf.c. */
export interface ObjectDescriptor {
  /** Names the program generation directories (progs/<name>-<generation>). No dot, no dash. */
  readonly name: string;
  /** bpf/<source>.bpf.c */
  readonly source: string;
  readonly programs: readonly ProgramDescriptor[];
  /** The maps the object declares; test/bpf/maps.test.ts checks the object carries exactly these. */
  readonly maps: readonly MapDescriptor<any, any>[];
  /** The `volatile const` values set between open and load. */
  constants(node: NodeConstants): Record<string, ConstantValue>;
}

const be32 = (n: number): Uint8Array => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return new Uint8Array(b);
};

/** bpf/pod.bpf.c: the programs on every pod's host veth. */
export const POD_OBJECT: ObjectDescriptor = Object.freeze({
  name: 'pod',
  source: 'pod',
  programs: Object.freeze([
    { name: 'from_pod', hook: 'tc_ingress', target: 'pod' },
    { name: 'to_pod', hook: 'tc_egress', target: 'pod' },
  ] as const),
  maps: Object.freeze([ENDPOINTS, COUNTERS, EVENTS]),
  constants: ({ pool }: NodeConstants) => ({
    pn_pod_cidr_addr: be32(pool.network),
    pn_pod_cidr_mask: be32(pool.prefixLen === 0 ? 0 : (0xffffffff << (32 - pool.prefixLen)) >>> 0),
  }),
});

/** Every object a node loads, in load order. */
export const NODE_OBJECTS: readonly ObjectDescriptor[] = Object.freeze([POD_OBJECT]);

/** A program descriptor by name, across every object. */
export function programDescriptor(name: string, objects: readonly ObjectDescriptor[] = NODE_OBJECTS): ProgramDescriptor | undefined {
  for (const o of objects) for (const p of o.programs) if (p.name === name) return p;
  return undefined;
}
