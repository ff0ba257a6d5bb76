/**
 * The full `podnet` command line on yargs: help per command, completion,
 * "did you mean", and every command from the explicit list below. main.ts
 * loads it for anything the fast path does not take.
 */
import yargs, { type Argv, type CommandModule } from 'yargs';
import { PodnetError } from '../errors/base.js';
import { reportFailure } from './fail.js';
import { VERSION } from '../version.js';
import { SETTINGS } from '../config/settings.js';
import type { GlobalArgs } from './globals.js';
import { agentCommand } from './commands/agent.js';
import { cleanupCommand } from './commands/cleanup.js';
import { endpointsCommand } from './commands/endpoints.js';
import { ipamCommand } from './commands/ipam.js';
import { mapsCommand } from './commands/maps.js';
import { servicesCommand } from './commands/services.js';
import { statusCommand } from './commands/status.js';
import { versionCommand } from './commands/version.js';

type Env = Readonly<Record<string, string | undefined>>;

// The explicit list of commands; each lives in commands/<name>.ts.
const COMMANDS: Array<CommandModule<GlobalArgs, any>> = [agentCommand, statusCommand, endpointsCommand, servicesCommand, ipamCommand, mapsCommand, cleanupCommand, versionCommand];

/** Edit distance between two short strings (for "did you mean"). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest of `known` to `word`, when it is close enough to be a typo. */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word, k);
    if (d < bestD) { best = k; bestD = d; }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** yargs' "Unknown argument(s): x, y" said of flags, with a suggestion from the flags some command knows. */
function suggestFlags(msg: string, known: readonly string[], args: readonly string[]): string {
  const m = /^Unknown arguments?: (.+)$/.exec(msg);
  if (!m) return msg;
  // yargs lists a kebab-case flag twice, also as its camelCase expansion.
  const words = m[1]!.split(', ').filter((w) => !/[A-Z]/.test(w));
  const spelled = (w: string): string | undefined =>
    [`--${w}`, `-${w}`].find((f) => args.some((a) => a === f || a.startsWith(`${f}=`)));
  const flags = words.filter((w) => spelled(w) !== undefined);
  const others = words.filter((w) => spelled(w) === undefined);
  const parts: string[] = [];
  if (flags.length > 0) {
    const hints = flags.map((w) => [w, closest(w, known)] as const).filter(([, k]) => k !== undefined)
      .map(([w, k]) => (flags.length > 1 ? `--${k} for ${spelled(w)}` : `--${k}`));
    parts.push(`unknown ${flags.length > 1 ? 'flags' : 'flag'} ${flags.map((w) => spelled(w)).join(', ')}${hints.length ? `; did you mean ${hints.join(', ')}?` : ''}`);
  }
  if (others.length > 0) parts.push(`unexpected ${others.length > 1 ? 'arguments' : 'argument'} ${others.join(', ')}`);
  return parts.join('; ');
}

/** Every flag some command takes, for "did you mean". */
const known = [
  ...new Set(['help', 'version', 'api-socket', 'output', 'state', 'namespace', 'pod', 'bpffs', 'limit', 'dry-run', 'state-dir', 'cni', 'cni-conf-dir', 'cni-bin-dir', 'config', ...SETTINGS.map((s) => s.flag)]),
];

/**
 * A flag given twice becomes an array in yargs, which no podnet flag takes:
 * say so instead of failing later on an array. `podnet agent` leaves it to
 * the settings table, which names the setting in its JSON log line.
 */
function refuseRepeatedFlags(argv: Record<string, unknown>): void {
  if (argv['_'] && (argv['_'] as unknown[])[0] === 'agent') return;
  for (const [k, v] of Object.entries(argv)) {
    if (k === '_' || k.length === 1 || /[A-Z]/.test(k) || !Array.isArray(v)) continue;
    throw new PodnetError('INVALID_USAGE', `--${k} given ${v.length} times (${v.map((x) => JSON.stringify(x)).join(', ')}); give it once`);
  }
}

/** Builds the yargs parser (exported for tests: help and completion without running a command). */
export function buildCli(args: readonly string[]): Argv<GlobalArgs> {
  let y = yargs([...args])
    .scriptName('podnet')
    .usage('$0 <command> [flags]\n\nThe podnet node agent and the commands that read its state.')
    .demandCommand(1, 'give a command; see podnet --help')
    .recommendCommands()
    .strict()
    .completion('completion', 'Print a bash/zsh completion script (source <(podnet completion))')
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, yy) => {
      void yy;
      // yargs' own parse errors (YError) are usage errors too; anything else is a failure.
      if (err && err.name !== 'YError') throw err;
      if (err) msg = err.message;
      throw new PodnetError('INVALID_USAGE', `${suggestFlags(msg, known, args)}\nsee podnet --help, or podnet <command> --help`);
    }) as unknown as Argv<GlobalArgs>;
  for (const c of COMMANDS) y = y.command(c);
  return y.middleware(refuseRepeatedFlags, true);
}

/** Runs one command line. Usage errors exit 2, failures 1, both with one line on stderr. */
export async function runCli(args: readonly string[], env: Env): Promise<void> {
  // `podnet help <command>` is `podnet <command> --help`.
  if (args[0] === 'help' && args.length > 1) args = [...args.slice(1), '--help'];
  try {
    await buildCli(args).parseAsync([...args], { env });
  } catch (err) {
    if (err instanceof PodnetError && err.code === 'INVALID_USAGE') {
      process.stderr.write(`podnet: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    reportFailure(err);
  }
}
