/**
 * The Prometheus server the harness builds from its Go module
 * (`scripts/harness/build.sh prometheus`): Debian's 2.42 has no Kubernetes
 * service discovery.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PodnetError } from '../../../agent/src/errors/index.js';
import { REPO_ROOT } from '../../e2e/tools/repo.js';

/** The harness cache, as scripts/harness/lib.sh finds it. */
export function harnessCache(): string {
  if (process.env['PODNET_HARNESS_CACHE']) return process.env['PODNET_HARNESS_CACHE'];
  if (process.env['XDG_CACHE_HOME']) return join(process.env['XDG_CACHE_HOME'], 'podnet', 'harness');
  return '/var/cache/podnet/harness';
}

/**
 * The built prometheus binary: the version versions.env pins when it names
 * one, else the newest built entry in the cache. Throws naming the missing
 * component when none is built.
 */
export async function prometheusBin(): Promise<string> {
  const cache = harnessCache();
  const versions = readFileSync(join(REPO_ROOT, 'scripts', 'harness', 'versions.env'), 'utf8');
  const pinned = versions.match(/^PROMETHEUS_VERSION=(\S+)$/m)?.[1];
  const entries = pinned ? [`prometheus-${pinned}`] : (existsSync(cache) ? readdirSync(cache) : []).filter((d) => /^prometheus-v[\d.]+$/.test(d)).sort().reverse();
  for (const e of entries) {
    const bin = join(cache, e, 'bin', 'prometheus');
    if (existsSync(join(cache, e, '.built')) && existsSync(bin)) return bin;
  }
  throw new PodnetError('NOT_FOUND', `find prometheus: the harness component prometheus is not built (no ${pinned ? `prometheus-${pinned}` : 'prometheus-v*'}/bin/prometheus in ${cache}); run scripts/harness/build.sh prometheus`);
}
