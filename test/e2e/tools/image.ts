/** The busybox OCI image the containerd tests run, built by scripts/busybox-image.sh. */
import { join } from 'node:path';
import { runOk } from './proc.js';
import { BUILD_DIR, REPO_ROOT } from './repo.js';

/** The name the image is imported under. */
export const BUSYBOX_IMAGE = 'podnet.local/busybox:test';

/** Where `buildBusyboxImage` writes the archive by default. */
export const DEFAULT_BUSYBOX_TAR = join(BUILD_DIR, 'busybox-image.tar');

/** Builds the OCI archive from Debian's busybox-static; resolves with its path. */
export async function buildBusyboxImage(out: string = DEFAULT_BUSYBOX_TAR, name: string = BUSYBOX_IMAGE): Promise<string> {
  await runOk('bash', [join(REPO_ROOT, 'scripts', 'busybox-image.sh'), out, name], { timeoutMs: 300_000 });
  return out;
}
