/** `podnet services`: every Service with its frontends, backends and their state, as the maps hold them. */
import type { Argv, CommandModule } from 'yargs';
import { runServices } from '../read.js';
import { apiSocketOf, withReadOptions, type GlobalArgs, type ReadArgs } from '../globals.js';

interface ServicesArgs extends ReadArgs {
  namespace?: string;
}

export const servicesCommand: CommandModule<GlobalArgs, ServicesArgs> = {
  command: 'services',
  describe: 'List Services: frontends, backends and their state, connection counts, straight from the maps',
  builder: (y) =>
    withReadOptions(y)
      .option('namespace', { alias: 'n', type: 'string', requiresArg: true, describe: 'Only Services of this namespace' }) as unknown as Argv<ServicesArgs>,
  handler: async (argv) => {
    await runServices({ apiSocket: apiSocketOf(argv), output: argv.output, namespace: argv.namespace });
  },
};
