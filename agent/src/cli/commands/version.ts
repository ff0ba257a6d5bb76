/** `podnet version`: the CLI's version, and the agent's when one answers. */
import type { CommandModule } from 'yargs';
import { VERSION } from '../../version.js';
import { apiCall } from '../../api/client.js';
import type { AgentStatus } from '../../api/protocol.js';
import { print, type OutputFormat } from '../output.js';
import { apiSocketOf, type GlobalArgs } from '../globals.js';

export const versionCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'version',
  describe: 'Print the podnet version (and the running agent\'s)',
  handler: async (argv) => {
    const agent = await apiCall<AgentStatus>(apiSocketOf(argv), 'GET', '/v1/status', undefined, 2000).then((s) => s.version, () => undefined);
    print(argv.output as OutputFormat, { cli: VERSION, agent: agent ?? null, node: process.version }, (d) => `podnet ${d.cli}\nagent  ${d.agent ?? 'not reachable'}\nnode   ${d.node}\n`);
  },
};
