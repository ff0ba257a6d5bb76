/** `podnet cleanup`: remove everything podnet put on this node (with --dry-run, only list it). */
import type { Argv, CommandModule } from 'yargs';
import { DEFAULTS, settingsFromEnv } from '../../config/settings.js';
import { PodnetError } from '../../errors/base.js';
import { OUTPUT_FORMATS, print, type OutputFormat } from '../output.js';
import { apiSocketOf, type GlobalArgs } from '../globals.js';

interface CleanupArgs extends GlobalArgs {
  dryRun: boolean;
  bpffs?: string;
  stateDir?: string;
  apiSocket?: string;
  cni: boolean;
  cniConfDir: string;
  cniBinDir: string;
  output: OutputFormat;
}

export const cleanupCommand: CommandModule<GlobalArgs, CleanupArgs> = {
  command: 'cleanup',
  describe: 'Remove what podnet put on this node: pod veths, pins, state, socket (--cni: conflist and binary too)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('dry-run', { type: 'boolean', default: false, describe: 'Only print what would be removed' })
      .option('bpffs', { type: 'string', requiresArg: true, describe: `bpffs directory of the instance (env PODNET_BPFFS, default ${DEFAULTS.bpffs})` })
      .option('state-dir', { type: 'string', requiresArg: true, describe: `Its state directory (env PODNET_STATE_DIR, default ${DEFAULTS.stateDir})` })
      .option('api-socket', { type: 'string', requiresArg: true, describe: `Its API socket (env PODNET_API_SOCKET, default ${DEFAULTS.apiSocket})` })
      .option('cni', { type: 'boolean', default: false, describe: 'Also remove the installed CNI conflist naming podnet and the entry point' })
      .option('cni-conf-dir', { type: 'string', default: '/etc/cni/net.d', requiresArg: true, describe: 'Where the conflist is installed' })
      .option('cni-bin-dir', { type: 'string', default: '/opt/cni/bin', requiresArg: true, describe: 'Where the entry point is installed' })
      .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as const, requiresArg: true, describe: 'Output format' }) as unknown as Argv<CleanupArgs>,
  handler: async (argv) => {
    const env = settingsFromEnv(argv.env);
    const { cleanup, cleanupText } = await import('../cleanup.js');
    const report = await cleanup({
      bpffs: argv.bpffs ?? (env.bpffs as string | undefined) ?? DEFAULTS.bpffs,
      stateDir: argv.stateDir ?? (env.stateDir as string | undefined) ?? DEFAULTS.stateDir,
      apiSocket: apiSocketOf(argv),
      cni: argv.cni,
      cniConfDir: argv.cniConfDir,
      cniBinDir: argv.cniBinDir,
      dryRun: argv.dryRun,
    });
    print(argv.output, report, cleanupText);
    if (report.failed.length > 0) throw new PodnetError('CLEANUP_FAILED', `clean up: ${report.failed.length} of ${report.failed.length + report.removed.length} objects could not be removed (listed above)`);
  },
};
