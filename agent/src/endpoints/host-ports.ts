/**
 * Host ports (Kubernetes hostPort) as CNI hands them over: the
 * `portMappings` capability's `runtimeConfig.portMappings` list. This file
 * validates the list and finds conflicts between pods; the Services
 * controller turns the mappings into frontends of the service maps.
 *
 * Rules:
 * - hostPort and containerPort: integers 1..65535.
 * - protocol: tcp or udp, any case, default tcp. sctp is refused: the
 *   datapath does not translate SCTP.
 * - hostIP: empty or 0.0.0.0 (every address of the node) or one IPv4
 *   address. An IPv6 hostIP is skipped (podnet is IPv4-only); the caller
 *   logs it.
 * - Two mappings overlap when protocol and hostPort are equal and their
 *   hostIPs are equal or either one is "every address". Overlapping entries
 *   of one pod are refused, except the same entry twice (kept once).
 */
import { CniError } from '../api/cni-error.js';
import { CniErrorCode, type HostPortMapping } from '../api/protocol.js';

export type { HostPortMapping } from '../api/protocol.js';

/** The hostIP that means every address of the node. */
export const ANY_HOST_IP = '0.0.0.0';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

/** The outcome of parsing a portMappings list. */
export interface ParsedPortMappings {
  mappings: HostPortMapping[];
  /** IPv6 entries left out, as "runtimeConfig.portMappings[i]: hostIP ... is IPv6" lines. */
  skipped: string[];
}

const FIELDS = ['hostPort', 'containerPort', 'protocol', 'hostIP'] as const;

/**
 * The four fields of a mapping under their CNI names, matched as Go's
 * encoding/json does (exact name first, then any case): containerd's CRI
 * plugin sends go-cni's PortMapping without JSON tags, so its keys arrive
 * as "HostPort", "ContainerPort", "Protocol" and "HostIP", which the
 * reference portmap plugin reads through exactly that rule.
 */
function knownFields(e: Record<string, unknown>): Record<(typeof FIELDS)[number], unknown> {
  const out = {} as Record<(typeof FIELDS)[number], unknown>;
  for (const f of FIELDS) {
    if (Object.hasOwn(e, f)) { out[f] = e[f]; continue; }
    const k = Object.keys(e).find((x) => x.toLowerCase() === f.toLowerCase());
    if (k !== undefined) out[f] = e[k];
  }
  return out;
}

/**
 * Parses `runtimeConfig.portMappings` (undefined or null: none).
 * @throws CniError 7 (invalid network config) naming `runtimeConfig.portMappings[i].field`
 */
export function parsePortMappings(raw: unknown): ParsedPortMappings {
  const out: ParsedPortMappings = { mappings: [], skipped: [] };
  if (raw === undefined || raw === null) return out;
  const bad = (field: string, why: string): never => {
    throw new CniError(CniErrorCode.InvalidConfig, `invalid config runtimeConfig.portMappings${field}: ${why}`);
  };
  if (!Array.isArray(raw)) bad('', 'must be a list');
  const at0: number[] = [];
  (raw as unknown[]).forEach((e, i) => {
    const at = `[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) bad(at, 'must be an object');
    const o = knownFields(e as Record<string, unknown>);
    if (!isPort(o['hostPort'])) bad(`${at}.hostPort`, `${JSON.stringify(o['hostPort'])} is not an integer in 1..65535`);
    if (!isPort(o['containerPort'])) bad(`${at}.containerPort`, `${JSON.stringify(o['containerPort'])} is not an integer in 1..65535`);
    const p = o['protocol'];
    if (p !== undefined && p !== null && p !== '' && typeof p !== 'string') bad(`${at}.protocol`, `${JSON.stringify(p)} is not a string`);
    const proto = typeof p === 'string' && p !== '' ? p.toLowerCase() : 'tcp';
    if (proto === 'sctp') bad(`${at}.protocol`, 'sctp is not supported: podnet translates only tcp and udp');
    if (proto !== 'tcp' && proto !== 'udp') bad(`${at}.protocol`, `${JSON.stringify(p)} is not tcp, udp or sctp`);
    const h = o['hostIP'];
    if (h !== undefined && h !== null && typeof h !== 'string') bad(`${at}.hostIP`, `${JSON.stringify(h)} is not a string`);
    let hostIP = typeof h === 'string' ? h : '';
    if (hostIP === '') hostIP = ANY_HOST_IP;
    if (hostIP.includes(':')) {
      out.skipped.push(`runtimeConfig.portMappings${at}: hostIP ${hostIP} is IPv6; podnet serves IPv4 host ports only`);
      return;
    }
    if (!IPV4.test(hostIP)) bad(`${at}.hostIP`, `${JSON.stringify(h)} is not an IPv4 address`);
    const m: HostPortMapping = { hostPort: o['hostPort'] as number, containerPort: o['containerPort'] as number, protocol: proto === 'udp' ? 'udp' : 'tcp', hostIP };
    const j = out.mappings.findIndex((x) => overlaps(x, m));
    // The same entry twice asks for nothing more: kept once.
    if (j >= 0 && describe(out.mappings[j]!) === describe(m)) return;
    if (j >= 0) bad(`${at}.hostPort`, `${describe(m)} overlaps runtimeConfig.portMappings[${at0[j]}] (${describe(out.mappings[j]!)})`);
    at0.push(i);
    out.mappings.push(m);
  });
  return out;
}

/** True when both mappings would answer some address:port/protocol. */
export function overlaps(a: HostPortMapping, b: HostPortMapping): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIP === b.hostIP || a.hostIP === ANY_HOST_IP || b.hostIP === ANY_HOST_IP);
}

/** "127.0.0.1:54323/tcp -> 80". */
export function describe(m: HostPortMapping): string {
  return `${m.hostIP}:${m.hostPort}/${m.protocol} -> ${m.containerPort}`;
}

/** Someone holding host ports: a pod's name for messages, and its mappings. */
export interface HostPortHolder {
  /** "namespace/name" of the pod, or "container <id>" without pod names. */
  who: string;
  mappings: readonly HostPortMapping[];
}

/**
 * The first of `want` that overlaps a mapping of a holder, as an error
 * message naming that pod; undefined when there is none.
 */
export function findConflict(want: readonly HostPortMapping[], holders: Iterable<HostPortHolder>): string | undefined {
  for (const h of holders) {
    for (const m of want) {
      const x = h.mappings.find((o) => overlaps(o, m));
      if (x) return `host port ${m.hostIP}:${m.hostPort}/${m.protocol} is held by pod ${h.who} (${describe(x)})`;
    }
  }
  return undefined;
}
