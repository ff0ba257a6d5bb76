/**
 * CNI spec types, versions and error codes, and the conversion of results
 * between the shapes of spec 0.4.0 and 1.x. Pure data code: no I/O.
 */
import { CniErrorCode as ErrorCode, CniError } from '../../agent/src/api/cni-error.js';

/** The newest CNI spec version podnet implements; the agent answers in this shape. */
export const CURRENT_VERSION = '1.1.0';

/** Every cniVersion podnet accepts in a network config, oldest first. */
export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;

/** A cniVersion podnet accepts. */
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The verbs a runtime may set in CNI_COMMAND. */
export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'VERSION', 'GC'] as const;

/** A verb a runtime may set in CNI_COMMAND. */
export type CniCommand = (typeof CNI_COMMANDS)[number];

/**
 * The oldest cniVersion that has each verb. A config older than this gets
 * code 1 (incompatible version) for that verb, as the reference skel does.
 */
export const VERB_MIN_VERSION: Readonly<Record<CniCommand, CniVersion>> = {
  ADD: '0.4.0',
  DEL: '0.4.0',
  CHECK: '0.4.0',
  VERSION: '0.4.0',
  GC: '1.1.0',
  STATUS: '1.1.0',
};

/**
 * CNI error codes and the CNI error: one module shared with the agent, so a
 * code means the same on both sides of the socket. The entry point turns any
 * CniError into `{cniVersion, code, msg, details?}` on stdout and exit status
 * 1; `err.cniCode` is the number, `err.code` the registry's "CNI".
 */
export { CniError, CniErrorCode as ErrorCode } from '../../agent/src/api/cni-error.js';

/** A result interface, with the fields spec 1.1.0 added (mtu, socketPath, pciID). */
export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** A result IP in 1.x shape (no `version`); `interface` indexes `interfaces`. */
export interface ResultIp {
  address: string;
  gateway?: string;
  interface?: number;
}

/** A result route, with the fields spec 1.1.0 added. */
export interface ResultRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** The DNS part of a result. */
export interface ResultDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/**
 * A CNI result in 1.x shape. `CniResult` from the agent protocol is a subset
 * of it, so an agent answer is a `Result` as is.
 */
export interface Result {
  cniVersion: string;
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: ResultDns;
}

/** True when `v` is a cniVersion podnet accepts. */
export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** True when `v` is a verb a runtime may set in CNI_COMMAND. */
export function isCniCommand(v: string): v is CniCommand {
  return (CNI_COMMANDS as readonly string[]).includes(v);
}

/** Orders two supported versions: negative when `a` is older than `b`. */
export function compareVersions(a: CniVersion, b: CniVersion): number {
  return SUPPORTED_VERSIONS.indexOf(a) - SUPPORTED_VERSIONS.indexOf(b);
}

/** The VERSION answer: the spec version of this output and every version podnet accepts. */
export function versionInfo(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(field: string, what: string, code: number): never {
  throw new CniError(code, `decode ${field}: ${what}`);
}

function optString(o: Json, key: string, field: string, code: number): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') fail(`${field}.${key}`, 'not a string', code);
  return v;
}

function optInt(o: Json, key: string, field: string, code: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${field}.${key}`, 'not an integer', code);
  return v;
}

function optStrings(o: Json, key: string, field: string, code: number): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) fail(`${field}.${key}`, 'not a list of strings', code);
  return [...(v as string[])];
}

function list(o: Json, key: string, field: string, code: number): Json[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${field}.${key}`, 'not a list', code);
  return v.map((item, i) => {
    if (!isObject(item)) fail(`${field}.${key}[${i}]`, 'not an object', code);
    return item;
  });
}

/** Copies the defined values only, so optional fields stay absent instead of `undefined`. */
function defined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

/**
 * Reads a result of any supported version into 1.x shape: checks the types
 * of the known fields, drops 0.4.0's per-IP `version` and any unknown field.
 * `field` names the source in messages ("prevResult", "agent result").
 * @throws CniError with `code` (7 for a config's prevResult) when the shape is wrong
 */
