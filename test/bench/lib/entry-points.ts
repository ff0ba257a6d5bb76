/**
 * The ways of packaging podnet's CNI entry point that the latency benchmark
 * compares, each built here from the same esbuild bundle (cni/build.mjs):
 *
 * - node: the bundle run by `node` through its `env -S` shebang (needs node
 *   on the PATH; the entry point before the executable);
 * - bun, bun-bytecode: `bun build --compile`, without and with bun's bytecode
 *   cache (npm package `bun`, a devDependency; bun-bytecode is what
 *   `make cni` builds);
 * - sea, sea-code-cache, sea-snapshot: Node's single executable application
 *   (`node --experimental-sea-config` + `postject`), plain, with
 *   `useCodeCache`, and with `useSnapshot`;
 * - deno: `deno compile` (npm package `deno`).
 *
 * Tools the build does not need (postject, deno) are installed by
 * scripts/bench.sh with npm into a cache directory of the benchmark's own
 * (benchToolsDir()), never into the checkout; npm runs there in the
 * caller's environment, which may hold what reaching the registry needs. A
 * candidate that cannot be built here is reported with the error, not
 * dropped silently.
 */
import { chmod, copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run, runOk } from '../../e2e/tools/proc.js';
import { REPO_ROOT } from '../../e2e/tools/repo.js';

/** Versions scripts/bench.sh installs into the cache (lib/tools.json), so reruns compare the same tools. */
export const BENCH_TOOLS = JSON.parse(readFileSync(fileURLToPath(new URL('./tools.json', import.meta.url)), 'utf8')) as { readonly postject: string; readonly deno: string };

/** Every candidate, in report order. */
export const ENTRY_POINT_NAMES = ['node', 'bun', 'bun-bytecode', 'sea', 'sea-code-cache', 'sea-snapshot', 'deno'] as const;
export type EntryPointName = (typeof ENTRY_POINT_NAMES)[number];

/** One built candidate. */
export interface EntryPoint {
  readonly name: EntryPointName;
  readonly description: string;
  /** The file a runtime would exec as `podnet`. */
  readonly binary: string;
  readonly sizeBytes: number;
}

/** The outcome of building the candidates. */
export interface EntryPointBuild {
  readonly built: EntryPoint[];
  readonly skipped: { readonly name: EntryPointName; readonly reason: string }[];
}

/** Where the benchmark keeps tools: $BENCH_TOOLS_DIR, else $XDG_CACHE_HOME/podnet/bench-tools (default ~/.cache). */
export function benchToolsDir(): string {
  if (process.env['BENCH_TOOLS_DIR']) return process.env['BENCH_TOOLS_DIR'];
  const base = process.env['XDG_CACHE_HOME'] || join(process.env['HOME'] || homedir(), '.cache');
  return join(base, 'podnet', 'bench-tools');
}

const DESCRIPTIONS: Record<EntryPointName, string> = {
  node: 'esbuild bundle run by node through its env -S shebang',
  bun: 'bun build --compile',
  'bun-bytecode': 'bun build --compile --bytecode (make cni)',
  sea: 'Node 20 single executable application',
  'sea-code-cache': 'Node 20 SEA, useCodeCache',
  'sea-snapshot': 'Node 20 SEA, useSnapshot',
  deno: 'deno compile',
};

/** The first lines of a failed command's output, as one line. */
function firstLines(text: string, n = 3): string {
  return text.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => l.trim()).filter(Boolean).slice(0, n).join(' / ');
}

/** The marker scripts/bench.sh leaves once the tools of BENCH_TOOLS are installed in `dir`. */
export function toolsMarker(dir: string): string {
  return join(dir, `installed-postject-${BENCH_TOOLS.postject}-deno-${BENCH_TOOLS.deno}`);
}

async function ensureTools(dir: string): Promise<void> {
  if (existsSync(toolsMarker(dir))) return;
  throw new Error(`postject ${BENCH_TOOLS.postject} and deno ${BENCH_TOOLS.deno} are not installed in ${dir}: run scripts/bench.sh cni-latency, which installs them there`);
}

/** The deno binary inside the deno npm package's platform dependency. */
function denoBinary(toolsDir: string): string {
  return join(toolsDir, 'node_modules', '@deno', `linux-${process.arch === 'arm64' ? 'arm64' : 'x64'}-glibc`, 'deno');
}

