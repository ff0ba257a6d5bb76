/**
 * Memory the Services sources retain for a large cluster: 10k Services and
 * 100k endpoints (one EndpointSlice of 10 endpoints per Service), shaped as
 * a kube-apiserver sends them (managedFields, last-applied annotations,
 * targetRefs, zones, owner references).
 *
 * Variants, interleaved round by round (order reversed every other round),
 * medians reported:
 *   - source: KubeServiceSource, whose informers keep only the fields the
 *     model reads (slimService/slimSlice);
 *   - peer: the same two informers without the transform, i.e. what the
 *     stores would hold with the API objects as they arrive;
 *   - file: FileServiceSource loading the same objects from one YAML file
 *     (retained heap after the load, and the load time).
 * Retained heap is heapUsed after a forced GC with the source synced, minus
 * heapUsed after a forced GC before it started; the transport parses a
 * fresh copy of each JSON page per list, as a real one does.
 *
 * Target (PASS/MISS): the source retains at most 50 MB (a third of the
 * agent's 150 MB RSS budget for 10k Services / 100k endpoints), and less
 * than the peer.
 *
 * Usage: node --import tsx test/bench/services-source-memory.ts [--services 10000]
 *   [--endpoints-per-service 10] [--rounds 3] [--strict]
 * Needs nothing but node (no root).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { stringify } from 'yaml';
import { ApiStatusError, Informer, type KubeObject, type KubeTransport, type ListPage, type ResourceType, type WatchHandle } from '../../agent/src/k8s/index.js';
import { silentLogger } from '../../agent/src/log/index.js';
import { ENDPOINT_SLICES, FileServiceSource, KubeServiceSource, SERVICES, SERVICE_FILE_LIMITS } from '../../agent/src/services/index.js';
import { intOption } from './lib/args.js';
import { NOISE_NOTE } from './lib/runner.js';
import { median, ratio } from './lib/stats.js';
import { fmt, formatTable } from './lib/table.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const { values: args } = parseArgs({ options: { services: { type: 'string' }, 'endpoints-per-service': { type: 'string' }, rounds: { type: 'string' }, strict: { type: 'boolean' } } });
const SERVICE_COUNT = intOption('services', args.services, 10_000);
const PER_SERVICE = intOption('endpoints-per-service', args['endpoints-per-service'], 10);
const ROUNDS = intOption('rounds', args.rounds, 3);
const LIMIT_MB = 50;
const PAGE = 500;

const ip = (base: number, n: number): string => `${base}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
const managedFields = (manager: string): unknown[] => [{
  manager, operation: 'Update', apiVersion: 'v1', time: '2026-12-01T10:00:00Z', fieldsType: 'FieldsV1',
  fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:ports': { '.': {}, 'k:{"port":80,"protocol":"TCP"}': { '.': {}, 'f:name': {}, 'f:port': {}, 'f:protocol': {}, 'f:targetPort': {} } }, 'f:selector': {} } },
}];

function service(i: number): KubeObject {
  const name = `svc-${i}`;
  const spec = {
    type: 'ClusterIP', clusterIP: ip(10, 0x600000 + i), clusterIPs: [ip(10, 0x600000 + i)], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack',
    internalTrafficPolicy: 'Cluster', sessionAffinity: 'None', selector: { app: name },
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }, { name: 'metrics', protocol: 'TCP', port: 9090, targetPort: 9090 }],
  };
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: {
      name, namespace: `ns-${i % 100}`, uid: `6f1c2a4e-0000-4000-8000-${String(i).padStart(12, '0')}`, resourceVersion: String(1000 + i), creationTimestamp: '2026-12-01T10:00:00Z',
      labels: { app: name, 'app.kubernetes.io/part-of': 'bench' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec }) },
      managedFields: managedFields('kubectl-client-side-apply'),
    },
    spec, status: { loadBalancer: {} },
  };
}

function slice(i: number): KubeObject {
  const svc = `svc-${i}`;
  const ns = `ns-${i % 100}`;
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      name: `${svc}-x7k2p`, generateName: `${svc}-`, namespace: ns, uid: `7a2d3b5f-0000-4000-8000-${String(i).padStart(12, '0')}`, resourceVersion: String(50_000 + i),
      creationTimestamp: '2026-12-01T10:00:01Z', generation: 3,
      labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', app: svc },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2026-12-01T10:00:01Z' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: svc, uid: `6f1c2a4e-0000-4000-8000-${String(i).padStart(12, '0')}`, controller: true, blockOwnerDeletion: true }],
      managedFields: managedFields('endpointslice-controller'),
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }, { name: 'metrics', protocol: 'TCP', port: 9090 }],
    endpoints: Array.from({ length: PER_SERVICE }, (_, j) => ({
      addresses: [ip(10, 0xf40000 + i * PER_SERVICE + j)],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node-${(i + j) % 50}`, zone: `zone-${j % 3}`,
      targetRef: { kind: 'Pod', namespace: ns, name: `${svc}-7d9f8c6b5-${String(j).padStart(5, 'a')}`, uid: `8b3e4c6a-0000-4000-8000-${String(i * PER_SERVICE + j).padStart(12, '0')}` },
    })),
  };
}

/** Lists answer fresh parses of pre-serialized pages (as off the wire); watches stay silent. */
class PagedTransport implements KubeTransport {
  readonly server = 'https://bench.invalid';
  private readonly pages = new Map<string, string[]>();
  constructor(byPlural: Record<string, KubeObject[]>) {
    for (const [plural, objs] of Object.entries(byPlural)) {
      const pages: string[] = [];
      for (let i = 0; i < objs.length; i += PAGE) pages.push(JSON.stringify(objs.slice(i, i + PAGE)));
      this.pages.set(plural, pages);
    }
  }
  async list<T extends KubeObject>(type: ResourceType, _s: unknown, page: { limit: number; continueToken?: string }): Promise<ListPage<T>> {
    const pages = this.pages.get(type.plural);
    if (!pages) throw new ApiStatusError(404, `list ${type.plural}: 404 Not Found`);
    const n = Number(page.continueToken ?? '0');
    const items = JSON.parse(pages[n] ?? '[]') as T[];
    return { items, resourceVersion: '100000', ...(n + 1 < pages.length ? { continueToken: String(n + 1) } : {}) };
  }
  async watch(): Promise<WatchHandle> {
    return { abort: () => undefined };
  }
}

