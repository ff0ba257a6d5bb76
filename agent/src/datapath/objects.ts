/**
 * The BPF objects of a node and the programs in each: what the loader
 * compiles, which maps an object declares, and where each program attaches.
 * A new object (netdev, xdp) is one more descriptor here.
 */
import type { ConstantValue } from '../libbpf/index.js';
import { parseIpv4 } from '../libbpf/codec.js';
import type { Pool } from '../ipam/index.js';
import { PodnetError } from '../errors/index.js';
import type { HostRouting } from './host-routing.js';
import { COUNTERS, DEFAULT_CT_TIMEOUTS, ENDPOINTS, EVENTS, SERVICE_MAPS, SOCK_REV, type ConntrackTimeouts, type MapDescriptor, type ServiceMapSizes } from '../maps/index.js';

/** Where a program runs: a tc hook (tcx link or clsact filter), XDP, or a cgroup socket hook. */
export type Hook = 'tc_ingress' | 'tc_egress' | 'xdp' | CgroupHookName;
/** The cgroup socket hooks, as hook names: cgroup_<libbpf section suffix>. */
export type CgroupHookName = 'cgroup_connect4' | 'cgroup_sendmsg4' | 'cgroup_recvmsg4' | 'cgroup_getpeername4';
export const HOOKS: readonly Hook[] = ['tc_ingress', 'tc_egress', 'xdp', 'cgroup_connect4', 'cgroup_sendmsg4', 'cgroup_recvmsg4', 'cgroup_getpeername4'];

/** True for a cgroup socket hook. */
export function isCgroupHook(hook: Hook): hook is CgroupHookName {
  return hook.startsWith('cgroup_');
}

/** The ELF section a program of a hook is in (libbpf derives the program type from it). */
export function hookSection(hook: Hook): string {
  if (isCgroupHook(hook)) return `cgroup/${hook.slice('cgroup_'.length)}`;
  return hook === 'xdp' ? 'xdp' : 'tc';
}

/**
 * Where a program goes: every pod's host veth, the uplink, the tunnel
 * device, or the root of the node's cgroup v2 hierarchy (every process of the
 * node; the program itself limits itself to the host network namespace).
 */
export type AttachTarget = 'pod' | 'uplink' | 'tunnel' | 'cgroup';

/** One program of an object. */
export interface ProgramDescriptor {
  /** The C function name; also names its pins. Unique across objects. */
  readonly name: string;
  readonly hook: Hook;
  readonly target: AttachTarget;
  /** clsact filter priority and handle on its hook (clsact mode only); default 1. */
  readonly tcPriority?: number;
}

export { DEFAULT_CT_TIMEOUTS, type ConntrackTimeouts } from '../maps/index.js';

/** The source address a pod reaching itself through a Service sees (link-local, owned by no pod). */
export const HAIRPIN_ADDR = '169.254.42.1';

