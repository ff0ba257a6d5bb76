#!/usr/bin/env node
/**
 * Builds the CNI entry point (cni/src/main.ts) into one self-contained
 * executable, build/cni/podnet: esbuild bundles the TypeScript into one
 * minified CommonJS file and refuses bundles that pull in anything beyond
 * cni/src, the shared wire protocol and a few node built-ins; then
 * `bun build --compile` (npm package `bun`, a devDependency) turns that
 * bundle into an ELF executable that carries its runtime, so a node needs
 * no `node` and no PATH. docs/architecture.md ("The CNI entry point
 * executable") records why bun and not Node's SEA or deno compile.
 *
 *   node cni/build.mjs [--outfile <path>] [--no-bytecode] executable (default build/cni/podnet)
 *   node cni/build.mjs --node-bundle [--outfile <path>]   the bundle alone, run by node through its
 *                                                         shebang (default build/cni/podnet.cjs)
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Shebang of the node bundle. `env -S` splits the line; `-u` drops variables
 * the runtime's environment may carry that slow node's start-up
 * (NODE_EXTRA_CA_CERTS makes node parse a CA bundle before running any code)
 * or change its behaviour (NODE_OPTIONS could --require arbitrary code).
 */
export const SHEBANG = '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS -u NODE_OPTIONS -u NODE_V8_COVERAGE node';

/** The only modules the bundle may load at run time. */
export const ALLOWED_BUILTINS = new Set(['node:fs', 'node:path', 'node:net']);

/** Where `make cni` puts the executable. */
export const DEFAULT_EXECUTABLE = resolve(root, 'build/cni/podnet');

/**
 * Environment variables bun's runtime reads before any of our code runs and
 * that replace the program: BUN_BE_BUN=1 turns the executable into the bun
 * CLI, BUN_OPTIONS prepends CLI flags (`--preload FILE` runs any code). A
 * runtime's environment is not ours to trust, so the executable's copy of
 * these names is overwritten with a name no environment can hold (it starts
 * with a NUL byte); the build then proves both are inert.
 */
export const NEUTRALISED_ENV = ['BUN_BE_BUN', 'BUN_OPTIONS'];

/**
 * Bundles cni/src/main.ts into `outfile` (CommonJS, with `banner` as its
 * first line when given) and returns its path. Throws when the bundle
 * reads inputs outside cni/src and the shared protocol file, or loads a
 * module outside ALLOWED_BUILTINS.
 */
export async function bundleCni(outfile, { banner } = {}) {
  mkdirSync(dirname(outfile), { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: [resolve(root, 'cni/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    ...(banner ? { banner: { js: banner } } : {}),
    metafile: true,
    logLevel: 'warning',
  });
  const srcDir = `cni${sep}src${sep}`;
  // The wire protocol (types and error codes, no imports) is shared with the agent.
  const shared = new Set([`agent${sep}src${sep}api${sep}protocol.ts`, `agent${sep}src${sep}api${sep}cni-error.ts`, `agent${sep}src${sep}errors${sep}base.ts`]);
  const strays = Object.keys(result.metafile.inputs).map((p) => p.split('/').join(sep)).filter((p) => !p.startsWith(srcDir) && !shared.has(p));
  if (strays.length > 0) throw new Error(`bundle CNI entry point: inputs outside cni/src: ${strays.join(', ')}`);
  const output = result.metafile.outputs[relative(root, outfile).split(sep).join('/')];
  if (!output) throw new Error(`bundle CNI entry point: esbuild reported no output for ${outfile}`);
  const imports = output.imports.map((i) => i.path).filter((p) => !ALLOWED_BUILTINS.has(p));
  if (imports.length > 0) throw new Error(`bundle CNI entry point: loads modules outside ${[...ALLOWED_BUILTINS].join(', ')}: ${imports.join(', ')}`);
  return outfile;
}

/** Builds the node bundle (shebang, mode 0755) into `outfile`; the entry point before the executable, kept for comparison. */
export async function buildNodeBundle(outfile = resolve(root, 'build/cni/podnet.cjs')) {
  await bundleCni(outfile, { banner: SHEBANG });
  chmodSync(outfile, 0o755);
  return outfile;
}

function isElf(path) {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    closeSync(fd);
  }
}

/**
 * The bun binary the npm package `bun` installed. Its platform binary sits
 * in an optional dependency (@oven/bun-<os>-<arch>[-musl|-baseline]); the
 * package's postinstall links it to bun/bin/bun.exe, and some installs
 * carry it there already. Throws naming every place looked at.
 */
export function findBun() {
  const require = createRequire(join(root, 'package.json'));
  const arch = process.arch === 'arm64' ? 'aarch64' : process.arch;
  const candidates = [];
  for (const suffix of ['', '-baseline', '-musl', '-musl-baseline']) {
    try {
      candidates.push(join(dirname(require.resolve(`@oven/bun-${process.platform}-${arch}${suffix}/package.json`)), 'bin', 'bun'));
    } catch {
      // not installed for this platform
    }
  }
  try {
    candidates.push(join(dirname(require.resolve('bun/package.json')), 'bin', 'bun.exe'));
  } catch {
    // handled below
  }
  for (const c of candidates) if (existsSync(c) && isElf(c)) return c;
  throw new Error(`find bun: no bun executable in ${candidates.join(', ') || 'node_modules (package bun is not installed)'}: run npm ci`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...opts });
  if (r.error) throw new Error(`run ${cmd}: ${r.error.code ?? r.error.message}`);
  return r;
}

