/**
 * CNI error codes and the CNI error, shared by the agent and the CNI entry
 * point. It imports only the import-free error base, so the entry point's
 * bundle may include it (see cni/build.mjs); keep it that way.
 */
import { PodnetError } from '../errors/base.js';

/** CNI error codes podnet answers with: 0-99 are the spec's, 100 and up podnet's own. */
export const CniErrorCode = {
  /** The config's cniVersion or the verb is not supported. */
  IncompatibleVersion: 1,
  /** A field of the network config is not supported. */
  UnsupportedField: 2,
  /** The container is unknown or does not exist. */
  UnknownContainer: 3,
  /** A CNI_* environment variable is missing or invalid (the message names it). */
  InvalidEnvironment: 4,
  /** Reading stdin or writing stdout failed. */
  IoFailure: 5,
  /** stdin or an answer could not be decoded. */
  DecodeFailure: 6,
  /** The network config is invalid. */
  InvalidConfig: 7,
  /** A transient failure: the runtime should try again later. */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot service ADD requests. */
  NotReady: 50,
  /** STATUS: pods get limited connectivity. */
  LimitedConnectivity: 51,
  /** podnet: the pod CIDR has no free address. */
  PoolExhausted: 100,
  /** podnet: any other failure. */
  Internal: 999,
} as const;

/**
 * A failure answered with a CNI error code. The entry point prints it as the
 * spec's `{cniVersion, code, msg, details?}` with exit status 1; the agent
 * sends the same object in an API error body.
 */
export class CniError extends PodnetError {
  /** The CNI error code (see CniErrorCode). */
  readonly cniCode: number;
  /** The spec's optional long message. */
  readonly details: string | undefined;
  constructor(cniCode: number, message: string, details?: string, options?: { cause?: unknown }) {
    super('CNI', message, options);
    this.cniCode = cniCode;
    this.details = details;
  }
  /** The JSON object the spec prints on stdout for this error. */
  toJSON(cniVersion = '1.1.0'): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.cniCode, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** The CNI code of any error: CniError keeps its own, everything else is "internal". */
export function cniCodeOf(err: unknown): number {
  return err instanceof CniError ? err.cniCode : CniErrorCode.Internal;
}