/** Per-node values the objects' load-time constants (and map sizes) come from. */
export interface NodeConstants {
  pool: Pool;
  /** max_entries of the resizable service maps; default DEFAULT_SERVICE_MAP_SIZES. */
  serviceMapSizes?: ServiceMapSizes;
  /** Default DEFAULT_CT_TIMEOUTS. */
  ctTimeouts?: ConntrackTimeouts;
  /** Default HAIRPIN_ADDR. */
  hairpinAddr?: string;
  /** How traffic between pods of this node travels (resolved --host-routing); default bpf. */
  hostRouting?: HostRouting;
  /** The netns cookie of the host's network namespace (netnsCookie() in the agent's); default 0, which makes the socket programs translate nothing. */
  hostNetnsCookie?: bigint;
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

function ipv4Bytes(what: string, s: string): Uint8Array {
  try {
    return be32(parseIpv4(s));
  } catch {
    throw new PodnetError('INVALID_ARGUMENT', `set ${what}: "${s}" is not an IPv4 address`);
  }
}

function ctConstants(t: ConntrackTimeouts = DEFAULT_CT_TIMEOUTS): Record<string, ConstantValue> {
  for (const [k, v] of Object.entries(t)) {
    if (!Number.isInteger(v) || v < 1 || v > 0xffffffff) throw new PodnetError('INVALID_ARGUMENT', `set conntrack timeout ${k}: ${v} is not a whole number of seconds in 1..4294967295`);
  }
  return { pn_ct_tcp_timeout_s: t.tcp, pn_ct_syn_timeout_s: t.syn, pn_ct_closing_timeout_s: t.closing, pn_ct_other_timeout_s: t.other };
}

/** bpf/pod.bpf.c: the programs on every pod's host veth. */
export const POD_OBJECT: ObjectDescriptor = Object.freeze({
  name: 'pod',
  source: 'pod',
  programs: Object.freeze([
    { name: 'from_pod', hook: 'tc_ingress', target: 'pod' },
    { name: 'to_pod', hook: 'tc_egress', target: 'pod' },
  ] as const),
  maps: Object.freeze([ENDPOINTS, COUNTERS, EVENTS, ...SERVICE_MAPS]),
  constants: ({ pool, ctTimeouts, hairpinAddr, hostRouting }: NodeConstants) => ({
    pn_pod_cidr_addr: be32(pool.network),
    pn_pod_cidr_mask: be32(pool.prefixLen === 0 ? 0 : (0xffffffff << (32 - pool.prefixLen)) >>> 0),
    pn_hairpin_addr: ipv4Bytes('hairpin address', hairpinAddr ?? HAIRPIN_ADDR),
    pn_host_routing_kernel: hostRouting === 'kernel' ? 1 : 0,
    ...ctConstants(ctTimeouts),
  }),
});

/** bpf/netdev.bpf.c: Service translation of traffic entering the node on the uplink. */
export const NETDEV_OBJECT: ObjectDescriptor = Object.freeze({
  name: 'netdev',
  source: 'netdev',
  programs: Object.freeze([
    { name: 'from_netdev', hook: 'tc_ingress', target: 'uplink' },
    { name: 'to_netdev', hook: 'tc_egress', target: 'uplink' },
  ] as const),
  maps: Object.freeze([ENDPOINTS, COUNTERS, EVENTS, ...SERVICE_MAPS]),
  constants: ({ ctTimeouts }: NodeConstants) => ctConstants(ctTimeouts),
});


/**
 * bpf/sock.bpf.c: socket load balancing for the host's own processes, at
 * the cgroup v2 root. Loaded on every node (it declares pn_sock_rev); its
 * programs are attached only while the node handles Services.
 */
export const SOCK_OBJECT: ObjectDescriptor = Object.freeze({
  name: 'sock',
  source: 'sock',
  programs: Object.freeze([
    { name: 'sock_connect4', hook: 'cgroup_connect4', target: 'cgroup' },
    { name: 'sock_sendmsg4', hook: 'cgroup_sendmsg4', target: 'cgroup' },
    { name: 'sock_recvmsg4', hook: 'cgroup_recvmsg4', target: 'cgroup' },
    { name: 'sock_getpeer4', hook: 'cgroup_getpeername4', target: 'cgroup' },
  ] as const),
  maps: Object.freeze([COUNTERS, EVENTS, ...SERVICE_MAPS, SOCK_REV]),
  constants: ({ hostNetnsCookie }: NodeConstants) => ({ pn_host_netns_cookie: hostNetnsCookie ?? 0n }),
});

/** Every object a node loads, in load order. */
export const NODE_OBJECTS: readonly ObjectDescriptor[] = Object.freeze([POD_OBJECT, NETDEV_OBJECT, SOCK_OBJECT]);

/** A program descriptor by name, across every object. */
export function programDescriptor(name: string, objects: readonly ObjectDescriptor[] = NODE_OBJECTS): ProgramDescriptor | undefined {
  for (const o of objects) for (const p of o.programs) if (p.name === name) return p;
  return undefined;
}
