/** `podnet endpoints`: every pod endpoint on this node, with its health. */
import type { Argv, CommandModule } from 'yargs';
import { ENDPOINT_STATES, runEndpoints } from '../read.js';
import { apiSocketOf, withReadOptions, type GlobalArgs, type ReadArgs } from '../globals.js';

interface EndpointsArgs extends ReadArgs {
  state?: string;
  namespace?: string;
  pod?: string;
}

export const endpointsCommand: CommandModule<GlobalArgs, EndpointsArgs> = {
  command: 'endpoints',
  describe: 'List pod endpoints: state, address, pod, host interface, MACs',
  builder: (y) =>
    withReadOptions(y)
      .option('state', { choices: ENDPOINT_STATES, requiresArg: true, describe: 'Only endpoints in this state' })
      .option('namespace', { alias: 'n', type: 'string', requiresArg: true, describe: 'Only pods of this namespace' })
      .option('pod', { type: 'string', requiresArg: true, describe: 'Only the pod with this name' }) as unknown as Argv<EndpointsArgs>,
  handler: async (argv) => {
    await runEndpoints({ apiSocket: apiSocketOf(argv), output: argv.output, state: argv.state, namespace: argv.namespace, pod: argv.pod });
  },
};
