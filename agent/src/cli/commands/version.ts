/** `podnet version`: the CLI's version, and the agent's when one answers. */
import type { CommandModule } from 'yargs';
import { runVersion } from '../read.js';
import { apiSocketOf, withReadOptions, type GlobalArgs, type ReadArgs } from '../globals.js';

export const versionCommand: CommandModule<GlobalArgs, ReadArgs> = {
  command: 'version',
  describe: "Print the podnet version (and the running agent's)",
  builder: (y) => withReadOptions(y),
  handler: async (argv) => { await runVersion({ apiSocket: apiSocketOf(argv), output: argv.output }); },
};
