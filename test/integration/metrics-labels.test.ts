/** Traffic metrics without per-pod labels (--no-metrics-pod-labels): node-wide totals by direction. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNode, inNetns, rand, testCidr } from '../lib/agent-fixture.js';
import { promtoolCheckMetrics } from '../lib/prometheus.js';

const node = new TestNode(testCidr(243), { metricsAddr: '127.0.0.1:0', metricsPodLabels: false });
after(() => node.cleanup());

test('with per-pod labels off, pod traffic is exported as totals by direction and the exposition stays valid', async () => {
  const agent = await node.start();
  const ips: string[] = [];
  for (const label of ['ma', 'mb']) {
    const ns = node.netns(label);
    const r = await node.cni('ADD', { containerId: `ctr-${label}-${rand()}`, netns: ns.path, args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${label}` });
    assert.equal(r.code, 0, r.stdout);
    ips.push(String(r.json.ips[0].address).split('/')[0]!);
  }
  const [nsA] = [...node.netnsNames];
  assert.equal(inNetns(nsA!, ['ping', '-c', '4', '-i', '0.2', '-W', '2', ips[1]!]).code, 0);

  const body = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
  const series = body.split('\n').filter((l) => l.startsWith('podnet_endpoint_packets_total'));
  assert.deepEqual(series.map((l) => l.replace(/ \d+$/, '')).sort(), [
    'podnet_endpoint_packets_total{direction="egress"}',
    'podnet_endpoint_packets_total{direction="ingress"}',
  ]);
  for (const l of series) assert.ok(Number(l.split(' ').pop()) >= 8, `${l}: 4 requests and 4 replies at least`);
  assert.ok(!/pod="/.test(body), 'no pod label anywhere');
  assert.equal(promtoolCheckMetrics(body).code, 0);
});
