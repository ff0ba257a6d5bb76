/** `podnet status`: agent health, datapath mode and pool usage. */
import type { CommandModule } from 'yargs';
import { apiCall } from '../../api/client.js';
import type { AgentStatus } from '../../api/protocol.js';
import { print, type OutputFormat } from '../output.js';
import { apiSocketOf, type GlobalArgs } from '../globals.js';

export const statusCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'status',
  describe: 'Show agent health, datapath mode and IPAM pool usage',
  handler: async (argv) => {
    const s = await apiCall<AgentStatus>(apiSocketOf(argv), 'GET', '/v1/status');
    print(argv.output as OutputFormat, s, (d) =>
      [
        `Agent:     ${d.ready ? 'ready' : 'NOT READY'} (podnet ${d.version}, node ${d.nodeName}, up ${d.uptimeSeconds}s)`,
        `Datapath:  ${d.datapathMode}, pins in ${d.bpffs}`,
        `IPAM:      ${d.podCidr}: ${d.ipam.used}/${d.ipam.size} used, ${d.ipam.free} free`,
        `Endpoints: ${d.endpoints}`,
        '',
      ].join('\n'));
  },
};
