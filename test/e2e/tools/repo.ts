/** Paths inside the podnet checkout, found from this file's location rather than the working directory. */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The checkout's root directory. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

/** `build/` in the checkout: generated binaries and images, ignored by git. */
export const BUILD_DIR = join(REPO_ROOT, 'build');
