/**
 * `podnet maps list` and `podnet maps dump <pin>`: the BPF maps as the kernel
 * holds them, read straight from bpffs (no agent needed; root required).
 * The FFI loads only when one of them runs.
 */
import { isAbsolute, join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { DEFAULTS } from '../../config/settings.js';
import { PodnetError } from '../../errors/base.js';
import { OUTPUT_FORMATS, print, table, type OutputFormat } from '../output.js';
import type { GlobalArgs } from '../globals.js';

interface MapsArgs extends GlobalArgs {
  bpffs?: string;
  output: OutputFormat;
  pin?: string;
  limit?: number;
}

const flat = (v: unknown): string =>
  v !== null && typeof v === 'object' ? Object.entries(v).map(([k, x]) => `${k}=${String(x)}`).join(' ') : String(v);

function withMapsOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('bpffs', { type: 'string', requiresArg: true, describe: `bpffs directory of this instance (default ${DEFAULTS.bpffs})` })
    .option('output', { alias: 'o', choices: OUTPUT_FORMATS, default: 'table' as const, requiresArg: true, describe: 'Output format' });
}

export const mapsCommand: CommandModule<GlobalArgs, MapsArgs> = {
  command: 'maps',
  describe: 'Inspect pinned BPF maps: list | dump <pin>',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .command<MapsArgs>('list', 'List maps pinned under --bpffs with type, sizes and fill', (yy) => withMapsOptions(yy) as Argv<MapsArgs>, async (argv) => {
        const { listPinnedMaps } = await import('../maps-read.js');
        const rows = listPinnedMaps(argv.bpffs ?? DEFAULTS.bpffs);
        print(argv.output, rows, (d) =>
          table(['pin', 'id', 'name', 'type', 'key', 'value', 'max', 'entries'], d.map((r) => [r.pin, r.id, r.name, r.type, r.keySize, r.valueSize, r.maxEntries, r.entries ?? undefined])));
      })
      .command<MapsArgs>('dump <pin>', 'Print every entry of a pinned map (decoded for podnet maps)', (yy) =>
        withMapsOptions(yy).positional('pin', { type: 'string', describe: 'Pin path, or a name under --bpffs (e.g. pn_endpoints)' })
          .option('limit', { type: 'number', default: 10000, requiresArg: true, describe: 'Stop after this many entries' }) as Argv<MapsArgs>,
      async (argv) => {
        const { dumpPin } = await import('../maps-read.js');
        const pin = argv.pin!;
        const limit = argv.limit ?? 10000;
        if (!Number.isInteger(limit) || limit < 1) throw new PodnetError('INVALID_USAGE', `dump ${pin}: --limit must be a positive integer`);
        const d = dumpPin(isAbsolute(pin) ? pin : join(argv.bpffs ?? DEFAULTS.bpffs, pin), limit);
        print(argv.output, d, (x) =>
          `${x.map} (${x.type}, ${x.entries.length} entries) at ${x.pin}\n` + table(['key', 'value'], x.entries.map((e) => [flat(e.key), flat(e.value)])));
      })
      .demandCommand(1, 'give list or dump <pin>') as unknown as Argv<MapsArgs>,
  handler: () => {},
};
