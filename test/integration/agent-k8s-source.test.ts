/**
 * The agent with the kubernetes source, on the real kernel, against an
 * in-memory API server: live but not ready until its Node has a pod CIDR
 * (ADD code 11, STATUS code 50, DEL queued), the pool then comes from
 * spec.podCIDRs, and a later change of it is refused loudly. The cluster
 * tier runs the same against a real kube-apiserver.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, rand, testCidr } from '../lib/agent-fixture.js';
import { FakeKube, nodeObject } from '../lib/fake-kube.js';
import { apiCall } from '../../agent/src/api/client.js';
import type { AgentStatus } from '../../agent/src/api/protocol.js';
import { Agent } from '../../agent/src/agent.js';
import { buildAgentConfig } from '../../agent/src/config/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('agent with the kubernetes source', () => {
  const cidr = testCidr(253);
  const node = new TestNode(cidr);
  const kube = new FakeKube();
  const nodeName = `node-${rand()}`;
  let starting: Promise<Agent> | undefined;
  after(async () => {
    const a = await starting?.catch(() => undefined);
    await a?.stop();
    await node.cleanup();
  });

  test('is live but not ready until its Node has a pod CIDR, then takes the pool from spec.podCIDRs', async () => {
    kube.put('nodes', nodeObject(nodeName, []));
    const cfg = buildAgentConfig({
      nodeName, bpffs: node.bpffs, stateDir: node.stateDir, apiSocket: node.socket, metricsAddr: 'off', source: 'kubernetes', logLevel: 'silent',
    }, nodeName);
    starting = Agent.start(cfg, silentLogger(), { kubeTransport: kube, reconcileIntervalMs: 0 });
    // First "waiting for the first list", then the reason the Node gives.
    const waiting = await until('a status that names the missing pod CIDR', async () => {
      const s = await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status', undefined, 1000).catch(() => undefined);
      return s && /has no IPv4 spec\.podCIDRs yet/.test(s.notReadyReason ?? '') ? s : undefined;
    });
    assert.equal(waiting.ready, false);
    assert.match(waiting.notReadyReason ?? '', new RegExp(`Node ${nodeName} has no IPv4 spec.podCIDRs yet`));

    const ns = node.netns('k8s');
    const add = await node.cni('ADD', { containerId: `ctr-k8s-${rand()}`, netns: ns.path });
    assert.equal(add.json?.code, 11, add.stdout);
    assert.match(add.json.msg, /has no IPv4 spec.podCIDRs yet .*: try again later$/);
    const st = await node.cni('STATUS');
    assert.equal(st.json?.code, 50, st.stdout);
    const del = await node.cni('DEL', { containerId: 'ctr-early-del', netns: ns.path });
    assert.equal(del.code, 0, 'a DEL while waiting succeeds');
    assert.deepEqual(readdirSync(join(node.stateDir, 'del-queue')).filter((n) => n.endsWith('.json')), ['ctr-early-del-eth0.json'], 'and is queued');

    kube.put('nodes', nodeObject(nodeName, [cidr]));
    const agent = await starting;
    node.agent = agent;
    const s = await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status');
    assert.equal(s.ready, true);
    assert.equal(s.podCidr, cidr);
    assert.deepEqual(readdirSync(join(node.stateDir, 'del-queue')).filter((n) => n.endsWith('.json')), [], 'the queued DEL was replayed');
    const ok = await node.cni('ADD', { containerId: `ctr-k8s-${rand()}`, netns: ns.path });
    assert.equal(ok.code, 0, ok.stdout);
    assert.ok(String(ok.json.ips[0].address).startsWith(cidr.slice(0, cidr.lastIndexOf('.'))), ok.json.ips[0].address);
  });

  test('a pod CIDR change under live pods is refused: the agent turns unready and says why, and recovers when it is undone', async () => {
    const other = testCidr(254);
    kube.put('nodes', nodeObject(nodeName, [other]));
    const s = await until('an unready status', async () => {
      const v = await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status');
      return v.ready ? undefined : v;
    });
    assert.match(s.notReadyReason ?? '', new RegExp(`spec.podCIDRs changed to ${other.replace(/\./g, '\\.')}; refusing it while 1 pod\\(s\\) use`));
    assert.equal(s.podCidr, cidr, 'the pool is unchanged');
    assert.equal((await node.cni('STATUS')).json?.code, 50);
    kube.put('nodes', nodeObject(nodeName, [cidr]));
    await until('ready again', async () => ((await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status')).ready ? true : undefined));
  });

  test('keeps its Node watch through a dropped connection', async () => {
    const inf = node.agent!.nodeSource!;
    const before = inf.stats.watchRestarts;
    kube.dropWatches();
    await until('a resumed watch', () => (inf.stats.watchRestarts > before ? true : undefined));
    const text = await node.agent!.metrics.registry.metrics();
    const restarts = Number(/^podnet_k8s_watch_restarts_total\{resource="nodes"\} (\d+)$/m.exec(text)?.[1]);
    assert.ok(restarts > before, `the restart shows in the metrics:\n${text.split('\n').filter((l) => l.startsWith('podnet_k8s')).join('\n')}`);
    assert.match(text, /^podnet_k8s_synced\{resource="nodes"\} 1$/m);
    assert.match(text, /^podnet_k8s_last_event_timestamp_seconds\{resource="nodes"\} [1-9]/m);
    const other = testCidr(254);
    kube.put('nodes', nodeObject(nodeName, [other]));
    await until('the change seen on the new watch', async () => ((await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status')).ready ? undefined : true));
    kube.put('nodes', nodeObject(nodeName, [cidr]));
    await until('ready again', async () => ((await apiCall<AgentStatus>(node.socket, 'GET', '/v1/status')).ready ? true : undefined));
  });
});