export function normaliseResult(raw: unknown, field: string, code: number = ErrorCode.InvalidConfig): Result {
  if (!isObject(raw)) fail(field, 'not an object', code);
  const interfaces = list(raw, 'interfaces', field, code).map((it, i): ResultInterface => {
    const f = `${field}.interfaces[${i}]`;
    const name = it['name'];
    if (typeof name !== 'string' || name === '') fail(`${f}.name`, 'missing or not a string', code);
    return defined({
      name,
      mac: optString(it, 'mac', f, code),
      mtu: optInt(it, 'mtu', f, code),
      sandbox: optString(it, 'sandbox', f, code),
      socketPath: optString(it, 'socketPath', f, code),
      pciID: optString(it, 'pciID', f, code),
    });
  });
  const ips = list(raw, 'ips', field, code).map((ip, i): ResultIp => {
    const f = `${field}.ips[${i}]`;
    const address = ip['address'];
    if (typeof address !== 'string' || !address.includes('/')) fail(`${f}.address`, 'missing or not an address in CIDR form', code);
    const iface = optInt(ip, 'interface', f, code);
    if (iface !== undefined && (iface < 0 || iface >= interfaces.length)) {
      fail(`${f}.interface`, `index ${iface} is outside interfaces (${interfaces.length})`, code);
    }
    return defined({ address, gateway: optString(ip, 'gateway', f, code), interface: iface });
  });
  const routes = list(raw, 'routes', field, code).map((r, i): ResultRoute => {
    const f = `${field}.routes[${i}]`;
    const dst = r['dst'];
    if (typeof dst !== 'string' || dst === '') fail(`${f}.dst`, 'missing or not a string', code);
    return defined({
      dst,
      gw: optString(r, 'gw', f, code),
      mtu: optInt(r, 'mtu', f, code),
      advmss: optInt(r, 'advmss', f, code),
      priority: optInt(r, 'priority', f, code),
      table: optInt(r, 'table', f, code),
      scope: optInt(r, 'scope', f, code),
    });
  });
  let dns: ResultDns = {};
  const rawDns = raw['dns'];
  if (rawDns !== undefined && rawDns !== null) {
    if (!isObject(rawDns)) fail(`${field}.dns`, 'not an object', code);
    const f = `${field}.dns`;
    dns = defined({
      nameservers: optStrings(rawDns, 'nameservers', f, code),
      domain: optString(rawDns, 'domain', f, code),
      search: optStrings(rawDns, 'search', f, code),
      options: optStrings(rawDns, 'options', f, code),
    });
  }
  return { cniVersion: CURRENT_VERSION, interfaces, ips, routes, dns };
}

function union(a: string[] | undefined, b: string[] | undefined): string[] | undefined {
  if (!a) return b && [...b];
  if (!b) return [...a];
  return [...a, ...b.filter((x) => !a.includes(x))];
}

/**
 * Chains podnet's result after an earlier plugin's: keeps every entry of
 * `prev` first, appends podnet's, and shifts podnet's `ips[].interface`
 * indexes past `prev`'s interfaces. DNS lists are unioned, `prev` first;
 * `prev`'s domain wins.
 */
export function mergeResults(prev: Result, ours: Result): Result {
  const shift = prev.interfaces.length;
  return {
    cniVersion: CURRENT_VERSION,
    interfaces: [...prev.interfaces, ...ours.interfaces],
    ips: [...prev.ips, ...ours.ips.map((ip) => (ip.interface === undefined ? { ...ip } : { ...ip, interface: ip.interface + shift }))],
    routes: [...prev.routes, ...ours.routes],
    dns: defined({
      nameservers: union(prev.dns.nameservers, ours.dns.nameservers),
      domain: prev.dns.domain ?? ours.dns.domain,
      search: union(prev.dns.search, ours.dns.search),
      options: union(prev.dns.options, ours.dns.options),
    }),
  };
}

/**
 * The result as a runtime speaking `version` expects it: 1.1.0 as is; 1.0.0
 * without the fields 1.1.0 added (interface mtu/socketPath/pciID, route
 * mtu/advmss/priority/table/scope); 0.4.0 like 1.0.0 plus `version` "4"/"6"
 * on each IP. `interface` indexes are kept in every version.
 */
export function convertResult(result: Result, version: CniVersion): Record<string, unknown> {
  if (version === '1.1.0') {
    return { cniVersion: version, interfaces: result.interfaces, ips: result.ips, routes: result.routes, dns: result.dns };
  }
  const interfaces = result.interfaces.map(({ name, mac, sandbox }) => defined({ name, mac, sandbox }));
  const routes = result.routes.map(({ dst, gw }) => defined({ dst, gw }));
  const ips =
    version === '0.4.0'
      ? result.ips.map((ip) => defined({ version: ip.address.includes(':') ? '6' : '4', address: ip.address, gateway: ip.gateway, interface: ip.interface }))
      : result.ips;
  return { cniVersion: version, interfaces, ips, routes, dns: result.dns };
}
