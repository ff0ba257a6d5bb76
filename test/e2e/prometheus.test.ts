/**
 * podnet's metrics as real Prometheus tooling sees them: an agent in this
 * process serves /metrics on loopback, two pods are created through the real
 * CNI entry point and ping each other, promtool lints the exposition, and a
 * private Prometheus server (built from its Go module by the harness)
 * scrapes the agent. Traffic stays between the pod namespaces made here; Prometheus
 * listens on and scrapes loopback only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { TestNode, inNetns, rand } from '../lib/agent-fixture.js';
import { DIRECTIONS, DROP_REASONS } from '../../agent/src/metrics/enums.js';
import { PrometheusServer, findSamples, freePort, httpGet, parseExposition, promtoolCheckMetrics, type Sample } from '../lib/prometheus.js';

const PINGS = 5;
const POD_NAMESPACE = `pn-e2e-${rand(3)}`;
const ipOf = (r: { json: any }): string => String(r.json.ips[0].address).split('/')[0]!;

interface Pod {
  name: string;
  id: string;
  ns: { name: string; path: string };
  ip: string;
  deleted: boolean;
}

/** Polls `fn` every 500 ms until it returns a value, at most `ms`; returns the last failure otherwise. */
async function poll<T>(ms: number, fn: () => Promise<T | undefined>): Promise<{ value?: T; tries: number }> {
  const end = Date.now() + ms;
  let tries = 0;
  for (;;) {
    tries++;
    const v = await fn();
    if (v !== undefined) return { value: v, tries };
    if (Date.now() >= end) return { tries };
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('podnet metrics scraped by Prometheus', () => {
  let node: TestNode;
  let metricsUrl: string;
  let metricsTarget: string;
  let prom: PrometheusServer | undefined;
  const pods: Pod[] = [];

  const scrape = async (): Promise<{ body: string; samples: Sample[]; contentType: string }> => {
    const r = await httpGet(metricsUrl);
    assert.equal(r.status, 200, r.body);
    return { body: r.body, samples: parseExposition(r.body), contentType: r.contentType };
  };
  const one = (samples: Sample[], name: string, labels: Record<string, string>): number => {
    const found = findSamples(samples, name, labels);
    assert.equal(found.length, 1, `exactly one ${name}${JSON.stringify(labels)}, found ${found.length}`);
    return found[0]!.value;
  };

  before(async () => {
    // The agent does not expose its metrics server's bound port, so a free one is chosen here.
    const port = await freePort();
    metricsTarget = `127.0.0.1:${port}`;
    metricsUrl = `http://${metricsTarget}/metrics`;
    node = new TestNode(`10.238.${randomBytes(1)[0]!}.0/24`, { metricsAddr: metricsTarget });
    await node.start();
    for (const label of ['a', 'b']) {
      const ns = node.netns(label);
      const id = `ctr-prom-${label}-${rand()}`;
      const name = `pod-${label}`;
      const r = await node.cni('ADD', { containerId: id, netns: ns.path, args: `K8S_POD_NAMESPACE=${POD_NAMESPACE};K8S_POD_NAME=${name}` });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      pods.push({ name, id, ns, ip: ipOf(r), deleted: false });
    }
    const [a, b] = pods as [Pod, Pod];
    const ping = inNetns(a.ns.name, ['ping', '-c', String(PINGS), '-i', '0.2', '-W', '2', b.ip], 20_000);
    assert.equal(ping.code, 0, ping.out);
    assert.match(ping.out, new RegExp(`${PINGS} packets transmitted, ${PINGS} received`));
  });

  after(async () => {
    await prom?.stop();
    for (const p of pods) if (!p.deleted) await node?.cni('DEL', { containerId: p.id, netns: p.ns.path }).catch(() => {});
    await node?.cleanup();
  });

  test('the /metrics body passes promtool check metrics', async () => {
    const { body } = await scrape();
    const lint = promtoolCheckMetrics(body);
    assert.equal(lint.code, 0, `promtool check metrics:\n${lint.output}`);
  });

  test('the body reports per-pod egress packets, IPAM usage, readiness and both ADDs', async () => {
    const { samples, contentType } = await scrape();
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    for (const p of pods) {
      const labels = { namespace: POD_NAMESPACE, pod: p.name, direction: 'egress' };
      const packets = one(samples, 'podnet_endpoint_packets_total', labels);
      assert.ok(packets >= PINGS, `${p.name} egress packets ${packets} >= ${PINGS}`);
      assert.ok(one(samples, 'podnet_endpoint_bytes_total', labels) >= PINGS * 84, `${p.name} egress bytes cover ${PINGS} IPv4 echo packets`);
    }
    assert.equal(one(samples, 'podnet_ipam_addresses', { state: 'used' }), 2);
    assert.equal(one(samples, 'podnet_agent_ready', {}), 1);
    assert.equal(one(samples, 'podnet_endpoints', { state: 'ready' }), 2);
    assert.equal(one(samples, 'podnet_endpoints', { state: 'unhealthy' }), 0);
    assert.equal(one(samples, 'podnet_cni_operation_duration_seconds_count', { verb: 'ADD', result: 'ok' }), 2);
    assert.equal(findSamples(samples, 'podnet_cni_operation_duration_seconds_count', { verb: 'ADD' }).length, 1, 'no failed ADD was recorded');
  });

  test('every drop reason is present for both directions, and ring buffers are reported by size, not as entries', async () => {
    const { samples } = await scrape();
    for (const r of DROP_REASONS.filter((x) => x.value !== 0)) {
      for (const direction of DIRECTIONS) one(samples, 'podnet_datapath_drop_packets_total', { reason: r.name, direction });
    }
    assert.ok(one(samples, 'podnet_bpf_ringbuf_size_bytes', { map: 'pn_events' }) >= 4096, 'pn_events has its size in bytes');
    assert.deepEqual(findSamples(samples, 'podnet_bpf_map_entries', { map: 'pn_events' }), []);
    assert.deepEqual(findSamples(samples, 'podnet_bpf_map_max_entries', { map: 'pn_events' }), []);
    assert.equal(one(samples, 'podnet_bpf_map_entries', { map: 'pn_endpoints' }), 2);
    assert.equal(one(samples, 'podnet_cni_del_queue_requests', {}), 0);
    assert.equal(findSamples(samples, 'process_resident_memory_bytes').length, 1, 'process metrics are exported');
    assert.equal(findSamples(samples, 'nodejs_heap_size_used_bytes').length, 1, 'Node.js runtime metrics are exported');
  });

  test('a packet to an unused address of the pod CIDR is counted as a drop of the sending pod and of the node', async () => {
    const [a] = pods as [Pod, Pod];
    const labels = { namespace: POD_NAMESPACE, pod: a.name, reason: 'no_endpoint', direction: 'egress' };
    const node0 = one((await scrape()).samples, 'podnet_datapath_drop_packets_total', { reason: 'no_endpoint', direction: 'egress' });
    // A fresh pool hands out addresses upwards from .1 (next fit), so .254 is free with two pods;
    // it is inside the pod CIDR, so from_pod drops the pings on this node.
    const unused = a.ip.replace(/\.\d+$/, '.254');
    const ping = inNetns(a.ns.name, ['ping', '-c', '3', '-i', '0.2', '-W', '1', unused], 20_000);
    assert.notEqual(ping.code, 0, `nobody answers ${unused}`);
    const { samples } = await scrape();
    assert.equal(one(samples, 'podnet_endpoint_drop_packets_total', labels), 3);
    assert.ok(one(samples, 'podnet_endpoint_drop_bytes_total', labels) >= 3 * 84, 'three IPv4 echo requests');
    assert.equal(one(samples, 'podnet_datapath_drop_packets_total', { reason: 'no_endpoint', direction: 'egress' }), node0 + 3);
  });

  test('/metrics refuses POST with 405 and answers HEAD', async () => {
    const post = await fetch(metricsUrl, { method: 'POST', body: 'x', signal: AbortSignal.timeout(5000) });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const head = await fetch(metricsUrl, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    assert.equal(head.status, 200);
  });

  test('a real Prometheus server scrapes the agent and sees it up and ready', async () => {
    prom = await PrometheusServer.start({ targets: [metricsTarget], job: 'podnet', intervalSeconds: 1 });
    const p = prom;
    const seen = await poll(30_000, async () => {
      const [ready, up] = await Promise.all([p.query('podnet_agent_ready'), p.query('up{job="podnet"}')]);
      return ready.length === 1 && ready[0]!.value === 1 && up.length === 1 && up[0]!.value === 1 ? { ready, up } : undefined;
    });
    assert.ok(seen.value, `Prometheus saw podnet_agent_ready 1 and up 1 within 30 s (${seen.tries} queries):\n${p.log()}`);
    const ready = seen.value.ready[0]!;
    assert.equal(ready.metric['job'], 'podnet');
    assert.equal(ready.metric['instance'], metricsTarget);
    // The per-pod series went through Prometheus's own parser too.
    const egress = await p.query(`podnet_endpoint_packets_total{job="podnet",namespace="${POD_NAMESPACE}",direction="egress"}`);
    assert.deepEqual(egress.map((s) => s.metric['pod']).sort(), pods.map((x) => x.name).sort());
    for (const s of egress) assert.ok(s.value >= PINGS, `Prometheus has ${s.metric['pod']} egress ${s.value} >= ${PINGS}`);
    // Zero-valued drop series and the runtime metrics reached the TSDB too.
    const drops = await p.query('podnet_datapath_drop_packets_total{job="podnet"}');
    assert.equal(drops.length, DROP_REASONS.filter((x) => x.value !== 0).length * DIRECTIONS.length, 'one drop series per reason and direction');
    assert.equal((await p.query('process_start_time_seconds{job="podnet"}')).length, 1);
  });

  test('DEL of a pod removes its packet series from /metrics', async () => {
    const [a, b] = pods as [Pod, Pod];
    const r = await node.cni('DEL', { containerId: a.id, netns: a.ns.path });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    a.deleted = true;
    const { samples } = await scrape();
    assert.deepEqual(findSamples(samples, 'podnet_endpoint_packets_total', { namespace: POD_NAMESPACE, pod: a.name }), [], `${a.name} has no packet series`);
    assert.deepEqual(findSamples(samples, 'podnet_endpoint_bytes_total', { namespace: POD_NAMESPACE, pod: a.name }), [], `${a.name} has no byte series`);
    assert.ok(one(samples, 'podnet_endpoint_packets_total', { namespace: POD_NAMESPACE, pod: b.name, direction: 'egress' }) >= PINGS, `${b.name} keeps its series`);
    assert.equal(one(samples, 'podnet_ipam_addresses', { state: 'used' }), 1);
    assert.equal(one(samples, 'podnet_cni_operation_duration_seconds_count', { verb: 'DEL', result: 'ok' }), 1);
  });
});
