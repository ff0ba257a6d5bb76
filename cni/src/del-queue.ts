/**
 * The DEL queue: where the entry point leaves a DEL it could not deliver
 * because the agent was down, so pod deletion never waits on the agent. The
 * agent drains it on start with `readDelQueue` + `removeFromDelQueue`.
 * Pure node:fs and node:path, synchronous, so both sides can use it cheaply.
 *
 * On-disk format:
 *
 *   <stateDir>/del-queue/                 directory, created with mode 0700
 *     <containerId>-<ifName>.json         one pending DEL, mode 0600
 *     .<containerId>-<ifName>.json.<pid>.<rand>.tmp
 *                                         a write in progress, or one a crash
 *                                         abandoned; readers skip dot files
 *
 * Each `.json` file holds one JSON object, exactly the `CniDelRequest` of
 * agent/src/api/protocol.ts that the entry point would have POSTed to
 * /v1/cni/del:
 *
 *   {"containerId":"<id>","ifName":"eth0","args":{"K8S_POD_NAMESPACE":"ns",...},
 *    "network":"podnet","cniVersion":"1.1.0","netns":"/var/run/netns/x","mtu":1450}
 *
 * `netns` and `mtu` are present only when the DEL carried them. Files are
 * written to a temporary name and renamed, so a reader never sees a partial
 * file, and a second DEL for the same (containerId, ifName) replaces the
 * first. The name is for people; the content is authoritative. DEL is
 * idempotent, so replaying an entry that was already applied is harmless.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { CniDelRequest } from '../../agent/src/api/protocol.js';

/** The queue directory under a state dir. */
export function delQueueDir(stateDir: string): string {
  return join(stateDir, 'del-queue');
}

/**
 * The file name of the queue entry for one attachment.
 * @throws Error when either part could escape the directory ('/', NUL, empty, or a leading '.')
 */
export function delQueueFileName(containerId: string, ifName: string): string {
  for (const [what, v] of [['containerId', containerId], ['ifName', ifName]] as const) {
    if (v === '' || v.startsWith('.') || /[/\0]/.test(v)) throw new Error(`name DEL queue entry: ${what} ${JSON.stringify(v)} is not usable in a file name`);
  }
  return `${containerId}-${ifName}.json`;
}

/**
 * Writes one DEL request into the queue directory `dir` atomically (temp file
 * + fsync + rename), creating the directory with mode 0700 if needed.
 * Returns the path of the entry.
 * @throws the fs error (ENOSPC, EACCES, ...) when the entry cannot be written
 */
export function enqueueDel(dir: string, req: CniDelRequest): string {
  const name = delQueueFileName(req.containerId, req.ifName);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    const data = Buffer.from(`${JSON.stringify(req)}\n`);
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off);
    // Without the fsync a crash right after the rename can leave an empty
    // file under the final name.
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuiet(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, final);
  } catch (err) {
    unlinkQuiet(tmp);
    throw err;
  }
  return final;
}

/** One file of the queue: a request to replay, or a file that is not one (to log and remove). */
export type DelQueueEntry =
  | { kind: 'request'; path: string; request: CniDelRequest }
  | { kind: 'invalid'; path: string; reason: string };

/**
 * Lists the pending DELs in `dir`, oldest first (by mtime, then name).
 * A missing directory is an empty queue. Temporary files are skipped.
 * @throws the fs error when the directory exists but cannot be read
 */
export function readDelQueue(dir: string): DelQueueEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const found: Array<{ entry: DelQueueEntry; mtime: number; name: string }> = [];
  for (const name of names) {
    if (name.startsWith('.') || !name.endsWith('.json')) continue;
    const path = join(dir, name);
    let text: string;
    let mtime: number;
    try {
      mtime = statSync(path).mtimeMs;
      text = readFileSync(path, 'utf8');
    } catch (err) {
      // Removed by a concurrent drain between readdir and read.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    found.push({ entry: decodeEntry(path, text), mtime, name });
  }
  found.sort((a, b) => a.mtime - b.mtime || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return found.map((f) => f.entry);
}

/** Removes one queue entry once it has been replayed; an entry already gone is fine. */
export function removeFromDelQueue(path: string): void {
  unlinkQuiet(path);
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function decodeEntry(path: string, text: string): DelQueueEntry {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { kind: 'invalid', path, reason: `decode ${path}: ${(err as Error).message}` };
  }
  const bad = (why: string): DelQueueEntry => ({ kind: 'invalid', path, reason: `decode ${path}: ${why}` });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  for (const key of ['containerId', 'ifName', 'network', 'cniVersion'] as const) {
    if (typeof o[key] !== 'string' || o[key] === '') return bad(`${key} missing or not a string`);
  }
  const args = o['args'] ?? {};
  if (typeof args !== 'object' || args === null || Array.isArray(args) || !Object.values(args).every((v) => typeof v === 'string')) {
    return bad('args is not an object of strings');
  }
  if (o['netns'] !== undefined && typeof o['netns'] !== 'string') return bad('netns is not a string');
  if (o['mtu'] !== undefined && (typeof o['mtu'] !== 'number' || !Number.isInteger(o['mtu']))) return bad('mtu is not an integer');
  const request: CniDelRequest = {
    containerId: o['containerId'] as string,
    ifName: o['ifName'] as string,
    args: { ...(args as Record<string, string>) },
    network: o['network'] as string,
    cniVersion: o['cniVersion'] as string,
    ...(typeof o['netns'] === 'string' && o['netns'] !== '' ? { netns: o['netns'] } : {}),
    ...(typeof o['mtu'] === 'number' ? { mtu: o['mtu'] } : {}),
  };
  return { kind: 'request', path, request };
}
