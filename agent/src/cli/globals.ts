/** Options every command accepts, and helpers over them. */
import { DEFAULTS } from '../config/index.js';

/** Options every command accepts. */
export interface GlobalArgs {
  /** --api-socket / PODNET_API_SOCKET; undefined means the default (see apiSocketOf). */
  apiSocket?: string;
  output: string;
}

/** The agent socket a command talks to. */
export function apiSocketOf(argv: GlobalArgs): string {
  return argv.apiSocket ?? DEFAULTS.apiSocket;
}
