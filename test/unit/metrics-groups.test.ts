/** The metric groups against fake sources: the exposition as Prometheus would read it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointInfo, EndpointState, ReconcileOutcome } from '../../agent/src/api/protocol.js';
import { createMetrics, type MapStat, type MetricsSources } from '../../agent/src/metrics/index.js';
import { DIRECTIONS, DROP_REASONS, type EndpointCounter } from '../../agent/src/metrics/enums.js';
import { findSamples, parseExposition, type Sample } from '../lib/prometheus.js';

const REASONS = DROP_REASONS.filter((r) => r.value !== 0);

function endpoint(id: number, pod: string, state: EndpointState = 'ready'): EndpointInfo {
  return {
    endpointId: id, containerId: `c${id}`.padEnd(64, '0'), ifName: 'eth0', podNamespace: 'shop', podName: pod, ip: `10.9.0.${id}`,
    hostIfName: `pn${id}`, hostIfIndex: 100 + id, podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02', netns: `/run/netns/${pod}`,
    created: '2026-01-01T00:00:00.000Z', state, problems: state === 'unhealthy' ? ['tc ingress filter missing'] : [],
  };
}

function ringbufMap(name: string, bytes: number): MapStat {
  return { name, type: 'ringbuf', maxEntries: bytes, count: () => { throw new Error(`count ${name}: a ring buffer has no entries`); } };
}

/** A fake agent whose fields a test changes between scrapes. */
class FakeAgent implements MetricsSources {
  isReady = true;
  eps: EndpointInfo[] = [];
  rows: EndpointCounter[] = [];
  last: ReconcileOutcome | null = null;
  queue = 0;
  mapList: MapStat[] = [];
  constructor(readonly perPodLabels = true) {}
  ready(): boolean { return this.isReady; }
  mode(): string { return 'clsact'; }
  hostRouting(): string { return 'kernel'; }
  endpoints(): EndpointInfo[] { return this.eps; }
  ipam(): { used: number; free: number } { return { used: this.eps.length, free: 254 - this.eps.length }; }
  lastReconcile(): ReconcileOutcome | null { return this.last; }
  delQueueDepth(): number { return this.queue; }
  maps(): MapStat[] { return this.mapList; }
  counters(): EndpointCounter[] { return this.rows; }
}

