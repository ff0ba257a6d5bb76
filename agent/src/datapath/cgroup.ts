/**
 * Finding the cgroup v2 root the socket programs attach at. On a hybrid
 * (v1 + v2) host it is wherever the unified hierarchy is mounted, e.g.
 * /sys/fs/cgroup/unified; on a pure v2 host /sys/fs/cgroup.
 */
import { readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { PodnetError } from '../errors/index.js';

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The mount point of the cgroup v2 hierarchy's root in a /proc/<pid>/mountinfo
 * text: the first cgroup2 mount whose mounted root is "/" (a mount of a
 * subtree would hook only that subtree's processes). An agent in a private
 * cgroup namespace sees the host's hierarchy, bind-mounted in, with a root
 * of only ".." segments (it lies above the namespace's root); such a mount
 * is taken when no "/" mount exists. Undefined when there is neither.
 */
export function findCgroup2Root(mountinfo: string): string | undefined {
  let above: string | undefined;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6 || fields[dash + 1] !== 'cgroup2') continue;
    const root = unescape(fields[3]!);
    if (root === '/') return unescape(fields[4]!);
    if (/^(\/\.\.)+\/?$/.test(root)) above ??= unescape(fields[4]!);
  }
  return above;
}

/**
 * The cgroup v2 root of this process's mount namespace.
 * @throws PodnetError NO_CGROUP when no cgroup v2 hierarchy is mounted.
 */
export function cgroup2Root(mountinfoPath = '/proc/self/mountinfo'): string {
  const root = findCgroup2Root(readFileSync(mountinfoPath, 'utf8'));
  if (root === undefined) {
    throw new PodnetError('NO_CGROUP', `attach socket load balancing: find the cgroup v2 root: ${mountinfoPath} lists no cgroup2 mount of the hierarchy's root (mount one, e.g. mount -t cgroup2 none /sys/fs/cgroup/unified; in a container, mount the host's cgroup2 directory in)`);
  }
  return root;
}

/** statfs f_type of a cgroup v2 mount (CGROUP2_SUPER_MAGIC). */
const CGROUP2_SUPER_MAGIC = 0x63677270;

function isCgroup2(dir: string): boolean {
  try {
    return statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * The cgroup v2 directory an operator named (--cgroup-root): the directory
 * itself when it is cgroup v2, else its `unified/` (a hybrid host's
 * /sys/fs/cgroup mounted whole into a container).
 * @throws PodnetError NO_CGROUP when neither is a cgroup v2 mount.
 */
export function resolveCgroup2Dir(dir: string): string {
  if (isCgroup2(dir)) return dir;
  const unified = join(dir, 'unified');
  if (isCgroup2(unified)) return unified;
  throw new PodnetError('NO_CGROUP', `attach socket load balancing: cgroup-root ${dir}: neither it nor ${unified} is a cgroup v2 mount`);
}
