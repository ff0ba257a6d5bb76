/**
 * The test harness's binaries the e2e and integration tiers use: the CNI
 * reference plugins, the libcni driver and Prometheus, built from Go modules
 * by scripts/harness/build.sh into a cache outside the checkout keyed by the
 * versions in scripts/harness/versions.env. `make test` builds them first,
 * so here the build is a no-op that prints where they are.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { cleanEnv, commandError, run } from './proc.js';
import { REPO_ROOT } from './repo.js';

/** The harness components these tiers use (scripts/harness/build.sh names). */
export type TestHarnessComponent = 'cni-plugins' | 'cnidriver' | 'prometheus';

/** Every binary of one component, by file name (`ptp` -> its path). */
export type HarnessBinaries = ReadonlyMap<string, string>;

const BUILD_SH = join(REPO_ROOT, 'scripts', 'harness', 'build.sh');
/** A cold build of every component on two shared cores takes minutes; bound it. */
const BUILD_TIMEOUT_MS = 1_800_000;

/**
 * The environment of a harness build: only PATH, plus the variables that choose the
 * cache, so a test finds what `make` built under the same settings.
 */
export function harnessEnv(): NodeJS.ProcessEnv {
  const extra: Record<string, string> = {};
  for (const k of ['PODNET_HARNESS_CACHE', 'XDG_CACHE_HOME', 'HOME'] as const) {
    const v = process.env[k];
    if (v !== undefined) extra[k] = v;
  }
  return cleanEnv(extra);
}

function parseBins(component: string, stdout: string): HarnessBinaries {
  const bins = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const path = line.trim();
    if (path.startsWith('/')) bins.set(path.slice(path.lastIndexOf('/') + 1), path);
  }
  if (bins.size === 0) throw new PodnetError('NOT_FOUND', `build harness component ${component}: build.sh printed no binary`);
  return bins;
}

const built = new Map<TestHarnessComponent, Promise<HarnessBinaries>>();

/** Builds one component when it is missing (once per process) and resolves with its binaries. */
export function harnessBinaries(component: TestHarnessComponent): Promise<HarnessBinaries> {
  let p = built.get(component);
  if (!p) {
    p = run('bash', [BUILD_SH, component], { env: harnessEnv(), timeoutMs: BUILD_TIMEOUT_MS }).then((res) => {
      if (res.code !== 0) throw commandError(res);
      return parseBins(component, res.stdout);
    });
    // A failed build is not remembered: the next caller tries again.
    p.catch(() => built.delete(component));
    built.set(component, p);
  }
  return p;
}

const builtSync = new Map<TestHarnessComponent, HarnessBinaries>();

/**
 * The same for callers that cannot wait (a synchronous helper such as
 * promtool's metrics lint): blocks while build.sh runs, which is a tenth
 * of a second once the component is built.
 */
export function harnessBinariesSync(component: TestHarnessComponent): HarnessBinaries {
  const have = builtSync.get(component);
  if (have) return have;
  const r = spawnSync('bash', [BUILD_SH, component], { env: harnessEnv(), encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
  if (r.error) throw new PodnetError('SPAWN_FAILED', `build harness component ${component}: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0) throw new PodnetError('COMMAND_FAILED', `build harness component ${component}: exit ${r.status}: ${r.stderr.trim().split('\n').slice(-5).join('\n')}`);
  const bins = parseBins(component, r.stdout);
  builtSync.set(component, bins);
  return bins;
}

/** One binary of a component; throws when the build did not print it. */
export function harnessBinary(bins: HarnessBinaries, name: string): string {
  const path = bins.get(name);
  if (!path) throw new PodnetError('NOT_FOUND', `find harness binary ${name}: not built (have ${[...bins.keys()].join(', ')})`);
  return path;
}

/**
 * The directory of the CNI reference plugins (containernetworking/plugins at
 * CNI_PLUGINS_VERSION): the CNI_PATH entry for chaining tests and the
 * benchmark's peers. Builds them when missing.
 */
export async function referencePluginDir(): Promise<string> {
  return dirname(harnessBinary(await harnessBinaries('cni-plugins'), 'ptp'));
}
