/**
 * The standalone Services source: a multi-document YAML file of v1 Services
 * and discovery.k8s.io/v1 EndpointSlices, validated as a whole, reloaded
 * when written in place or replaced by a rename (also a ConfigMap volume's
 * ..data symlink swap), with the last good state kept through bad
 * documents and a missing file. Real files in a temporary directory; every
 * wait is bounded.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileServiceSource, ServiceFileError, desiredFrontends, parseServiceDocuments, type ServiceSnapshot } from '../../agent/src/services/index.js';
import { silentLogger } from '../../agent/src/log/index.js';

const root = mkdtempSync(join(tmpdir(), 'podnet-svc-file-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => { const d = join(root, `t${++n}`); mkdirSync(d); return d; };

const WEB = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
  annotations: {note: dropped}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  ports:
    - {name: http, port: 80, targetPort: http, nodePort: 30080}
    - {name: dns, port: 53, protocol: UDP, targetPort: 5353, nodePort: 30053}
`;
const WEB_SLICE = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]
endpoints:
  - addresses: [10.244.0.5]
    conditions: {ready: true}
    nodeName: node-1
    targetRef: {kind: Pod, name: web-1}
  - addresses: [10.244.0.6]
    conditions: {ready: false, serving: true, terminating: true}
`;
const svc = (name: string, ip: string, port = 80): string => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {clusterIP: ${ip}, ports: [{port: ${port}}]}\n`;

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A started source on `path` recording every snapshot; the poll is slow so that only the directory watch can make these tests pass. */
function watchFile(path: string) {
  const snaps: ServiceSnapshot[] = [];
  const src = new FileServiceSource(path, silentLogger(), { debounceMs: 20, pollMs: 600_000 });
  src.start((s) => snaps.push(s));
  const names = (i = snaps.length - 1): string[] => (snaps[i]?.services ?? []).map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`).sort();
  return { src, snaps, names };
}

describe('parseServiceDocuments', () => {
  it('reads Services and EndpointSlices from a multi-document file, keeping only the fields the model reads', () => {
    const got = parseServiceDocuments(`# the demo's Services\n${WEB}---\n# nothing here\n---\n${WEB_SLICE}`);
    assert.equal(got.documents, 2, 'the document of only a comment is not counted');
    assert.deepEqual(got.services, [{
      metadata: { name: 'web', namespace: 'demo' },
      spec: {
        type: 'NodePort', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        ports: [{ name: 'http', port: 80, nodePort: 30080 }, { name: 'dns', protocol: 'UDP', port: 53, nodePort: 30053 }],
      },
    }]);
    assert.deepEqual(got.slices, [{
      metadata: { name: 'web-abc', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }, { name: 'dns', protocol: 'UDP', port: 5353 }],
      endpoints: [
        { addresses: ['10.244.0.5'], conditions: { ready: true }, nodeName: 'node-1' },
        { addresses: ['10.244.0.6'], conditions: { ready: false, serving: true, terminating: true } },
      ],
    }]);
  });

  it('gives the default namespace to objects without one, and accepts a v1 List of objects', () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n${[svc('a', '10.96.0.1'), svc('b', '10.96.0.2')].map((d) => `- ${d.trimEnd().split('\n').join('\n  ')}\n`).join('')}`;
    const got = parseServiceDocuments(list);
    assert.deepEqual(got.services.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`), ['default/a', 'default/b']);
  });

  it('reads an empty file and a file of only comments as no Services', () => {
    for (const text of ['', '\n\n', '# nothing yet\n# more comments\n', '---\n# only a comment\n---\n']) {
      const got = parseServiceDocuments(text);
      assert.deepEqual([got.services, got.slices], [[], []], JSON.stringify(text));
    }
  });

  it('names the document, its kind, namespace and name, its line and the field of every problem', () => {
    const bad: Array<[string, RegExp]> = [
      [`${svc('ok', '10.96.0.1')}---\n${svc('ok2', '10.96.0.2')}---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  clusterIP: 10.96.0.3\n  ports: [{name: a, port: 80}, {name: b, port: http}]\n`,
        /^document 3 \(Service shop\/web, line 16\): spec\.ports\[1\]\.port: must be 1-65535, got "http"$/],
      [svc('web', '10.96.0.300'), /^document 1 \(Service default\/web, line 4\): spec\.clusterIP: must be an IP address, got "10\.96\.0\.300"$/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n', /^document 1 \(Service default\/web, line 4\): spec\.clusterIP: required in a services file/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort, clusterIP: 10.96.0.1, ports: [{port: 80}]}\n', /spec\.ports\[0\]\.nodePort: required for a NodePort Service/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}, {port: 81}]}\n', /spec\.ports\[0\]\.name: required when a Service has more than one port/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80, protocol: tcp}]}\n', /spec\.ports\[0\]\.protocol: must be "TCP", "UDP" or "SCTP", got "tcp"/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: Web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n', /^document 1 \(Service default\/Web, line 3\): metadata\.name: must be a DNS-1035 label/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}}\n', /timeoutSeconds: must be 1-86400, got 0/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}], externalTrafficPolicy: local}\n', /spec\.externalTrafficPolicy: must be "Cluster" or "Local", got "local"/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}], externalIPs: [1.2.3]}\n', /spec\.externalIPs\[0\]: must be an IP address, got "1\.2\.3"/],
      ['apiVersion: apps/v1\nkind: Service\nmetadata: {name: web}\n', /^document 1 \(Service default\/web, line 1\): apiVersion: must be "v1" for a Service, got "apps\/v1"$/],
      ['apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n', /^document 1 \(Deployment default\/web, line 2\): kind: "Deployment" is not accepted: a services file holds v1 Service and discovery\.k8s\.io\/v1 EndpointSlice objects/],
      ['metadata: {name: web}\n', /^document 1 \(object default\/web, line 1\): kind: required/],
      ['- just\n- a list\n', /^document 1 \(line 1\): expected a Kubernetes object \(a mapping\), got a list$/],
      ['# a comment before the first ---\n---\nkind: Service\napiVersion: v1\nmetadata: {name: web\n', /^document 1 \(line 6, column 1\): YAML: unexpected end of the stream within a flow collection$/],
      [`${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.2')}---\nkind: Service\nmetadata: {name: c}\nspec: [1,\n`, /^document 3 \(line 14, column 1\): YAML: unexpected end of the stream within a flow collection$/],
      ['apiVersion: v1\nkind: Service\nmetadata: {name: web}\nmetadata: {name: web2}\n', /^document 1 \(line 4, column 1\): YAML: duplicated mapping key$/],
      [`${svc('web', '10.96.0.1')}---\n${svc('web', '10.96.0.2')}`, /^document 2 \(Service default\/web, line 8\): metadata\.name: Service default\/web is already defined in document 1$/],
      [`${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.1')}`, /^document 2 \(Service default\/b, line 9\): spec\.clusterIP: 10\.96\.0\.1 is already the clusterIP of Service default\/a \(document 1\)$/],
      ['apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\n', /apiVersion: must be "discovery\.k8s\.io\/v1" for an EndpointSlice, got "discovery\.k8s\.io\/v1beta1"/],
      ['apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n', /^document 1 \(EndpointSlice default\/s, line 3\): metadata\.labels\["kubernetes\.io\/service-name"\]: required/],
      ['apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: ["fd00::1"]}]\n', /endpoints\[0\]\.addresses\[0\]: must be an IPv4 address \(addressType IPv4\), got "fd00::1"/],
      ['apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: "yes"}}]\n', /endpoints\[0\]\.conditions\.ready: must be true or false, got "yes"/],
      ['apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: web}}\nendpoints: []\n', /addressType: required/],
      ['apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: ok}\n  spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n- {apiVersion: v1, kind: Service, metadata: {name: bad}, spec: {clusterIP: 10.96.0.2, ports: [{port: 0}]}}\n',
        /^document 1 items\[1\] \(Service default\/bad, line 8\): spec\.ports\[0\]\.port: must be 1-65535, got 0$/],
    ];
    const wrong: string[] = [];
    for (const [text, want] of bad) {
      try {
        parseServiceDocuments(text);
        wrong.push(`accepted ${JSON.stringify(text)}`);
      } catch (err) {
        if (!(err instanceof ServiceFileError) || err.code !== 'INVALID_MANIFEST') wrong.push(`not a ServiceFileError: ${String(err)}`);
        else if (!want.test(err.message)) wrong.push(`${err.message}\n  does not match ${want}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('accepts headless and ExternalName Services without a clusterIP or ports', () => {
    const got = parseServiceDocuments([
      'apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: None}\n',
      'apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: example.org}\n',
    ].join('---\n'));
    assert.equal(got.services.length, 2);
  });

  it('reads the demo\'s services file once the demo filled in its addresses', () => {
    // As scripts/demo.sh's services_file does: the Service address, then one ready endpoint per pod.
    const template = readFileSync(new URL('../../scripts/demo-services.yaml', import.meta.url), 'utf8');
    const eps = ['10.244.7.2', '10.244.7.3'].map((ip) => `  - addresses: [${ip}]\n    conditions: {ready: true}\n    nodeName: demo-node`).join('\n');
    const text = template.replaceAll('@SERVICE_IP@', '10.96.7.10').split('\n').map((l) => (l === '@ENDPOINTS@' ? eps : l)).join('\n');
    const got = parseServiceDocuments(text);
    assert.deepEqual(got.services.map((x) => [x.metadata?.namespace, x.metadata?.name, x.spec?.clusterIP]), [['demo', 'web', '10.96.7.10']]);
    const fe = desiredFrontends(got.services, got.slices, { name: 'demo-node', addresses: [] });
    assert.deepEqual(fe.map((f) => [f.address, f.port, f.backends.map((b) => `${b.ip}:${b.port}`)]), [['10.96.7.10', 80, ['10.244.7.2:8080', '10.244.7.3:8080']]]);
  });

  it('refuses more documents than its limit', () => {
    assert.throws(() => parseServiceDocuments('---\n---\n---\n', { maxBytes: 1 << 20, maxDocuments: 2, maxItems: 10 }), /too many documents: more than 2$/);
  });
});

describe('FileServiceSource', () => {
  it('delivers the file at start, an empty snapshot for a file of only comments, and reports what it read', async () => {
    const dir = freshDir();
    const path = join(dir, 'services.yaml');
    writeFileSync(path, '# no Services yet\n');
    const w = watchFile(path);
    try {
      assert.equal(w.src.synced, true, 'the first read happens in start()');
      assert.deepEqual(w.snaps, [{ services: [], slices: [], serviceCidrs: undefined }]);
      assert.equal(w.src.lastError, undefined);
      assert.deepEqual({ ...w.src.stats(), lastLoadMs: undefined }, {
        kind: 'file', path, synced: true, documents: 0, services: 0, endpointSlices: 0, endpoints: 0, loads: 1, reloads: 0, errors: 0, watching: true, lastLoadMs: undefined, lastError: undefined,
      });
    } finally {
      await w.src.stop();
    }
  });

  it('reloads a file written in place', async () => {
    const dir = freshDir();
    const path = join(dir, 'services.yaml');
    writeFileSync(path, svc('a', '10.96.0.1'));
    const w = watchFile(path);
    try {
      assert.deepEqual(w.names(), ['default/a']);
      writeFileSync(path, `${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.2')}`);
      await until('the second snapshot', () => w.snaps.length === 2);
      assert.deepEqual(w.names(), ['default/a', 'default/b']);
      assert.equal(w.src.stats()['reloads'], 1);
    } finally {
      await w.src.stop();
    }
  });

  it('reloads when a new file is renamed over it, as editors do', async () => {
    const dir = freshDir();
    const path = join(dir, 'services.yaml');
    writeFileSync(path, svc('a', '10.96.0.1'));
    const w = watchFile(path);
    try {
      writeFileSync(join(dir, '.services.yaml.swp'), svc('c', '10.96.0.3'));
      renameSync(join(dir, '.services.yaml.swp'), path);
      await until('the renamed file', () => w.snaps.length === 2);
      assert.deepEqual(w.names(), ['default/c']);
    } finally {
      await w.src.stop();
    }
  });

  it('reloads when a ConfigMap volume swaps its ..data symlink', async () => {
    // The kubelet's layout: PATH -> ..data/services.yaml, ..data -> ..<timestamp>/
    const dir = freshDir();
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'services.yaml'), svc('a', '10.96.0.1'));
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/services.yaml', join(dir, 'services.yaml'));
    const w = watchFile(join(dir, 'services.yaml'));
    try {
      assert.deepEqual(w.names(), ['default/a']);
      mkdirSync(join(dir, '..v2'));
      writeFileSync(join(dir, '..v2', 'services.yaml'), svc('b', '10.96.0.2'));
      symlinkSync('..v2', join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      rmSync(join(dir, '..v1'), { recursive: true });
      await until('the swapped file', () => w.snaps.length === 2);
      assert.deepEqual(w.names(), ['default/b']);
    } finally {
      await w.src.stop();
    }
  });

  it('keeps the last good state through a bad document, says why, and recovers when the file is fixed', async () => {
    const dir = freshDir();
    const path = join(dir, 'services.yaml');
    writeFileSync(path, svc('a', '10.96.0.1'));
    const w = watchFile(path);
    try {
      writeFileSync(path, `${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.2', 70000)}`);
      await until('an error', () => w.src.lastError !== undefined);
      assert.equal(w.src.lastError, `load services file ${path}: document 2 (Service default/b, line 9): spec.ports[0].port: must be 1-65535, got 70000`);
      assert.equal(w.snaps.length, 1, 'nothing delivered: the last good state stays');
      assert.equal(w.src.synced, true);
      assert.equal(w.src.stats()['services'], 1, 'stats describe the state in force');
      assert.equal(w.src.stats()['errors'], 1);
      writeFileSync(path, `${svc('a', '10.96.0.1')}---\n${svc('b', '10.96.0.2', 7000)}`);
      await until('the fixed file', () => w.snaps.length === 2);
      assert.deepEqual(w.names(), ['default/a', 'default/b']);
      assert.equal(w.src.lastError, undefined);
    } finally {
      await w.src.stop();
    }
  });

  it('keeps the last good state while the file is missing, and loads it again when it is back', async () => {
    const dir = freshDir();
    const path = join(dir, 'services.yaml');
    writeFileSync(path, svc('a', '10.96.0.1'));
    const w = watchFile(path);
    try {
      unlinkSync(path);
      await until('an error', () => w.src.lastError !== undefined);
      assert.equal(w.src.lastError, `read services file ${path}: ENOENT`);
      assert.equal(w.snaps.length, 1);
      writeFileSync(path, svc('d', '10.96.0.4'));
      await until('the new file', () => w.snaps.length === 2);
      assert.deepEqual(w.names(), ['default/d']);
      assert.equal(w.src.lastError, undefined);
    } finally {
      await w.src.stop();
    }
  });

  it('is not synced while the file is missing at start, and delivers once it appears', async () => {
    const dir = freshDir();
    const path = join(dir, 'services.yaml');
    const w = watchFile(path);
    try {
      assert.equal(w.src.synced, false);
      assert.equal(w.src.lastError, `read services file ${path}: ENOENT`);
      writeFileSync(path, svc('a', '10.96.0.1'));
      await until('the first snapshot', () => w.snaps.length === 1);
      assert.equal(w.src.synced, true);
      assert.deepEqual(w.names(), ['default/a']);
    } finally {
      await w.src.stop();
    }
  });

  it('delivers nothing when the file is touched or another file in its directory changes', async () => {
    const dir = freshDir();
    const path = join(dir, 'services.yaml');
    writeFileSync(path, svc('a', '10.96.0.1'));
    const w = watchFile(path);
    try {
      const events = (): number => w.src.stats()['loads'] as number;
      utimesSync(path, new Date(), new Date(Date.now() + 5000));
      writeFileSync(join(dir, 'other.txt'), 'x');
      // A write after both: once it is delivered, the two before were seen and skipped.
      await sleep(100);
      writeFileSync(path, svc('b', '10.96.0.2'));
      await until('the real change', () => w.snaps.length === 2);
      assert.equal(events(), 2, 'the touch and the other file were not loads');
      assert.deepEqual(w.names(), ['default/b']);
    } finally {
      await w.src.stop();
    }
  });

  it('falls back to its stat poll when the directory cannot be watched, and stops everything on stop()', async () => {
    const dir = freshDir();
    const path = join(dir, 'sub', 'services.yaml');
    const snaps: ServiceSnapshot[] = [];
    const src = new FileServiceSource(path, silentLogger(), { debounceMs: 10, pollMs: 30 });
    src.start((s) => snaps.push(s));
    try {
      assert.match(src.lastError ?? '', /^read services file .*: ENOENT$/);
      assert.equal(src.stats()['watching'], false, 'the directory does not exist yet');
      mkdirSync(join(dir, 'sub'));
      writeFileSync(path, svc('a', '10.96.0.1'));
      await until('the poll to find the file', () => snaps.length === 1);
      await until('the watch to be set up', () => src.stats()['watching'] === true);
    } finally {
      await src.stop();
    }
    writeFileSync(path, svc('b', '10.96.0.2'));
    await sleep(120);
    assert.equal(snaps.length, 1, 'nothing after stop()');
  });
});
