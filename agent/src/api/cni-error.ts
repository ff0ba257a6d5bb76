/** An error the agent answers to a CNI call with a spec error code. */
import { PodnetError } from '../errors/index.js';
import { CniErrorCode } from './protocol.js';

/** Carries the CNI error code (see CniErrorCode) and optional details. */
export class CniError extends PodnetError {
  constructor(readonly cniCode: number, message: string, readonly details?: string, options?: { cause?: unknown }) {
    super(`ECNI${cniCode}`, message, options);
  }
}

/** The CNI code of any error: CniError keeps its own, everything else is "internal". */
export function cniCodeOf(err: unknown): number {
  return err instanceof CniError ? err.cniCode : CniErrorCode.Internal;
}
