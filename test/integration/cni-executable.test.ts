/**
 * The built CNI executable (build/cni/podnet) on a node without Node.js:
 * every verb exec'd through `env -i` with only the CNI_* variables (no PATH,
 * no HOME), against a real agent on the real kernel, and the DEL queue when
 * no agent listens, replayed by the next agent.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CNI_BUNDLE, TestNode, inNetns, podnetHostVeths, rand, testCidr, type CniRun } from '../lib/agent-fixture.js';
import { hostVethName } from '../../agent/src/endpoints/index.js';

/** Runs `/usr/bin/env -i CNI_...=... <executable>` with `stdin`, bounded to 30 s. */
function envI(exe: string, cniVars: Record<string, string>, stdin: string): Promise<CniRun> {
  const args = ['-i', ...Object.entries(cniVars).map(([k, v]) => `${k}=${v}`), exe];
  return new Promise((resolvePromise, reject) => {
    // env's own environment is emptied too, so nothing but the CNI_* variables can reach the plugin.
    const child = spawn('/usr/bin/env', args, { env: {}, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown;
      try {
        json = stdout ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      resolvePromise({ code, stdout, stderr, json });
    });
    child.stdin.end(stdin);
  });
}

describe('the CNI executable with env -i against a real agent', () => {
  const node = new TestNode(testCidr(233));
  const exe = join(node.cniBin, 'podnet');
  const ns = node.netns('exe');
  const id = `ctr-exe-${rand()}`;
  const vars = (verb: string): Record<string, string> => ({
    CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: node.cniBin,
    CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=exe',
  });
  let added: CniRun | undefined;

  before(async () => {
    assert.ok(existsSync(CNI_BUNDLE), `${CNI_BUNDLE} is missing: run make build`);
    await node.start();
  });
  after(async () => {
    await node.cni('DEL', { containerId: id, netns: ns.path }).catch(() => undefined);
    await node.cleanup();
  });

  test('VERSION prints the supported versions', async () => {
    const r = await envI(exe, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\n');
  });

  test('ADD wires the pod and prints a 1.1.0 result', async () => {
    added = await envI(exe, vars('ADD'), JSON.stringify(node.conf()));
    assert.equal(added.code, 0, added.stdout + added.stderr);
    assert.equal(added.json.cniVersion, '1.1.0');
    assert.equal(added.json.interfaces[1].sandbox, ns.path);
    const ip = String(added.json.ips[0].address).split('/')[0]!;
    assert.match(inNetns(ns.name, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']).out, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/32`));
    assert.ok(podnetHostVeths().includes(hostVethName(id, 'eth0')), 'host veth exists');
    assert.equal(node.agent!.endpoints.list().find((m) => m.containerId === id)?.podName, 'exe');
  });

  test('CHECK passes for the pod just added', async () => {
    assert.ok(added, 'ADD ran first');
    const r = await envI(exe, vars('CHECK'), JSON.stringify(node.conf({ prevResult: added.json })));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
  });

  test('STATUS reports the agent ready with no output', async () => {
    const r = await envI(exe, { CNI_COMMAND: 'STATUS', CNI_PATH: node.cniBin }, JSON.stringify(node.conf()));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
  });

  test('GC keeps the attachment named in cni.dev/valid-attachments', async () => {
    const conf = node.conf({ 'cni.dev/valid-attachments': [{ containerID: id, ifname: 'eth0' }] });
    const r = await envI(exe, { CNI_COMMAND: 'GC', CNI_PATH: node.cniBin }, JSON.stringify(conf));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await node.agent!.endpoints.settled();
    assert.ok(podnetHostVeths().includes(hostVethName(id, 'eth0')), 'host veth survived GC');
  });

  test('an invalid CNI variable gives code 4 naming it, with exit status 1', async () => {
    const r = await envI(exe, { ...vars('ADD'), CNI_IFNAME: 'this-is-too-long0' }, JSON.stringify(node.conf()));
    assert.equal(r.code, 1);
    assert.equal(r.json.code, 4);
    assert.match(r.json.msg, /CNI_IFNAME/);
  });

  test('DEL removes the pod with no output', async () => {
    const r = await envI(exe, vars('DEL'), JSON.stringify(node.conf()));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
    await node.agent!.endpoints.settled();
    assert.ok(!podnetHostVeths().includes(hostVethName(id, 'eth0')), 'host veth removed');
    assert.equal(node.agent!.ipam.lookup(id, 'eth0'), undefined);
  });
});

describe('the CNI executable with env -i when no agent listens', () => {
  const node = new TestNode(testCidr(233));
  const exe = join(node.cniBin, 'podnet');
  const ns = node.netns('exeq');
  const id = `ctr-exeq-${rand()}`;
  const vars = (verb: string): Record<string, string> => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: node.cniBin });
  const queueDir = join(node.stateDir, 'del-queue');

  before(async () => {
    await node.start();
    const r = await envI(exe, vars('ADD'), JSON.stringify(node.conf()));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await node.stop();
  });
  after(async () => {
    await node.cni('DEL', { containerId: id, netns: ns.path }).catch(() => undefined);
    await node.cleanup();
  });

  test('ADD fails with code 11 (try again later)', async () => {
    const r = await envI(exe, { ...vars('ADD'), CNI_CONTAINERID: `other-${rand()}` }, JSON.stringify(node.conf()));
    assert.equal(r.code, 1);
    assert.equal(r.json.code, 11);
    assert.ok(String(r.json.msg).includes(node.socket), r.json.msg);
  });

  test('DEL exits 0 and leaves the request in the DEL queue', async () => {
    const r = await envI(exe, vars('DEL'), JSON.stringify(node.conf()));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /queued in/);
    assert.deepEqual(readdirSync(queueDir), [`${id}-eth0.json`]);
  });

  test('the next agent replays the queued DEL and empties the queue', async () => {
    assert.ok(podnetHostVeths().includes(hostVethName(id, 'eth0')), 'the pod is still wired before the replay');
    await node.start();
    assert.deepEqual(readdirSync(queueDir), []);
    assert.ok(!podnetHostVeths().includes(hostVethName(id, 'eth0')), 'host veth removed by the replay');
    assert.equal(node.agent!.ipam.lookup(id, 'eth0'), undefined);
  });
});
