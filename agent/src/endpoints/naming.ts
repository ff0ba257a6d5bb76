/** Host-side interface names of pod endpoints. */
import { createHash } from 'node:crypto';

/** Every host-side veth podnet creates starts with this prefix. */
export const HOST_VETH_PREFIX = 'pn';

/**
 * The host-side veth name of (containerId, ifName): "pn" + 12 hex digits of
 * a hash, 14 characters (the kernel allows 15). Deterministic, so DEL and GC
 * find the interface without any stored state.
 */
export function hostVethName(containerId: string, ifName: string): string {
  return HOST_VETH_PREFIX + createHash('sha256').update(`${containerId}/${ifName}`).digest('hex').slice(0, 12);
}

/** True for names podnet's endpoints use. */
export function isHostVethName(name: string): boolean {
  return /^pn[0-9a-f]{12}$/.test(name);
}
