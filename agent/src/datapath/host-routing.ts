/**
 * The one place that decides how traffic between two pods of this node
 * travels (--host-routing auto|bpf|kernel): `bpf` hands it from pod to pod
 * with bpf_redirect_peer, past the host stack; `kernel` leaves it to the host
 * stack's routing, so netfilter and conntrack (kube-proxy) see both
 * directions. See docs/architecture.md, "Host routing".
 */
import { readFileSync } from 'node:fs';

/** What --host-routing asks for. */
export type HostRoutingOption = 'auto' | 'bpf' | 'kernel';
/** How this node routes pod-to-pod traffic. */
export type HostRouting = 'bpf' | 'kernel';

/**
 * Resolves --host-routing: auto is bpf when podnet serves Services and
 * kernel when it leaves them to kube-proxy, whose DNAT of a ClusterIP only
 * holds when the backend's answer passes the host's conntrack too.
 */
export function resolveHostRouting(option: HostRoutingOption, services: boolean): HostRouting {
  if (option === 'auto') return services ? 'bpf' : 'kernel';
  return option;
}

/**
 * Why kernel host routing cannot forward on this host, or undefined when
 * it can: it needs net.ipv4.ip_forward=1 (the host stack forwards between
 * two host veths). `read` is the sysctl reader (injectable for tests).
 */
export function hostRoutingProblem(mode: HostRouting, read: () => string = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')): string | undefined {
  if (mode !== 'kernel') return undefined;
  let v: string;
  try {
    v = read().trim();
  } catch (err) {
    return `read net.ipv4.ip_forward: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  return v === '1' ? undefined : `kernel host routing: net.ipv4.ip_forward is ${v}, so the host does not forward between pods of this node; set net.ipv4.ip_forward=1`;
}
