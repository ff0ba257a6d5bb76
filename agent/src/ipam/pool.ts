/** Address arithmetic for one pod CIDR (IPv4 now; the types keep IPv6 open). */
import ipaddr from 'ipaddr.js';
import { ConfigError } from '../errors/index.js';

/** A pod CIDR with its usable host range: network and broadcast excluded. */
export interface Pool {
  readonly family: 4 | 6;
  readonly cidr: string;
  /** The network address as a number (IPv4). */
  readonly network: number;
  readonly prefixLen: number;
  /** First and last allocatable addresses (inclusive), as numbers. */
  readonly first: number;
  readonly last: number;
  /** Number of allocatable addresses. */
  readonly size: number;
}

/** Parses and validates a pod CIDR like "10.244.1.0/24". @throws ConfigError naming `field`. */
export function parsePool(cidr: string, field = 'pod-cidr'): Pool {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  let prefixLen: number;
  try {
    [addr, prefixLen] = ipaddr.parseCIDR(cidr);
  } catch {
    throw new ConfigError(field, `"${cidr}" is not a CIDR (expected e.g. 10.244.1.0/24)`);
  }
  if (addr.kind() === 'ipv6') throw new ConfigError(field, `"${cidr}": IPv6 pod CIDRs are not supported yet`);
  if (prefixLen < 8 || prefixLen > 30) throw new ConfigError(field, `"${cidr}": prefix length must be between /8 and /30`);
  const value = toNumber(addr.toString());
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  const network = (value & mask) >>> 0;
  if (network !== value) {
    throw new ConfigError(field, `"${cidr}" has host bits set (did you mean ${fromNumber(network)}/${prefixLen}?)`);
  }
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  return Object.freeze({ family: 4 as const, cidr, network, prefixLen, first: network + 1, last: broadcast - 1, size: broadcast - network - 1 });
}

/** True when `ip` (dotted quad) lies inside the pool's allocatable range. */
export function inPool(pool: Pool, ip: string): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(ip)) return false;
  const n = toNumber(ip);
  return n >= pool.first && n <= pool.last;
}

/** The netmask of the pool in network-order dotted quad. */
export function poolMask(pool: Pool): string {
  return fromNumber(pool.prefixLen === 0 ? 0 : (0xffffffff << (32 - pool.prefixLen)) >>> 0);
}

/** Dotted quad -> unsigned 32-bit number. */
export function toNumber(ip: string): number {
  const b = ipaddr.IPv4.parse(ip).octets;
  return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0);
}

/** Unsigned 32-bit number -> dotted quad. */
export function fromNumber(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
