/** Output of read commands: an aligned text table or JSON (`-o table|json`). */
import { writeSync } from 'node:fs';

/** The output formats every read command accepts. */
export const OUTPUT_FORMATS = ['table', 'json'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Renders rows as an aligned table with upper-case headers. */
export function table(headers: string[], rows: Array<Array<string | number | bigint | undefined>>): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => (c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** JSON with bigints as numbers when they fit, strings otherwise. */
export function json(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString()) : v), 2) + '\n';
}

/**
 * Writes all of `text` to stdout synchronously. Going through fs instead of
 * process.stdout keeps the stream machinery (and node:net for a pipe) out of
 * the read commands' start-up.
 */
export function writeStdout(text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length;) {
    try {
      off += writeSync(1, buf, off);
    } catch (err) {
      // A non-blocking stdout that is momentarily full: wait a little and retry.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

/** Prints `data` as JSON, or through `toTable` for the table format. */
export function print<T>(format: OutputFormat, data: T, toTable: (d: T) => string, out: (s: string) => void = writeStdout): void {
  out(format === 'json' ? json(data) : toTable(data));
}