/** Overwrites each name in `names` inside the file with a NUL-led copy; returns how often each was found. */
export function neutraliseEnvNames(path, names = NEUTRALISED_ENV) {
  const buf = readFileSync(path);
  const found = {};
  for (const name of names) {
    const needle = Buffer.from(name);
    let n = 0;
    for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + needle.length)) {
      buf[i] = 0;
      n++;
    }
    found[name] = n;
  }
  writeFileSync(path, buf);
  return found;
}

/** The VERSION answer every build of the entry point must print. */
const VERSION_ANSWER = '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\n';

/**
 * Runs the executable with an empty environment plus CNI_COMMAND=VERSION and
 * each `hostile` variable; throws unless every run prints the VERSION answer
 * and exits 0.
 */
export function checkExecutable(path, hostile = [{}, { BUN_BE_BUN: '1' }, { BUN_OPTIONS: '--help' }]) {
  for (const extra of hostile) {
    const r = run(path, [], { env: { ...extra, CNI_COMMAND: 'VERSION' }, input: '', timeout: 30_000 });
    if (r.status !== 0 || r.stdout !== VERSION_ANSWER) {
      const what = Object.keys(extra).length > 0 ? ` with ${JSON.stringify(extra)}` : '';
      throw new Error(`check CNI executable ${path}${what}: exit ${r.status ?? r.signal}, stdout ${JSON.stringify(r.stdout.slice(0, 200))}, stderr ${JSON.stringify(r.stderr.slice(0, 200))}`);
    }
  }
}

/**
 * Builds the executable into `outfile` (mode 0755) and returns its path.
 * `bytecode` adds bun's bytecode cache (faster start, larger file).
 * Throws when the bundle breaks the layering rules, bun is missing or
 * fails, or the result does not answer VERSION in a hostile environment.
 */
export async function buildCni(outfile = DEFAULT_EXECUTABLE, { bytecode = true, bun = findBun() } = {}) {
  const work = `${outfile}.build`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const bundle = await bundleCni(join(work, 'podnet.cjs'));
    const exe = join(work, 'podnet');
    // No .env, bunfig.toml, tsconfig.json or package.json from the runtime's working directory may change the program.
    const args = [
      'build', '--compile', '--target=bun', '--format=cjs', ...(bytecode ? ['--bytecode'] : []),
      '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig', '--no-compile-autoload-tsconfig', '--no-compile-autoload-package-json',
      bundle, '--outfile', exe,
    ];
    // bun itself runs in a clean environment, so nothing in ours changes what it builds.
    const r = run(bun, args, { cwd: work, env: { PATH: '/usr/bin:/bin', HOME: work } });
    if (r.status !== 0) throw new Error(`compile CNI entry point with ${bun}: exit ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
    const found = neutraliseEnvNames(exe);
    const missing = Object.entries(found).filter(([, n]) => n === 0).map(([name]) => name);
    // A bun that no longer names a variable here has moved it: the check below then proves whether it still acts.
    if (missing.length > 0) console.warn(`compile CNI entry point: ${missing.join(', ')} not found in the bun runtime`);
    chmodSync(exe, 0o755);
    checkExecutable(exe);
    mkdirSync(dirname(outfile), { recursive: true });
    renameSync(exe, outfile);
    return outfile;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--outfile');
  const outfile = i >= 0 && argv[i + 1] ? resolve(argv[i + 1]) : undefined;
  const job = argv.includes('--node-bundle') ? buildNodeBundle(outfile) : buildCni(outfile, { bytecode: !argv.includes('--no-bytecode') });
  job.then(
    (p) => console.log(`built ${relative(process.cwd(), p) || p}`),
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
