/** `podnet agent`: runs the node agent until SIGTERM/SIGINT. */
import { hostname } from 'node:os';
import type { Argv, CommandModule } from 'yargs';
import { Agent } from '../../agent.js';
import { buildAgentConfig, DEFAULTS, readConfigFile } from '../../config/index.js';
import { createLogger } from '../../log/index.js';
import type { GlobalArgs } from '../globals.js';

interface AgentArgs extends GlobalArgs {
  config?: string;
  nodeName?: string;
  podCidr?: string;
  bpffs?: string;
  stateDir?: string;
  metricsAddr?: string;
  source?: string;
  uplink?: string;
  logLevel?: string;
  bpfDir?: string;
  attachMode?: string;
  mtu?: number;
  metricsPodLabels?: boolean;
  kubeconfig?: string;
}

const FLAGS = ['nodeName', 'podCidr', 'bpffs', 'stateDir', 'apiSocket', 'metricsAddr', 'source', 'uplink', 'logLevel', 'bpfDir', 'attachMode', 'mtu', 'metricsPodLabels', 'kubeconfig'] as const;

export const agentCommand: CommandModule<GlobalArgs, AgentArgs> = {
  command: 'agent',
  describe: 'Run the node agent (flags, PODNET_* env or --config file)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('config', { type: 'string', describe: 'YAML or JSON file with any of the settings below (camelCase or kebab-case keys)' })
      .option('node-name', { type: 'string', describe: 'This node\'s name (default: the hostname)' })
      .option('pod-cidr', { type: 'string', describe: 'Pod CIDR of this node, e.g. 10.244.1.0/24 (required with --source file:...)' })
      .option('bpffs', { type: 'string', describe: `bpffs directory for every pin (default ${DEFAULTS.bpffs})` })
      .option('state-dir', { type: 'string', describe: `DEL queue, endpoint metadata and compiled objects (default ${DEFAULTS.stateDir})` })
      .option('metrics-addr', { type: 'string', describe: `host:port for /metrics, /healthz, /readyz, or "off" (default ${DEFAULTS.metricsAddr})` })
      .option('source', { type: 'string', describe: `"kubernetes" or "file:PATH" (default ${DEFAULTS.source})` })
      .option('kubeconfig', { type: 'string', describe: 'kubeconfig file for the kubernetes source (default: the in-cluster service account)' })
      .option('uplink', { type: 'string', describe: 'The node\'s external interface' })
      .option('log-level', { type: 'string', describe: `trace|debug|info|warn|error (default ${DEFAULTS.logLevel})` })
      .option('bpf-dir', { type: 'string', describe: 'Directory of the BPF C sources (default: shipped with podnet)' })
      .option('attach-mode', { type: 'string', describe: `auto|tcx|clsact (default ${DEFAULTS.attachMode})` })
      .option('mtu', { type: 'number', describe: `Pod interface MTU when the CNI config sets none (default ${DEFAULTS.mtu})` })
      .option('metrics-pod-labels', { type: 'boolean', describe: 'Label traffic metrics per pod; --no-metrics-pod-labels keeps totals by direction (default true)' }) as Argv<AgentArgs>,
  handler: async (argv) => {
    // Precedence: flags > PODNET_* env (yargs maps both into argv) > config file.
    const raw: Record<string, unknown> = argv.config ? readConfigFile(argv.config) : {};
    for (const k of FLAGS) {
      const v = (argv as unknown as Record<string, unknown>)[k];
      if (v !== undefined) raw[k] = v;
    }
    const cfg = buildAgentConfig(raw, hostname().toLowerCase());
    const log = createLogger(cfg.logLevel);
    // Handlers first: a SIGTERM that arrives while the agent starts must stop it, not kill it.
    let signalled: (signal: string) => void = () => {};
    const stopped = new Promise<string>((resolve) => { signalled = resolve; });
    const abort = new AbortController();
    const onSignal = (signal: string) => () => { abort.abort(); signalled(signal); };
    process.once('SIGTERM', onSignal('SIGTERM'));
    process.once('SIGINT', onSignal('SIGINT'));
    let agent: Agent;
    try {
      agent = await Agent.start(cfg, log, { signal: abort.signal });
    } catch (err) {
      // Stopped while waiting (for the Node's pod CIDR): a clean exit.
      if (abort.signal.aborted) { log.info({ signal: await stopped }, 'stopped before the agent was ready'); return; }
      throw err;
    }
    const signal = await stopped;
    log.info({ signal }, 'stopping agent; the datapath keeps running');
    await agent.stop();
  },
};
