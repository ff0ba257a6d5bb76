/** How the CLI reports a failed command: one line "podnet: verb object: cause", no stack for expected failures. */
import { writeSync } from 'node:fs';
import { PodnetError } from '../errors/base.js';

/** The one-line message for `err`: podnet's own errors and Node's system errors as they read; anything else with its stack. */
export function describeFailure(err: unknown): string {
  if (err instanceof PodnetError) return err.message;
  const e = err as NodeJS.ErrnoException;
  if (e instanceof Error && typeof e.code === 'string' && typeof e.syscall === 'string') {
    return `${e.syscall}${e.path ? ` ${e.path}` : ''}: ${e.code}`;
  }
  return `internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
}

/** Prints the failure to stderr and sets exit status 1. */
export function reportFailure(err: unknown, write: (s: string) => void = (s) => { writeSync(2, s); }): void {
  write(`podnet: ${describeFailure(err)}\n`);
  process.exitCode = 1;
}
