/** Structured JSON logging (pino). One root logger per process, children per subsystem. */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** Creates the process logger writing JSON lines to stderr. */
export function createLogger(level: LevelWithSilent = 'info', name = 'podnet'): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** A logger that drops everything: the default for library code and tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
