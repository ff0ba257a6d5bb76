/** `podnet agent`: runs the node agent until SIGTERM/SIGINT. Its flags come from the settings table. */
import type { Argv, CommandModule } from 'yargs';
import { SETTINGS, type RawSettings } from '../../config/settings.js';
import type { GlobalArgs } from '../globals.js';

interface AgentArgs extends GlobalArgs {
  config?: string;
  [flag: string]: unknown;
}

function defaultText(s: (typeof SETTINGS)[number]): string {
  const d = 'defaultText' in s && s.defaultText ? s.defaultText.replace(/`/g, '') : s.default === undefined ? 'unset' : String(s.default);
  return `env ${s.env}, default ${d}`;
}

export const agentCommand: CommandModule<GlobalArgs, AgentArgs> = {
  command: 'agent',
  describe: 'Run the node agent (flags, PODNET_* env or --config file)',
  builder: (y: Argv<GlobalArgs>) => {
    let b = y.option('config', { type: 'string', requiresArg: true, describe: 'YAML or JSON file with any of the settings below (camelCase or kebab-case keys)' });
    for (const s of SETTINGS) {
      // Values stay strings here: the settings table validates them and names
      // the setting ("--mtu abc" must not become NaN, a repeated flag an array).
      b = b.option(s.flag, s.type === 'boolean'
        ? { type: 'boolean', describe: `${s.describe} (${defaultText(s)})` }
        : { type: 'string', requiresArg: true, describe: `${s.describe} (${defaultText(s)})` });
    }
    return b.group(['config', ...SETTINGS.map((s) => s.flag)], 'Settings (flags over PODNET_* env over --config file):') as unknown as Argv<AgentArgs>;
  },
  handler: async (argv) => {
    const flags: RawSettings = {};
    for (const s of SETTINGS) {
      const v = argv[s.key];
      if (v !== undefined) flags[s.key] = v;
    }
    const { runAgent } = await import('../agent-run.js');
    await runAgent({ flags, configFile: argv.config, env: argv.env });
  },
};