const heapMb = (): number => { gc(); gc(); return process.memoryUsage().heapUsed / 2 ** 20; };

async function measureSource(t: KubeTransport): Promise<{ mb: number; ms: number }> {
  const before = heapMb();
  const t0 = performance.now();
  const src = new KubeServiceSource(t, silentLogger());
  let got = false;
  src.start(() => { got = true; });
  for (let i = 0; i < 24_000 && !got; i++) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  if (!got) throw new Error('the source delivered no snapshot within 120 s');
  const mb = heapMb() - before;
  await src.stop();
  return { mb, ms };
}

async function measurePeer(t: KubeTransport): Promise<{ mb: number; ms: number }> {
  const before = heapMb();
  const t0 = performance.now();
  const infs = [SERVICES, ENDPOINT_SLICES].map((type) => new Informer(t, type, {}, {}, silentLogger()));
  for (const i of infs) i.start();
  await Promise.all(infs.map((i) => i.synced));
  const ms = performance.now() - t0;
  const mb = heapMb() - before;
  for (const i of infs) i.stop();
  return { mb, ms };
}

async function measureFile(path: string): Promise<{ mb: number; ms: number }> {
  const before = heapMb();
  const t0 = performance.now();
  const src = new FileServiceSource(path, silentLogger(), { limits: { ...SERVICE_FILE_LIMITS, maxBytes: 512 * 2 ** 20 } });
  let got = false;
  src.start(() => { got = true; });
  const ms = performance.now() - t0;
  if (!got) throw new Error(`the file source did not load ${path}: ${src.lastError}`);
  const mb = heapMb() - before;
  await src.stop();
  return { mb, ms };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-svc-'));
  try {
    let services: KubeObject[] | undefined = Array.from({ length: SERVICE_COUNT }, (_, i) => service(i));
    let slices: KubeObject[] | undefined = Array.from({ length: SERVICE_COUNT }, (_, i) => slice(i));
    const file = join(dir, 'services.yaml');
    writeFileSync(file, [...services, ...slices].map((o) => stringify(o)).join('---\n'));
    const t = new PagedTransport({ services, endpointslices: slices });
    services = slices = undefined;
    const results: Record<'source' | 'peer' | 'file', Array<{ mb: number; ms: number }>> = { source: [], peer: [], file: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order: Array<keyof typeof results> = r % 2 === 0 ? ['source', 'peer', 'file'] : ['file', 'peer', 'source'];
      for (const v of order) {
        results[v].push(v === 'source' ? await measureSource(t) : v === 'peer' ? await measurePeer(t) : await measureFile(file));
      }
    }
    const med = (v: keyof typeof results, k: 'mb' | 'ms'): number => median(results[v].map((x) => x[k]));
    console.log(`Services source memory: ${SERVICE_COUNT} Services, ${SERVICE_COUNT * PER_SERVICE} endpoints (${PER_SERVICE} per slice), ${ROUNDS} rounds, medians`);
    console.log(formatTable(['variant', 'retained heap MB', 'first snapshot ms', 'heap vs peer'], [
      ['source (slim informers)', fmt(med('source', 'mb'), 1), fmt(med('source', 'ms'), 0), fmt(ratio(med('source', 'mb'), med('peer', 'mb')), 2)],
      ['peer (informers, full objects)', fmt(med('peer', 'mb'), 1), fmt(med('peer', 'ms'), 0), '1.00'],
      ['file source (YAML)', fmt(med('file', 'mb'), 1), fmt(med('file', 'ms'), 0), fmt(ratio(med('file', 'mb'), med('peer', 'mb')), 2)],
    ]));
    const ok = med('source', 'mb') <= LIMIT_MB && med('source', 'mb') < med('peer', 'mb');
    console.log(`${ok ? 'PASS' : 'MISS'}: the source retains ${fmt(med('source', 'mb'), 1)} MB (target <= ${LIMIT_MB} MB, a third of the agent's 150 MB budget, and less than the peer's ${fmt(med('peer', 'mb'), 1)} MB)`);
    console.log(NOISE_NOTE);
    if (args.strict && !ok) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
