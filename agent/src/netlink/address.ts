/** Conversions between IP/MAC strings and the raw bytes netlink carries. */
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { PodnetError } from '../errors/index.js';
import { AF_INET, AF_INET6 } from './constants.js';
import type { Family } from './types.js';

/** The IP version of a textual address; throws PodnetError EINVAL when it is neither. */
export function ipFamily(address: string): Family {
  if (isIPv4(address)) return 4;
  // Zone suffixes ("fe80::1%eth0") have no meaning in netlink payloads.
  if (isIPv6(address) && !address.includes('%')) return 6;
  throw new PodnetError('INVALID_ARGUMENT', `parse address "${address}": not an IPv4 or IPv6 address`);
}

/** The AF_* constant of a family. */
export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

/** The family of an AF_* constant, or undefined for anything but AF_INET/AF_INET6. */
export function familyOf(af: number): Family | undefined {
  if (af === AF_INET) return 4;
  if (af === AF_INET6) return 6;
  return undefined;
}

/** The 4 or 16 network-order bytes of an address; throws PodnetError EINVAL on bad input. */
export function ipToBytes(address: string): Buffer {
  if (ipFamily(address) === 4) {
    const b = Buffer.allocUnsafe(4);
    let i = 0;
    for (const part of address.split('.')) b[i++] = Number(part);
    return b;
  }
  return Buffer.from(ipaddr.IPv6.parse(address).toByteArray());
}

/** Text form of 4 or 16 address bytes (IPv6 in RFC 5952 form); throws on any other length. */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length === 16) {
    const v6 = ipaddr.fromByteArray(Array.from(bytes)) as ipaddr.IPv6;
    // Match iproute2, which prints mapped addresses with a dotted tail.
    if (v6.isIPv4MappedAddress()) return `::ffff:${v6.toIPv4Address().toString()}`;
    return v6.toString();
  }
  throw new PodnetError('INVALID_ARGUMENT', `format address: ${bytes.length} bytes is neither IPv4 nor IPv6`);
}

const macRe = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** The 6 bytes of a MAC written 'aa:bb:cc:dd:ee:ff'; throws PodnetError EINVAL on bad input. */
export function macToBytes(mac: string): Buffer {
  if (!macRe.test(mac)) throw new PodnetError('INVALID_ARGUMENT', `parse MAC "${mac}": want six hex octets separated by ':'`);
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

/** Lower-case, colon-separated text form of a hardware address of any length. */
export function bytesToMac(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    if (i > 0) s += ':';
    s += (bytes[i] ?? 0).toString(16).padStart(2, '0');
  }
  return s;
}
