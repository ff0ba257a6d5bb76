/** `podnet endpoints`: every pod endpoint on this node. */
import type { CommandModule } from 'yargs';
import { apiCall } from '../../api/client.js';
import type { EndpointInfo } from '../../api/protocol.js';
import { print, table, type OutputFormat } from '../output.js';
import { apiSocketOf, type GlobalArgs } from '../globals.js';

export const endpointsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'endpoints',
  describe: 'List pod endpoints: address, pod, host interface, MACs',
  handler: async (argv) => {
    const eps = await apiCall<EndpointInfo[]>(apiSocketOf(argv), 'GET', '/v1/endpoints');
    print(argv.output as OutputFormat, eps, (d) =>
      table(['id', 'ip', 'pod', 'container', 'ifname', 'host-if', 'ifindex', 'pod-mac'],
        d.map((e) => [e.endpointId, e.ip, e.podName ? `${e.podNamespace ?? ''}/${e.podName}` : undefined, e.containerId.slice(0, 12), e.ifName, e.hostIfName, e.hostIfIndex, e.podMac])));
  },
};
