/**
 * The base of podnet's errors, free of imports so the CNI entry point can
 * bundle it (cni/build.mjs admits it with the shared CNI error module).
 */
import type { ErrorCode } from './codes.js';

/** Base class: a stable `code` from the registry (errors/codes.ts), a readable message, and the error that caused it. */
export class PodnetError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
