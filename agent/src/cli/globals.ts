/** Options that several commands accept, and helpers over them. */
import type { Argv } from 'yargs';
import { DEFAULTS, settingOf, settingsFromEnv } from '../config/settings.js';
import { OUTPUT_FORMATS, type OutputFormat } from './output.js';

type Env = Readonly<Record<string, string | undefined>>;

/** What every command's argv carries: the environment main() was given. */
export interface GlobalArgs {
  env: Env;
}

/** Options of the commands that talk to the agent. */
export interface ReadArgs extends GlobalArgs {
  /** --api-socket; undefined means PODNET_API_SOCKET or the default (see apiSocketOf). */
  apiSocket?: string;
  output: OutputFormat;
}

/** Adds --api-socket and -o to a command. */
export function withReadOptions<T extends GlobalArgs>(y: Argv<T>): Argv<T & ReadArgs> {
  return y
    .option('api-socket', { type: 'string', requiresArg: true, describe: `The agent's API socket (env ${settingOf('apiSocket').env}, default ${DEFAULTS.apiSocket})` })
    .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as const, requiresArg: true, describe: 'Output format' }) as unknown as Argv<T & ReadArgs>;
}

/** The agent socket a command talks to: the flag, else PODNET_API_SOCKET, else the default. */
export function apiSocketOf(argv: { apiSocket?: string | undefined; env: Env }): string {
  return argv.apiSocket ?? (settingsFromEnv(argv.env).apiSocket as string | undefined) ?? DEFAULTS.apiSocket;
}
