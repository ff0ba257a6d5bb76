/**
 * Compiles the C programs in bpf/ with clang into a content-addressed cache,
 * so an agent start recompiles only when a source, a header, the flags or
 * the compiler changed. The flags live in bpf/cflags, shared with `make bpf`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PodnetError } from '../errors/index.js';

const run = promisify(execFile);

/** Options of {@link compileBpf}. */
export interface CompileOptions {
  /** The bpf/ source directory (default: the one shipped beside the agent). */
  srcDir?: string;
  /** Where compiled objects are cached; created if missing. */
  cacheDir: string;
  /** The clang binary (default "clang"). */
  clang?: string;
  /**
   * A source file outside srcDir, compiled with srcDir's flags and headers
   * (test fixtures such as test/fixtures/bpf/counter.bpf.c); default
   * <srcDir>/<name>.bpf.c.
   */
  source?: string;
}

/** The result of a compile: where the object is and whether it came from the cache. */
export interface CompiledObject {
  path: string;
  hash: string;
  cached: boolean;
}

/** Finds the bpf/ directory shipped with podnet by walking up from this module. */
export function defaultBpfDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'bpf', 'cflags'))) return join(dir, 'bpf');
    dir = dirname(dir);
  }
  throw new PodnetError('NO_BPF_SOURCE', 'find bpf sources: no bpf/cflags above the agent; pass --bpf-dir');
}

/** The clang flags from bpf/cflags, with include paths made absolute. */
export function bpfCflags(srcDir: string): string[] {
  const root = dirname(resolve(srcDir));
  const flags = readFileSync(join(srcDir, 'cflags'), 'utf8').trim().split(/\s+/);
  return flags.map((f, i) => (flags[i - 1] === '-I' ? resolve(root, f) : f));
}

function listSources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listSources(p));
    else if (/\.(c|h)$|^cflags$/.test(name)) out.push(p);
  }
  return out;
}

let clangIdentity: Promise<{ version: string; sysInclude: string }> | undefined;

async function clangInfo(clang: string): Promise<{ version: string; sysInclude: string }> {
  clangIdentity ??= (async () => {
    const { stdout } = await run(clang, ['--version']);
    // Debian keeps asm/types.h under the multiarch directory, which a
    // -target bpf compile does not search by default.
    const { stdout: triple } = await run(clang, ['-print-target-triple']);
    const multiarch = triple.trim().replace(/-unknown-/, '-').replace(/^x86_64-pc-linux-gnu$/, 'x86_64-linux-gnu');
    return { version: stdout.split('\n')[0] ?? '', sysInclude: `/usr/include/${multiarch}` };
  })();
  return clangIdentity;
}

/**
 * Compiles bpf/<name>.bpf.c (or opts.source) unless an object for the same inputs is cached.
 * @throws PodnetError ECOMPILE with clang's diagnostics when compilation fails.
 */
export async function compileBpf(name: string, opts: CompileOptions): Promise<CompiledObject> {
  const srcDir = resolve(opts.srcDir ?? defaultBpfDir());
  const clang = opts.clang ?? 'clang';
  const source = opts.source ? resolve(opts.source) : join(srcDir, `${name}.bpf.c`);
  if (!existsSync(source)) throw new PodnetError('NO_BPF_SOURCE', `compile ${name}: no source ${source}`);
  let info;
  try {
    info = await clangInfo(clang);
  } catch (err) {
    throw new PodnetError('COMPILE_FAILED', `compile ${name}: run ${clang}: ${(err as Error).message}`, { cause: err });
  }
  const flags = [...bpfCflags(srcDir), '-I', info.sysInclude];
  const h = createHash('sha256');
  h.update(`${info.version}\0${flags.join(' ')}\0${name}\0`);
  for (const file of listSources(srcDir)) {
    h.update(relative(srcDir, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  if (opts.source) h.update(source).update('\0').update(readFileSync(source)).update('\0');
  const hash = h.digest('hex').slice(0, 16);
  const out = join(opts.cacheDir, `${name}-${hash}.bpf.o`);
  if (existsSync(out)) return { path: out, hash, cached: true };

  mkdirSync(opts.cacheDir, { recursive: true, mode: 0o700 });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    await run(clang, [...flags, '-c', source, '-o', tmp], { maxBuffer: 16 << 20 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new PodnetError('COMPILE_FAILED', `compile ${name}: clang failed:\n${stderr.trim().split('\n').slice(-20).join('\n')}`, { cause: err });
  }
  // rename is atomic: a concurrent agent never sees a half-written object.
  renameSync(tmp, out);
  return { path: out, hash, cached: false };
}
