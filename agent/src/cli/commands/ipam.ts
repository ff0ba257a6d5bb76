/** `podnet ipam`: pool, used, free and the owner of every address. */
import type { CommandModule } from 'yargs';
import { apiCall } from '../../api/client.js';
import type { IpamInfo } from '../../api/protocol.js';
import { print, table, type OutputFormat } from '../output.js';
import { apiSocketOf, type GlobalArgs } from '../globals.js';

export const ipamCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'ipam',
  describe: 'Show the pod CIDR pool, its usage and who owns each address',
  handler: async (argv) => {
    const info = await apiCall<IpamInfo>(apiSocketOf(argv), 'GET', '/v1/ipam');
    print(argv.output as OutputFormat, info, (d) =>
      `Pool ${d.pool}: ${d.used} used, ${d.free} free of ${d.size}\n\n` +
      table(['ip', 'container', 'ifname', 'allocated'], d.allocations.map((a) => [a.ip, a.containerId.slice(0, 12), a.ifName, a.created])));
  },
};
