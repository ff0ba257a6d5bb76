/**
 * The `podnet` command line: the bundle's entry. Plain read commands run on
 * the hand-parsed fast path (fast.ts, read.ts); everything else loads the
 * yargs CLI (cli.ts) on demand, and the agent, maps and cleanup commands load
 * their heavy modules (FFI, logger, metrics) only when they run.
 */
import { parseFast, type FastInvocation } from './fast.js';
import { reportFailure } from './fail.js';
import { runEndpoints, runIpam, runServices, runStatus, runVersion } from './read.js';
import { VERSION } from '../version.js';
import { writeStdout } from './output.js';

type Env = Readonly<Record<string, string | undefined>>;

async function runFast(f: FastInvocation): Promise<void> {
  switch (f.command) {
    case '--version': writeStdout(`${VERSION}\n`); return;
    case 'status': await runStatus(f); return;
    case 'endpoints': await runEndpoints(f); return;
    case 'services': await runServices(f); return;
    case 'ipam': await runIpam(f); return;
    case 'version': await runVersion(f); return;
  }
}

/** Runs the CLI with `args` (process.argv without node and script) and the process environment. */
export async function main(args: string[], env: Env = process.env): Promise<void> {
  const fast = parseFast(args, env);
  if (!fast) {
    // The full CLI reports its own failures (it is a bundle of its own).
    const { runCli } = await import('./cli.js');
    return runCli(args, env);
  }
  try {
    await runFast(fast);
  } catch (err) {
    reportFailure(err);
  }
}

// Run when this file is the bundle's entry (build/podnet.cjs), not when imported.
declare const PODNET_BUNDLE_ENTRY: boolean | undefined;
if (typeof PODNET_BUNDLE_ENTRY !== 'undefined' && PODNET_BUNDLE_ENTRY) void main(process.argv.slice(2));
