/** `podnet status`: agent health, datapath mode, pool usage and the last reconcile. */
import type { CommandModule } from 'yargs';
import { runStatus } from '../read.js';
import { apiSocketOf, withReadOptions, type GlobalArgs, type ReadArgs } from '../globals.js';

export const statusCommand: CommandModule<GlobalArgs, ReadArgs> = {
  command: 'status',
  describe: 'Show agent health, datapath mode, IPAM pool usage and unhealthy endpoints',
  builder: (y) => withReadOptions(y),
  handler: async (argv) => { await runStatus({ apiSocket: apiSocketOf(argv), output: argv.output }); },
};
