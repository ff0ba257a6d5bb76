/** The `podnet` command line: the agent and the commands that read its state. */
import yargs, { type Argv, type CommandModule } from 'yargs';
import { DEFAULTS } from '../config/index.js';
import { PodnetError } from '../errors/index.js';
import { OUTPUT_FORMATS } from './output.js';
import type { GlobalArgs } from './globals.js';
import { agentCommand } from './commands/agent.js';
import { statusCommand } from './commands/status.js';
import { endpointsCommand } from './commands/endpoints.js';
import { ipamCommand } from './commands/ipam.js';
import { mapsCommand } from './commands/maps.js';
import { versionCommand } from './commands/version.js';

// The explicit list of commands; each lives in commands/<name>.ts.
const COMMANDS: Array<CommandModule<GlobalArgs, any>> = [agentCommand, statusCommand, endpointsCommand, ipamCommand, mapsCommand, versionCommand];

/** Runs the CLI with `args` (process.argv without node and script). */
export async function main(args: string[]): Promise<void> {
  let y = yargs(args)
    .scriptName('podnet')
    .env('PODNET')
    .option('api-socket', { type: 'string', describe: `The agent's API socket (default ${DEFAULTS.apiSocket})` })
    .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as const, describe: 'Output format of read commands' })
    .demandCommand(1, 'give a command; see --help')
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`podnet: ${msg}\n`);
      process.exit(2);
    }) as unknown as Argv<GlobalArgs>;
  for (const c of COMMANDS) y = y.command(c);
  try {
    await y.parseAsync();
  } catch (err) {
    const msg = err instanceof PodnetError ? err.message : (err as Error).stack ?? String(err);
    process.stderr.write(`podnet: ${msg}\n`);
    process.exitCode = 1;
  }
}
