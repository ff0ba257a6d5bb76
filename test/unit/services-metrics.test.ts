/** The Service metric group against a fake source: the exposition as Prometheus reads it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { serviceMetrics, type ServiceFrontendStat, type ServiceMapFill } from '../../agent/src/metrics/services.js';
import { findSamples, parseExposition, type Sample } from '../lib/prometheus.js';

function setup(): { fes: ServiceFrontendStat[]; maps: ServiceMapFill[]; reg: Registry; observe: ReturnType<typeof serviceMetrics> } {
  const fes: ServiceFrontendStat[] = [];
  const maps: ServiceMapFill[] = [];
  const reg = new Registry();
  const observe = serviceMetrics(reg, { frontends: () => fes, maps: () => maps });
  return { fes, maps, reg, observe };
}
const fe = (frontendId: number, service: string, connections: number, noBackend = 0): ServiceFrontendStat =>
  ({ frontendId, service, connections: BigInt(connections), packets: BigInt(connections * 10), bytes: BigInt(connections * 1000), noBackend: BigInt(noBackend) });
const scrape = async (r: Registry): Promise<Sample[]> => parseExposition(await r.metrics());
function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = findSamples(samples, name, labels).filter((s) => Object.keys(s.labels).length === Object.keys(labels).length);
  assert.equal(found.length, 1, `exactly one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

test('sums the frontends of each Service into its connection, traffic and no-backend counters', async () => {
  const { fes, reg } = setup();
  fes.push(fe(1, 'shop/web', 5), fe(2, 'shop/web', 3), fe(3, 'kube-system/dns', 0, 4));
  const s = await scrape(reg);
  assert.equal(value(s, 'podnet_service_connections_total', { namespace: 'shop', service: 'web' }), 8);
  assert.equal(value(s, 'podnet_service_packets_total', { namespace: 'shop', service: 'web' }), 80);
  assert.equal(value(s, 'podnet_service_bytes_total', { namespace: 'shop', service: 'web' }), 8000);
  assert.equal(value(s, 'podnet_service_no_backend_total', { namespace: 'kube-system', service: 'dns' }), 4);
});

test('keeps a Service counter from going down when one of its frontends is removed, and drops the series of a deleted Service', async () => {
  const { fes, reg } = setup();
  fes.push(fe(1, 'shop/web', 5), fe(2, 'shop/web', 3), fe(3, 'shop/db', 2));
  await scrape(reg);
  fes.splice(0, fes.length, fe(1, 'shop/web', 6));
  const s = await scrape(reg);
  assert.equal(value(s, 'podnet_service_connections_total', { namespace: 'shop', service: 'web' }), 9);
  assert.deepEqual(findSamples(s, 'podnet_service_connections_total', { service: 'db' }), []);
});

test('exports entries, capacity and pressure of every service map', async () => {
  const { maps, reg } = setup();
  maps.push({ map: 'pn_ct', entries: 65536, capacity: 262144 }, { map: 'pn_services', entries: 0, capacity: 65536 });
  const s = await scrape(reg);
  assert.equal(value(s, 'podnet_service_map_pressure_ratio', { map: 'pn_ct' }), 0.25);
  assert.equal(value(s, 'podnet_service_map_entries', { map: 'pn_ct' }), 65536);
  assert.equal(value(s, 'podnet_service_map_max_entries', { map: 'pn_services' }), 65536);
});

test('counts reconcile passes by result, their duration and entries refused by a full map', async () => {
  const { reg, observe } = setup();
  let s = await scrape(reg);
  for (const result of ['ok', 'changed', 'failed']) assert.equal(value(s, 'podnet_service_reconcile_runs_total', { result }), 0);
  assert.equal(value(s, 'podnet_service_map_full_errors_total', { map: 'pn_backends' }), 0);
  observe({ result: 'failed', seconds: 0.02, full: { pn_backends: 3 } });
  observe({ result: 'changed', seconds: 0.002, full: {} });
  s = await scrape(reg);
  assert.equal(value(s, 'podnet_service_reconcile_runs_total', { result: 'failed' }), 1);
  assert.equal(value(s, 'podnet_service_map_full_errors_total', { map: 'pn_backends' }), 3);
  assert.equal(value(s, 'podnet_service_reconcile_duration_seconds_count', {}), 2);
});

test('exports the conntrack entries swept and the last sweep\'s duration, 0 before the first sweep', async () => {
  const reg = new Registry();
  let sweeps: { removed: number; last: { seconds: number } | undefined } = { removed: 0, last: undefined };
  serviceMetrics(reg, { frontends: () => [], maps: () => [], conntrackSweeps: () => sweeps });
  let s = await scrape(reg);
  assert.equal(value(s, 'podnet_service_conntrack_swept_total', {}), 0);
  assert.equal(value(s, 'podnet_service_conntrack_sweep_seconds', {}), 0);
  sweeps = { removed: 42, last: { seconds: 0.125 } };
  s = await scrape(reg);
  assert.equal(value(s, 'podnet_service_conntrack_swept_total', {}), 42);
  assert.equal(value(s, 'podnet_service_conntrack_sweep_seconds', {}), 0.125);
});
