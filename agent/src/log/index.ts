/** Structured JSON logging (pino). One root logger per process, children per subsystem. */
import { pino, type Logger, type LevelWithSilent, type LoggerOptions } from 'pino';

export type { Logger };

/** Options shared by every podnet logger: level names ("info"), not pino's numbers, and ISO times. */
export function loggerOptions(level: LevelWithSilent, name = 'podnet'): LoggerOptions {
  return {
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
}

/** Creates the process logger writing JSON lines to stderr (synchronously, so a fatal line is out before exit). */
export function createLogger(level: LevelWithSilent = 'info', name = 'podnet'): Logger {
  return pino(loggerOptions(level, name), pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything: the default for library code and tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
