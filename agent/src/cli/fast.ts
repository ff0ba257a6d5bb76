/**
 * The hot path of the CLI: `podnet status|endpoints|services|ipam|version` and
 * `podnet --version` with plain flags are parsed here by hand, without
 * loading yargs (which alone costs about three times node's start-up).
 * Anything this parser does not fully understand (help, a typo, a repeated
 * flag, a flag of another command) returns undefined and goes to the yargs
 * CLI, which gives the full messages.
 */
import { settingsFromEnv, DEFAULTS } from '../config/settings.js';
import { OUTPUT_FORMATS, type OutputFormat } from './output.js';
import { ENDPOINT_STATES, type EndpointFilters } from './read.js';

/** A read command this parser understood. */
export type FastInvocation =
  | { command: 'status' | 'ipam' | 'version'; apiSocket: string; output: OutputFormat }
  | ({ command: 'endpoints'; apiSocket: string; output: OutputFormat } & EndpointFilters)
  | { command: 'services'; apiSocket: string; output: OutputFormat; namespace: string | undefined }
  | { command: '--version' };

const COMMON = { '--api-socket': 'apiSocket', '--output': 'output', '-o': 'output' } as const;
const ENDPOINT_FLAGS = { ...COMMON, '--state': 'state', '--namespace': 'namespace', '-n': 'namespace', '--pod': 'pod' } as const;
const SERVICE_FLAGS = { ...COMMON, '--namespace': 'namespace', '-n': 'namespace' } as const;

/** Parses `args` if it is a plain read command; undefined sends it to yargs. */
export function parseFast(args: readonly string[], env: Readonly<Record<string, string | undefined>>): FastInvocation | undefined {
  const [command, ...rest] = args;
  if (command === '--version' && rest.length === 0) return { command };
  if (command !== 'status' && command !== 'ipam' && command !== 'version' && command !== 'endpoints' && command !== 'services') return undefined;
  const flags: Record<string, string> = command === 'endpoints' ? ENDPOINT_FLAGS : command === 'services' ? SERVICE_FLAGS : COMMON;
  const got: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const key = flags[name];
    if (key === undefined) return undefined;
    const value = eq > 0 ? a.slice(eq + 1) : rest[++i];
    if (value === undefined || value === '' || value.startsWith('-') || key in got) return undefined;
    got[key] = value;
  }
  const output = (got['output'] ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(output)) return undefined;
  if (got['state'] !== undefined && !(ENDPOINT_STATES as readonly string[]).includes(got['state'])) return undefined;
  const apiSocket = got['apiSocket'] ?? (settingsFromEnv(env).apiSocket as string | undefined) ?? DEFAULTS.apiSocket;
  if (command === 'endpoints') return { command, apiSocket, output, state: got['state'], namespace: got['namespace'], pod: got['pod'] };
  if (command === 'services') return { command, apiSocket, output, namespace: got['namespace'] };
  return { command, apiSocket, output };
}