/** Runs cni/build.mjs with `args`; throws with its stderr on failure. */
async function buildMjs(args: string[]): Promise<void> {
  await runOk(process.execPath, [join(REPO_ROOT, 'cni', 'build.mjs'), ...args], { timeoutMs: 300_000, cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' } });
}

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** A Node SEA of `script` (CommonJS, no shebang) built with `config` extras into `out`. */
async function buildSea(work: string, toolsDir: string, name: string, script: string, config: Record<string, unknown>): Promise<string> {
  const main = join(work, `${name}.cjs`);
  const blob = join(work, `${name}.blob`);
  const out = join(work, name);
  await writeFile(main, script);
  const cfg = join(work, `${name}.json`);
  await writeFile(cfg, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, ...config }));
  await runOk(process.execPath, ['--experimental-sea-config', cfg], { timeoutMs: 120_000, cwd: work });
  await copyFile(process.execPath, out);
  await runOk(process.execPath, [join(toolsDir, 'node_modules', 'postject', 'dist', 'cli.js'), out, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { timeoutMs: 300_000 });
  await chmod(out, 0o755);
  return out;
}

/** Fails unless `binary` answers VERSION with an empty environment. */
async function checkVersion(binary: string): Promise<void> {
  const r = await run(binary, [], { env: { CNI_COMMAND: 'VERSION' }, input: '', timeoutMs: 30_000 });
  const expected = '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}';
  if (r.code !== 0 || r.stdout.trim() !== expected) {
    throw new Error(`answer VERSION: exit ${r.code}, stdout ${JSON.stringify(firstLines(r.stdout))}, stderr ${JSON.stringify(firstLines(r.stderr))}`);
  }
}

/** Builds each of `names` under `work`; never throws for one candidate, it is skipped with the reason. */
export async function buildEntryPoints(work: string, names: readonly EntryPointName[] = ENTRY_POINT_NAMES): Promise<EntryPointBuild> {
  await mkdir(work, { recursive: true });
  const built: EntryPoint[] = [];
  const skipped: { name: EntryPointName; reason: string }[] = [];
  const toolsDir = benchToolsDir();
  const needsTools = names.some((n) => n.startsWith('sea') || n === 'deno');
  let toolsError: string | undefined;
  if (needsTools) await ensureTools(toolsDir).catch((e: unknown) => (toolsError = `install postject and deno into ${toolsDir}: ${(e as Error).message}`));
  const nodeBundle = join(work, 'podnet.cjs');
  await buildMjs(['--node-bundle', '--outfile', nodeBundle]);
  const script = (await readFile(nodeBundle, 'utf8')).replace(/^#!.*\n/, '');

  for (const name of names) {
    try {
      let binary: string;
      switch (name) {
        case 'node':
          binary = nodeBundle;
          break;
        case 'bun':
          binary = join(work, 'podnet-bun');
          await buildMjs(['--no-bytecode', '--outfile', binary]);
          break;
        case 'bun-bytecode':
          binary = join(work, 'podnet-bun-bytecode');
          await buildMjs(['--outfile', binary]);
          break;
        case 'sea':
        case 'sea-code-cache':
        case 'sea-snapshot': {
          if (toolsError) throw new Error(toolsError);
          const snapshot = name === 'sea-snapshot';
          // Node 20's SEA with a code cache or snapshot has no dynamic import() (ERR "A dynamic import callback
          // was not specified"); the entry point loads node:net lazily that way, so SEAs get a require instead.
          const seaScript = script.replace(/import\("node:net"\)/g, 'Promise.resolve(require("node:net"))');
          // A snapshot runs the script at build time; the deserialized main function then runs the entry point.
          const text = snapshot ? `require('v8').startupSnapshot.setDeserializeMainFunction(() => {\n${seaScript}\n});\n` : seaScript;
          binary = await buildSea(work, toolsDir, `podnet-${name}`, text, { useCodeCache: name === 'sea-code-cache', useSnapshot: snapshot });
          break;
        }
        case 'deno': {
          if (toolsError) throw new Error(toolsError);
          const src = join(work, 'podnet-deno.cjs');
          await writeFile(src, script);
          binary = join(work, 'podnet-deno');
          const r = await run(denoBinary(toolsDir), ['compile', '--no-check', '-A', '--output', binary, src], {
            timeoutMs: 300_000,
            cwd: work,
            env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: work, DENO_DIR: join(work, 'deno-dir'), NO_COLOR: '1' },
          });
          if (r.code !== 0) throw new Error(`deno compile: exit ${r.code}: ${firstLines(r.stderr, 6)}`);
          break;
        }
      }
      await checkVersion(binary);
      built.push({ name, description: DESCRIPTIONS[name], binary, sizeBytes: (await stat(binary)).size });
    } catch (e) {
      skipped.push({ name, reason: (e as Error).message });
    }
  }
  return { built, skipped };
}

/**
 * Peak resident set of one exec of `binary` in KiB, as the kernel accounts
 * it to the waiting parent (GNU time's %M, from wait4's ru_maxrss).
 */
export async function peakRssKiB(binary: string, env: Readonly<Record<string, string>>, input: string): Promise<number> {
  const out = join(process.env['TMPDIR'] ?? '/tmp', `podnet-bench-rss-${process.pid}-${Math.random().toString(16).slice(2)}`);
  try {
    const r = await run('/usr/bin/time', ['-f', '%M', '-o', out, binary], { env: { ...env }, input, timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`measure peak RSS of ${binary}: exit ${r.code}: ${firstLines(r.stdout + r.stderr)}`);
    const kib = Number((await readFile(out, 'utf8')).trim().split('\n').pop());
    if (!Number.isFinite(kib)) throw new Error(`measure peak RSS of ${binary}: GNU time printed no number`);
    return kib;
  } finally {
    await rm(out, { force: true });
  }
}
