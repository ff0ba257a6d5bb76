/**
 * The one-node cluster with podnet (scripts/cluster/up.sh): the warm
 * `make cluster` time (from no cluster to a Ready Node and a ready podnet
 * DaemonSet, every harness binary and the image base cached), and the time
 * from `kubectl apply` of a busybox pod to its phase Running, through podnet
 * (kubelet -> containerd CRI -> podnet entry point -> agent), against a
 * hostNetwork pod (no CNI call) as the peer. Pods run one at a time, the two
 * kinds alternating, each deleted before the next. Prints medians, p90 and
 * the ratio podnet / hostNetwork. Tears the cluster down at the end.
 *
 *   node --import tsx test/bench/cluster-pods.ts [--pods N] [--ups N]
 */
import { NOISE_NOTE, fmt, formatTable, machineInfo, percentile, printJsonSummary, ratio, rotation } from './lib/index.js';
import { intOption } from './lib/args.js';
import { clusterDown, clusterUp, kubectlOk } from '../cluster/tools/cluster.js';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const pods = intOption('pods', opt('--pods'), 20);
const ups = intOption('ups', opt('--ups'), 3);

type Kind = 'podnet' | 'hostNetwork';

function manifest(name: string, kind: Kind): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      hostNetwork: kind === 'hostNetwork',
      terminationGracePeriodSeconds: 0,
      enableServiceLinks: false,
      containers: [{ name: 'box', image: 'docker.io/library/busybox:1.36', command: ['sleep', '3600'] }],
    },
  });
}

/** kubectl apply to phase Running, ms; the pod is deleted afterwards. */
async function applyToRunning(name: string, kind: Kind): Promise<number> {
  const t0 = performance.now();
  await kubectlOk(['apply', '-f', '-'], { input: manifest(name, kind) });
  const deadline = t0 + 120_000;
  for (;;) {
    const phase = (await kubectlOk(['get', 'pod', name, '-o', 'jsonpath={.status.phase}'])).trim();
    if (phase === 'Running') break;
    if (performance.now() > deadline) throw new Error(`pod ${name} (${kind}): not Running after 120 s (phase ${phase || 'none'})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const ms = performance.now() - t0;
  await kubectlOk(['delete', 'pod', name, '--wait=true', '--timeout=60s'], { timeoutMs: 70_000 });
  return ms;
}

function row(name: string, v: number[], peer: number[] | undefined): (string | number)[] {
  const p50 = percentile(v, 50);
  return [name, String(v.length), p50, percentile(v, 90), peer ? fmt(ratio(p50, percentile(peer, 50))) : '-'];
}

async function main(): Promise<void> {
  const upMs: number[] = [];
  for (let i = 0; i < ups; i++) {
    await clusterDown();
    const t0 = performance.now();
    await clusterUp();
    upMs.push(performance.now() - t0);
  }
  const samples: Record<Kind, number[]> = { podnet: [], hostNetwork: [] };
  try {
    // One warm-up of each kind: the first pod of a kind pays one-off costs.
    for (const k of ['podnet', 'hostNetwork'] as const) await applyToRunning(`pn-bench-warm-${k.toLowerCase()}`, k);
    for (let i = 0; i < pods; i++) {
      for (const k of rotation(['podnet', 'hostNetwork'] as const, i)) samples[k].push(await applyToRunning(`pn-bench-${k.toLowerCase()}-${i}`, k));
    }
  } finally {
    await clusterDown();
  }
  console.log(`make cluster (warm, with podnet): ${upMs.map((v) => fmt(v / 1000, 1)).join(', ')} s; median ${fmt(percentile(upMs, 50) / 1000, 1)} s`);
  console.log('\nkubectl apply to Running, one pod at a time (ms)');
  console.log(formatTable(['pod', 'n', 'p50', 'p90', 'p50 / hostNetwork'], [row('podnet', samples.podnet, samples.hostNetwork), row('hostNetwork', samples.hostNetwork, undefined)]));
  console.log(`\n${NOISE_NOTE}`);
  printJsonSummary({ machine: machineInfo(), makeClusterMs: upMs, applyToRunningMs: samples });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
