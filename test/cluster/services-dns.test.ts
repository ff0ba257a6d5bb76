/**
 * Services by name on the one-node cluster with podnet and no kube-proxy:
 * cluster DNS is CoreDNS (built by the harness) behind the kube-dns Service
 * (scripts/cluster/dns.sh, deploy/addons/coredns.yaml), and a pod resolves
 * a Service through it, over UDP and TCP, and reaches the Service by that
 * name. Every hop is a Service: the pod asks the kube-dns ClusterIP,
 * CoreDNS watches the API server through the kubernetes Service, and the
 * answer is the web Service's ClusterIP. The images are the e2e ones built
 * locally (agnhost, scripts/harness/e2e-images.sh).
 * This file owns the cluster's lifecycle, like every file of the tier.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REPO_ROOT } from '../e2e/tools/index.js';
import { run, runOk, waitFor } from '../e2e/tools/proc.js';
import { clusterDown, clusterEnv, clusterUp, kubectl, kubectlOk } from './tools/cluster.js';

const SCRIPTS = join(REPO_ROOT, 'scripts', 'cluster');
const NS = 'pn-dns';
const AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost:2.56';
const BACKENDS = 2;

/** A DNS query for NAME's A record, as sent over TCP (RFC 1035 4.2.2: two length bytes first). */
function tcpQuery(name: string, id: number): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'ascii')]);
  const msg = Buffer.concat([
    Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), // RD, one question
    ...labels,
    Buffer.from([0, 0, 1, 0, 1]), // root, type A, class IN
  ]);
  const len = Buffer.from([msg.length >> 8, msg.length & 0xff]);
  return Buffer.concat([len, msg]);
}

/** Skips one (possibly compressed) name at `off`; returns the offset after it. */
function skipName(msg: Buffer, off: number): number {
  for (let i = 0; i < 128; i++) {
    const len = msg[off];
    if (len === undefined) throw new Error(`parse DNS answer: name runs past the end at ${off}`);
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2;
    off += 1 + len;
  }
  throw new Error('parse DNS answer: name has too many labels');
}

/** The A records of a TCP DNS answer (length-prefixed), with the message's id and rcode. */
function parseTcpAnswer(bytes: Buffer): { id: number; rcode: number; addrs: string[] } {
  assert.ok(bytes.length >= 14, `a DNS answer of at least a header (got ${bytes.length} bytes)`);
  const msg = bytes.subarray(2, 2 + bytes.readUInt16BE(0));
  const id = msg.readUInt16BE(0);
  const rcode = msg[3]! & 0x0f;
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let off = 12;
  for (let i = 0; i < qd; i++) off = skipName(msg, off) + 4;
  const addrs: string[] = [];
  for (let i = 0; i < an; i++) {
    off = skipName(msg, off);
    const type = msg.readUInt16BE(off);
    const rdlen = msg.readUInt16BE(off + 8);
    if (type === 1 && rdlen === 4) addrs.push([...msg.subarray(off + 10, off + 14)].join('.'));
    off += 10 + rdlen;
  }
  return { id, rcode, addrs };
}

async function execIn(pod: string, script: string, timeoutMs = 30_000): Promise<string> {
  return kubectlOk(['-n', NS, 'exec', pod, '--', '/bin/sh', '-c', script], { timeoutMs });
}

