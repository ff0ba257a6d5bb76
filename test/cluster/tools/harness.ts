/**
 * The test harness's own binaries (Kubernetes, etcd, containerd, the CNI
 * reference plugins, the module-mode libcni driver), built from Go modules by
 * scripts/harness/build.sh into a cache keyed by the versions in
 * scripts/harness/versions.env.
 */
import { dirname, join } from 'node:path';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { runOk } from '../../e2e/tools/proc.js';
import { REPO_ROOT } from '../../e2e/tools/repo.js';

/** Components scripts/harness/build.sh knows. */
export type HarnessComponent = 'kubernetes' | 'etcd' | 'containerd' | 'cni-plugins' | 'cnidriver' | 'pause' | 'coredns';

/** Every binary a build printed, by file name (e.g. `kubectl` -> its path). */
export type HarnessBins = ReadonlyMap<string, string>;

/**
 * Builds what is missing (a no-op on a warm cache) and resolves with where
 * each binary is. A cold Kubernetes build takes tens of minutes on two cores.
 */
export async function buildHarness(components: readonly HarnessComponent[], timeoutMs = 3_600_000): Promise<HarnessBins> {
  const res = await runOk('bash', [join(REPO_ROOT, 'scripts', 'harness', 'build.sh'), ...components], { timeoutMs });
  const bins = new Map<string, string>();
  for (const line of res.stdout.split('\n')) {
    const path = line.trim();
    if (path.startsWith('/')) bins.set(path.slice(path.lastIndexOf('/') + 1), path);
  }
  return bins;
}

/** The path of one built binary; throws when the build did not print it. */
export function harnessBin(bins: HarnessBins, name: string): string {
  const path = bins.get(name);
  if (!path) throw new PodnetError('NOT_FOUND', `find harness binary ${name}: not built (have ${[...bins.keys()].join(', ')})`);
  return path;
}

/** The directory holding one built binary (a CNI_PATH entry for the plugins). */
export function harnessBinDir(bins: HarnessBins, name: string): string {
  return dirname(harnessBin(bins, name));
}