async function scrape(m: ReturnType<typeof createMetrics>): Promise<Sample[]> {
  return parseExposition(await m.registry.metrics());
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = findSamples(samples, name, labels).filter((s) => Object.keys(s.labels).length === Object.keys(labels).length);
  assert.equal(found.length, 1, `exactly one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

test('every drop reason is exported at zero for both directions on the first scrape', async () => {
  const samples = await scrape(createMetrics(new FakeAgent()));
  assert.ok(REASONS.length >= 4, 'the generated reasons are there');
  for (const metric of ['podnet_datapath_drop_packets_total', 'podnet_datapath_drop_bytes_total']) {
    const series = findSamples(samples, metric);
    assert.equal(series.length, REASONS.length * DIRECTIONS.length, `${metric}: one series per reason and direction`);
    for (const r of REASONS) for (const direction of DIRECTIONS) assert.equal(value(samples, metric, { reason: r.name, direction }), 0);
    assert.deepEqual(findSamples(samples, metric, { reason: 'none' }), [], `${metric}: "none" is forwarded traffic, not a drop`);
  }
});

test('drops are counted node-wide and per pod when per-pod labels are on', async () => {
  const a = new FakeAgent(true);
  a.eps = [endpoint(1, 'web')];
  a.rows = [
    { endpointId: 1, direction: 'egress', reason: 1, packets: 3n, bytes: 300n },
    { endpointId: 1, direction: 'egress', reason: 0, packets: 10n, bytes: 1000n },
    { endpointId: 7, direction: 'ingress', reason: 4, packets: 2n, bytes: 120n }, // an endpoint that no longer exists
  ];
  const samples = await scrape(createMetrics(a));
  assert.equal(value(samples, 'podnet_datapath_drop_packets_total', { reason: 'spoofed_source', direction: 'egress' }), 3);
  assert.equal(value(samples, 'podnet_datapath_drop_bytes_total', { reason: 'spoofed_source', direction: 'egress' }), 300);
  assert.equal(value(samples, 'podnet_datapath_drop_packets_total', { reason: 'no_endpoint', direction: 'ingress' }), 2);
  assert.equal(value(samples, 'podnet_endpoint_drop_packets_total', { namespace: 'shop', pod: 'web', reason: 'spoofed_source', direction: 'egress' }), 3);
  assert.equal(value(samples, 'podnet_endpoint_drop_bytes_total', { namespace: 'shop', pod: 'web', reason: 'spoofed_source', direction: 'egress' }), 300);
  assert.equal(findSamples(samples, 'podnet_endpoint_drop_packets_total').length, 1, 'a drop of an unknown endpoint has no per-pod series');
  assert.equal(value(samples, 'podnet_endpoint_packets_total', { namespace: 'shop', pod: 'web', direction: 'egress' }), 10);
});

test('with per-pod labels off there is no per-pod drop metric and no pod label anywhere', async () => {
  const a = new FakeAgent(false);
  a.eps = [endpoint(1, 'web'), endpoint(2, 'db')];
  a.rows = [
    { endpointId: 1, direction: 'egress', reason: 1, packets: 3n, bytes: 300n },
    { endpointId: 1, direction: 'ingress', reason: 0, packets: 4n, bytes: 400n },
    { endpointId: 2, direction: 'ingress', reason: 0, packets: 5n, bytes: 500n },
  ];
  const body = await createMetrics(a).registry.metrics();
  const samples = parseExposition(body);
  assert.deepEqual(findSamples(samples, 'podnet_endpoint_drop_packets_total'), []);
  assert.doesNotMatch(body, /pod="/);
  assert.equal(value(samples, 'podnet_endpoint_packets_total', { direction: 'ingress' }), 9);
  assert.equal(value(samples, 'podnet_datapath_drop_packets_total', { reason: 'spoofed_source', direction: 'egress' }), 3);
});

test('node-wide drop totals do not go down when a pod with drops is deleted', async () => {
  const a = new FakeAgent();
  a.eps = [endpoint(1, 'web'), endpoint(2, 'db')];
  a.rows = [
    { endpointId: 1, direction: 'egress', reason: 1, packets: 3n, bytes: 300n },
    { endpointId: 2, direction: 'egress', reason: 1, packets: 5n, bytes: 500n },
  ];
  const m = createMetrics(a);
  const labels = { reason: 'spoofed_source', direction: 'egress' };
  assert.equal(value(await scrape(m), 'podnet_datapath_drop_packets_total', labels), 8);
  // web is deleted: its endpoint and its pn_counters rows are gone.
  a.eps = [endpoint(2, 'db')];
  a.rows = [{ endpointId: 2, direction: 'egress', reason: 1, packets: 6n, bytes: 600n }];
  let samples = await scrape(m);
  assert.equal(value(samples, 'podnet_datapath_drop_packets_total', labels), 9, '3 of web kept, 6 of db');
  assert.equal(value(samples, 'podnet_datapath_drop_bytes_total', labels), 900);
  assert.deepEqual(findSamples(samples, 'podnet_endpoint_drop_packets_total', { pod: 'web' }), [], 'the deleted pod has no series');
  // The same key counted again from zero (a row deleted and made again) keeps the old count too.
  a.rows = [{ endpointId: 2, direction: 'egress', reason: 1, packets: 1n, bytes: 100n }];
  samples = await scrape(m);
  assert.equal(value(samples, 'podnet_datapath_drop_packets_total', labels), 10, '3 + 6 retired, 1 new');
});

test('endpoint health reports every state, at zero when no endpoint is in it', async () => {
  const a = new FakeAgent();
  const m = createMetrics(a);
  let samples = await scrape(m);
  for (const state of ['ready', 'unhealthy', 'deleting']) assert.equal(value(samples, 'podnet_endpoints', { state }), 0);
  a.eps = [endpoint(1, 'a'), endpoint(2, 'b'), endpoint(3, 'c', 'unhealthy'), endpoint(4, 'd', 'deleting')];
  samples = await scrape(m);
  assert.equal(value(samples, 'podnet_endpoints', { state: 'ready' }), 2);
  assert.equal(value(samples, 'podnet_endpoints', { state: 'unhealthy' }), 1);
  assert.equal(value(samples, 'podnet_endpoints', { state: 'deleting' }), 1);
});

test('an endpoint being deleted loses its traffic series at once', async () => {
  const a = new FakeAgent();
  a.eps = [endpoint(1, 'a'), endpoint(2, 'b', 'deleting')];
  a.rows = [
    { endpointId: 1, direction: 'egress', reason: 0, packets: 1n, bytes: 100n },
    { endpointId: 2, direction: 'egress', reason: 0, packets: 2n, bytes: 200n },
  ];
  const samples = await scrape(createMetrics(a));
  assert.equal(value(samples, 'podnet_endpoint_packets_total', { namespace: 'shop', pod: 'a', direction: 'egress' }), 1);
  assert.deepEqual(findSamples(samples, 'podnet_endpoint_packets_total', { pod: 'b' }), []);
});

test('reconcile runs are counted by result from zero, with what they did, and the last run time follows the last outcome', async () => {
  const a = new FakeAgent();
  const m = createMetrics(a);
  let samples = await scrape(m);
  for (const result of ['ok', 'repaired', 'failed']) assert.equal(value(samples, 'podnet_reconcile_runs_total', { result }), 0);
  for (const action of ['repaired', 'removed', 'failed']) assert.equal(value(samples, 'podnet_reconcile_endpoints_total', { action }), 0);
  assert.equal(value(samples, 'podnet_reconcile_last_run_timestamp_seconds', {}), 0, 'no pass yet');

  const first: ReconcileOutcome = { at: '2026-03-01T10:00:00.000Z', result: 'repaired', repaired: 2, removed: 1, failed: 0 };
  const second: ReconcileOutcome = { at: '2026-03-01T10:00:30.500Z', result: 'failed', repaired: 0, removed: 0, failed: 1 };
  a.last = first;
  m.observeReconcile(first, 0.02);
  a.last = second;
  m.observeReconcile(second, 0.3);
  samples = await scrape(m);
  assert.equal(value(samples, 'podnet_reconcile_runs_total', { result: 'repaired' }), 1);
  assert.equal(value(samples, 'podnet_reconcile_runs_total', { result: 'failed' }), 1);
  assert.equal(value(samples, 'podnet_reconcile_runs_total', { result: 'ok' }), 0);
  assert.equal(value(samples, 'podnet_reconcile_endpoints_total', { action: 'repaired' }), 2);
  assert.equal(value(samples, 'podnet_reconcile_endpoints_total', { action: 'removed' }), 1);
  assert.equal(value(samples, 'podnet_reconcile_endpoints_total', { action: 'failed' }), 1);
  assert.equal(value(samples, 'podnet_reconcile_duration_seconds_count', {}), 2);
  assert.equal(value(samples, 'podnet_reconcile_duration_seconds_sum', {}), 0.32);
  assert.equal(value(samples, 'podnet_reconcile_last_run_timestamp_seconds', {}), Date.parse(second.at) / 1000);
});

test('the DEL queue depth, readiness, attach mode, host routing and IPAM usage are read at scrape time', async () => {
  const a = new FakeAgent();
  a.isReady = false;
  a.queue = 3;
  a.eps = [endpoint(1, 'a')];
  const samples = await scrape(createMetrics({ ...bind(a), version: '9.9.9' }));
  assert.equal(value(samples, 'podnet_cni_del_queue_requests', {}), 3);
  assert.equal(value(samples, 'podnet_agent_ready', {}), 0);
  assert.equal(value(samples, 'podnet_agent_info', { version: '9.9.9', datapath_mode: 'clsact', host_routing: 'kernel' }), 1);
  assert.equal(value(samples, 'podnet_ipam_addresses', { state: 'used' }), 1);
  assert.equal(value(samples, 'podnet_ipam_addresses', { state: 'free' }), 253);
});

/** The fake's methods bound, so a spread copy still reads the fake's fields. */
function bind(a: FakeAgent): MetricsSources {
  return {
    ready: () => a.ready(), mode: () => a.mode(), hostRouting: () => a.hostRouting(), endpoints: () => a.endpoints(), ipam: () => a.ipam(), lastReconcile: () => a.lastReconcile(),
    delQueueDepth: () => a.delQueueDepth(), maps: () => a.maps(), counters: () => a.counters(), perPodLabels: a.perPodLabels,
  };
}

test('API errors are counted by route and status, and requests that matched no route share one label', async () => {
  const m = createMetrics(new FakeAgent());
  m.observeApiError('POST /v1/cni/add', 500);
  m.observeApiError('POST /v1/cni/add', 500);
  m.observeApiError('POST /v1/cni/add', 400);
  m.observeApiError(undefined, 404);
  m.observeApiError(undefined, 404);
  const samples = await scrape(m);
  assert.equal(value(samples, 'podnet_api_errors_total', { route: 'POST /v1/cni/add', code: '500' }), 2);
  assert.equal(value(samples, 'podnet_api_errors_total', { route: 'POST /v1/cni/add', code: '400' }), 1);
  assert.equal(value(samples, 'podnet_api_errors_total', { route: 'unmatched', code: '404' }), 2);
  assert.equal(findSamples(samples, 'podnet_api_errors_total').length, 3);
});

test('ring buffers are reported by their size in bytes, never as map entries or capacity', async () => {
  const a = new FakeAgent();
  a.mapList = [
    { name: 'pn_endpoints', type: 'hash', maxEntries: 1024, count: () => 3 },
    ringbufMap('pn_events', 256 * 1024),
  ];
  const samples = await scrape(createMetrics(a));
  assert.equal(value(samples, 'podnet_bpf_map_entries', { map: 'pn_endpoints' }), 3);
  assert.equal(value(samples, 'podnet_bpf_map_max_entries', { map: 'pn_endpoints' }), 1024);
  assert.equal(value(samples, 'podnet_bpf_ringbuf_size_bytes', { map: 'pn_events' }), 262144);
  assert.deepEqual(findSamples(samples, 'podnet_bpf_map_entries', { map: 'pn_events' }), []);
  assert.deepEqual(findSamples(samples, 'podnet_bpf_map_max_entries', { map: 'pn_events' }), []);
  assert.deepEqual(findSamples(samples, 'podnet_bpf_ringbuf_size_bytes', { map: 'pn_endpoints' }), []);
});

test('process and Node.js runtime metrics are on the agent registry, unprefixed', async () => {
  const samples = await scrape(createMetrics(new FakeAgent()));
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'process_open_fds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    assert.equal(findSamples(samples, name).length, 1, `${name} is exported`);
  }
  assert.ok(findSamples(samples, 'nodejs_version_info').length === 1, 'nodejs_version_info is exported');
});

test('no gauge or histogram carries a counter suffix (promtool check metrics rejects them)', async () => {
  const m = createMetrics(new FakeAgent());
  const text = await m.registry.metrics();
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => ({ name: x[1]!, type: x[2]! }));
  assert.ok(types.length > 20, 'the exposition has its TYPE lines');
  const bad = types.filter((t) => t.type !== 'counter' && t.name.endsWith('_total')).map((t) => t.name);
  assert.deepEqual(bad, []);
  const unsuffixed = types.filter((t) => t.type === 'counter' && !t.name.endsWith('_total')).map((t) => t.name);
  assert.deepEqual(unsuffixed, []);
});

test('two agents in one process keep separate registries', async () => {
  const a = new FakeAgent();
  const b = new FakeAgent();
  const ma = createMetrics(a);
  const mb = createMetrics(b);
  ma.observeApiError(undefined, 404);
  assert.equal(findSamples(await scrape(mb), 'podnet_api_errors_total').length, 0);
  assert.equal(findSamples(await scrape(ma), 'podnet_api_errors_total').length, 1);
});
