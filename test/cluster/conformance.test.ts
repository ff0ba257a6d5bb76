/**
 * The upstream Kubernetes Services conformance set on the one-node cluster
 * with podnet as the only Service proxy: no kube-proxy runs, so every
 * ClusterIP, NodePort, session-affinity and no-endpoint reject the tests
 * exercise is podnet's doing. The e2e network tests are built from the
 * cluster's own Kubernetes module (scripts/harness/e2e.sh), with their
 * images built locally under their upstream names; the selected tests are
 * scripts/cluster/conformance.txt and scripts/cluster/conformance.sh runs
 * them. docs/conformance.md has the table and the kube-proxy reference.
 * This file owns the cluster's lifecycle, like every file of the tier.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../e2e/tools/index.js';
import { cleanEnv, run, runOk } from '../e2e/tools/proc.js';
import { clusterDown, clusterUp, kubectlOk } from './tools/cluster.js';

const SCRIPTS = join(REPO_ROOT, 'scripts', 'cluster');
const REPORT_DIR = join(REPO_ROOT, 'build', 'conformance');
/** ginkgo's own bound on the run (conformance.sh), and this test's, a little longer. */
const GINKGO_TIMEOUT = '20m';
const RUN_TIMEOUT_MS = 24 * 60_000;

/** One spec of ginkgo's JSON report (the fields read here). */
interface SpecReport {
  ContainerHierarchyTexts: string[] | null;
  LeafNodeText: string;
  LeafNodeType: string;
  State: string;
  RunTime: number;
  Failure?: { Message?: string; Location?: { FileName?: string; LineNumber?: number } };
}

/** The listed tests of scripts/cluster/conformance.txt, by full name. */
async function selectedTests(): Promise<string[]> {
  const text = await readFile(join(SCRIPTS, 'conformance.txt'), 'utf8');
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** The specs that were selected to run (not skipped by focus), by full name, from ginkgo's JSON report. */
function ranSpecs(report: unknown): Map<string, SpecReport> {
  const suites = report as Array<{ SpecReports?: SpecReport[] }>;
  const out = new Map<string, SpecReport>();
  for (const suite of suites) {
    for (const s of suite.SpecReports ?? []) {
      if (s.LeafNodeType !== 'It') continue;
      const name = [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(' ').trim();
      // Specs left out by the focus are reported as skipped with no run time.
      if (s.State === 'skipped' && s.RunTime === 0 && !s.Failure?.Message) continue;
      out.set(name, s);
    }
  }
  return out;
}

describe('the upstream Services conformance set passes with podnet and no kube-proxy', () => {
  before(async () => {
    await clusterDown();
    await clusterUp();
    await runOk('bash', [join(SCRIPTS, 'dns.sh'), 'up'], { timeoutMs: 900_000 });
  }, { timeout: 3_600_000 });

  after(async () => {
    // No kubectl here: once the namespace is gone the API server's address
    // is routed off the machine.
    await clusterDown();
  }, { timeout: 300_000 });

  test('kube-proxy is not running and no KUBE-SERVICES rules exist: podnet is the only Service proxy', async () => {
    const status = await run('bash', [join(SCRIPTS, 'kube-proxy.sh'), 'status']);
    assert.notEqual(status.code, 0, `kube-proxy runs (${status.stdout.trim()})`);
    const nat = await runOk('iptables-save', ['-t', 'nat']);
    assert.doesNotMatch(nat.stdout, /^:KUBE-SERVICES /m, 'no kube-proxy iptables chain');
    const nft = await run('nft', ['list', 'table', 'ip', 'kube-proxy']);
    assert.notEqual(nft.code, 0, 'no kube-proxy nftables table');
  });

  test('cluster DNS (CoreDNS behind the kube-dns Service) becomes available, reaching the API server through the kubernetes Service', { timeout: 300_000 }, async () => {
    await runOk('bash', [join(SCRIPTS, 'dns.sh'), 'wait'], { timeoutMs: 240_000 });
    const ip = (await kubectlOk(['-n', 'kube-system', 'get', 'service', 'kube-dns', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    assert.equal(ip, '10.222.0.10');
  });

  test('every selected [sig-network] test passes: the Services conformance tests and the widened set Cilium skips', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    const selected = await selectedTests();
    assert.ok(selected.length >= 18, `the list names the 18 Services conformance tests and more (has ${selected.length})`);
    const res = await run('bash', [join(SCRIPTS, 'conformance.sh')], {
      timeoutMs: RUN_TIMEOUT_MS,
      env: cleanEnv({ CONFORMANCE_REPORT_DIR: REPORT_DIR, CONFORMANCE_TIMEOUT: GINKGO_TIMEOUT }),
    });
    assert.ok(!res.timedOut, `conformance.sh finished within ${RUN_TIMEOUT_MS / 60_000} min (log: ${REPORT_DIR}/e2e.log)`);
    const specs = ranSpecs(JSON.parse(await readFile(join(REPORT_DIR, 'report.json'), 'utf8')));
    const problems: string[] = [];
    for (const name of selected) {
      const s = specs.get(name);
      if (!s) problems.push(`${name}: did not run`);
      else if (s.State !== 'passed') {
        const where = s.Failure?.Location ? ` (${s.Failure.Location.FileName}:${s.Failure.Location.LineNumber})` : '';
        problems.push(`${name}: ${s.State}${where}: ${(s.Failure?.Message ?? '').split('\n')[0]}`);
      }
    }
    for (const name of specs.keys()) if (!selected.includes(name)) problems.push(`${name}: ran but is not in the list`);
    assert.deepEqual(problems, [], `every selected test passed (full log: ${REPORT_DIR}/e2e.log)`);
    assert.equal(res.code, 0, `ginkgo exited 0 (${res.stderr.trim().split('\n').slice(-3).join(' | ')})`);
  });
});
