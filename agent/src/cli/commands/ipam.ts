/** `podnet ipam`: pool, used, free and the owner of every address. */
import type { CommandModule } from 'yargs';
import { runIpam } from '../read.js';
import { apiSocketOf, withReadOptions, type GlobalArgs, type ReadArgs } from '../globals.js';

export const ipamCommand: CommandModule<GlobalArgs, ReadArgs> = {
  command: 'ipam',
  describe: 'Show the pod CIDR pool, its usage and who owns each address',
  builder: (y) => withReadOptions(y),
  handler: async (argv) => { await runIpam({ apiSocket: apiSocketOf(argv), output: argv.output }); },
};
