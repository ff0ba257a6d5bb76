/**
 * Cleanup for what the reference portmap plugin leaves in the host's nat
 * table: its DEL removes a pod's own chain, but never the shared
 * CNI-HOSTPORT-* chains or the jumps into them.
 */
import { run, runOk } from './proc.js';

const PORTMAP_CHAIN = /^(CNI-HOSTPORT-|CNI-DN-|CNI-SN-)/;

/** Names of the user-defined chains in the nat table. */
export async function natChains(): Promise<Set<string>> {
  const res = await runOk('iptables-save', ['-t', 'nat'], { timeoutMs: 10_000 });
  const chains = new Set<string>();
  for (const line of res.stdout.split('\n')) {
    const m = line.match(/^:(\S+) - /);
    if (m?.[1]) chains.add(m[1]);
  }
  return chains;
}

/** The nat rules (as `iptables-save` prints them) that mention `needle`. */
export async function natRulesMatching(needle: string): Promise<string[]> {
  const res = await runOk('iptables-save', ['-t', 'nat'], { timeoutMs: 10_000 });
  return res.stdout.split('\n').filter((l) => l.startsWith('-A ') && l.includes(needle));
}

/**
 * Removes portmap's chains that are not in `keep` (a `natChains()` snapshot
 * taken before the test), with every rule jumping into them. Chains that
 * existed before stay untouched.
 */
export async function removePortmapChains(keep: ReadonlySet<string>): Promise<void> {
  const doomed = [...(await natChains())].filter((c) => PORTMAP_CHAIN.test(c) && !keep.has(c));
  if (doomed.length === 0) return;
  const res = await runOk('iptables-save', ['-t', 'nat'], { timeoutMs: 10_000 });
  for (const line of res.stdout.split('\n')) {
    const m = line.match(/^-A (\S+) (.*) -j (\S+)$/);
    if (!m?.[1] || !m[2] || !m[3] || !doomed.includes(m[3]) || doomed.includes(m[1])) continue;
    // iptables-save prints quoted comments; splitting on spaces would break
    // them, so delete by the jump's position in its chain instead.
    await deleteRuleBySpec(m[1], line);
  }
  for (const c of doomed) await run('iptables', ['-t', 'nat', '-F', c], { timeoutMs: 10_000 });
  for (const c of doomed) await run('iptables', ['-t', 'nat', '-X', c], { timeoutMs: 10_000 });
}

async function deleteRuleBySpec(chain: string, saved: string): Promise<void> {
  const res = await runOk('iptables-save', ['-t', 'nat'], { timeoutMs: 10_000 });
  const rules = res.stdout.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
  const index = rules.indexOf(saved);
  if (index >= 0) await run('iptables', ['-t', 'nat', '-D', chain, String(index + 1)], { timeoutMs: 10_000 });
}