describe('a pod finds a Service by name through cluster DNS and reaches it, with podnet and no kube-proxy', () => {
  let dnsIp = '';
  let domain = '';
  let webIp = '';
  let backendNames: string[] = [];

  before(async () => {
    const env = await clusterEnv();
    dnsIp = env.get('CLUSTER_DNS_IP') ?? '';
    domain = env.get('CLUSTER_DOMAIN') ?? '';
    await clusterDown();
    await clusterUp();
    await runOk('bash', [join(SCRIPTS, 'dns.sh'), 'up'], { timeoutMs: 900_000 });
    await runOk('bash', [join(SCRIPTS, 'conformance.sh'), 'images'], { timeoutMs: 1_800_000 });
  }, { timeout: 3_600_000 });

  after(async () => {
    // No kubectl here: once the namespace is gone the API server's address
    // is routed off the machine.
    await clusterDown();
  }, { timeout: 300_000 });

  test('kube-proxy is not running and the Service range is blackholed on the node, so only podnet can answer a ClusterIP', async () => {
    const status = await run('bash', [join(SCRIPTS, 'kube-proxy.sh'), 'status']);
    assert.notEqual(status.code, 0, `kube-proxy runs (${status.stdout.trim()})`);
    const env = await clusterEnv();
    const routes = (await runOk('ip', ['route', 'show', 'type', 'blackhole'])).stdout;
    assert.match(routes, new RegExp(`^blackhole ${(env.get('CLUSTER_SERVICE_CIDR') ?? '?').replace(/\./g, '\\.')}`, 'm'));
  });

  test('CoreDNS becomes available behind the kube-dns Service at the address kubelet hands pods', { timeout: 300_000 }, async () => {
    await runOk('bash', [join(SCRIPTS, 'dns.sh'), 'wait'], { timeoutMs: 240_000 });
    const ip = (await kubectlOk(['-n', 'kube-system', 'get', 'service', 'kube-dns', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    assert.equal(ip, dnsIp);
  });

  test('a pod resolves a Service by its short and full names over UDP and reaches a backend by name', { timeout: 600_000 }, async () => {
    const manifests = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: NS },
        spec: {
          replicas: BACKENDS,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: {
              terminationGracePeriodSeconds: 0,
              containers: [{ name: 'web', image: AGNHOST, args: ['netexec', '--http-port=8080', '--udp-port=-1'], ports: [{ name: 'http', containerPort: 8080 }] }],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'client', namespace: NS },
        spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'client', image: AGNHOST, args: ['pause'] }] },
      },
    ];
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }) });
    await kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/web', '--timeout=180s'], { timeoutMs: 190_000 });
    await kubectlOk(['-n', NS, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
    webIp = (await kubectlOk(['-n', NS, 'get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    backendNames = (await kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(/\s+/);
    assert.equal(backendNames.length, BACKENDS);

    const resolv = await execIn('client', 'cat /etc/resolv.conf');
    assert.match(resolv, new RegExp(`^nameserver ${dnsIp.replace(/\./g, '\\.')}$`, 'm'), 'kubelet points the pod at the kube-dns ClusterIP');
    assert.match(resolv, new RegExp(`^search ${NS}\\.svc\\.${domain.replace(/\./g, '\\.')} `, 'm'), 'with the namespace first in the search path');

    const fqdn = `web.${NS}.svc.${domain}`;
    const lookup = await waitFor(`nslookup ${fqdn} over UDP`, async () => {
      const r = await kubectl(['-n', NS, 'exec', 'client', '--', 'nslookup', '-type=a', fqdn], { timeoutMs: 20_000 });
      return r.code === 0 && r.stdout.includes(webIp) ? r.stdout : undefined;
    }, 60_000, 1_000);
    assert.match(lookup, new RegExp(`Address:\\s+${webIp.replace(/\./g, '\\.')}\\b`), `${fqdn} resolves to the Service's ClusterIP ${webIp}`);

    for (const name of ['web', fqdn]) {
      const served = await waitFor(`curl http://${name}/hostname`, async () => {
        const r = await kubectl(['-n', NS, 'exec', 'client', '--', 'curl', '-s', '--max-time', '5', `http://${name}/hostname`], { timeoutMs: 20_000 });
        return r.code === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
      }, 60_000, 1_000);
      assert.ok(backendNames.includes(served), `http://${name}/ answered from a backend pod (${served} in ${backendNames.join(', ')})`);
    }
  });

  test('the same name resolves over TCP port 53 of the kube-dns ClusterIP', { timeout: 120_000 }, async () => {
    assert.notEqual(webIp, '', 'the previous test created the Service');
    const id = 0x5a17;
    const octal = [...tcpQuery(`web.${NS}.svc.${domain}`, id)].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
    // nc keeps the connection until the answer is in: stdin stays open for 3 s.
    const out = await execIn('client', `(printf '${octal}'; sleep 3) | nc -w 5 ${dnsIp} 53 | od -An -v -tx1`, 40_000);
    const bytes = Buffer.from(out.replace(/\s+/g, ''), 'hex');
    const answer = parseTcpAnswer(bytes);
    assert.equal(answer.id, id);
    assert.equal(answer.rcode, 0, 'NOERROR');
    assert.deepEqual(answer.addrs, [webIp]);
  });
});
