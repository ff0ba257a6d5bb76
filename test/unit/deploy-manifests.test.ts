/**
 * What an operator applies with `kubectl apply -f deploy/`, read as data:
 * every manifest parses, the DaemonSet has what a node agent needs and no
 * more, its port matches the agent's default, RBAC only reads, the
 * ConfigMap is a valid agent config, the scrape config finds the agents by
 * the DaemonSet's own labels and port name, and the two image builds share
 * one package list and one file layout.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { DEFAULTS, buildAgentConfig, parseListenAddr } from '../../agent/src/config/index.js';
import { NODES } from '../../agent/src/k8s/index.js';
import { ENDPOINT_SLICES, SERVICES, SERVICE_CIDRS } from '../../agent/src/services/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const deploy = join(root, 'deploy');
const read = (rel: string): string => readFileSync(join(root, rel), 'utf8');
const version = (JSON.parse(read('package.json')) as { version: string }).version;

type Obj = Record<string, any>;

/** Every document of a YAML file, failing on any parse error. */
function docs(rel: string): Obj[] {
  const all = parseAllDocuments(read(rel));
  for (const d of all) assert.deepEqual(d.errors.map((e) => e.message), [], `${rel} parses`);
  return all.map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

/** What `kubectl apply -f deploy/` reads: the top-level .yaml/.yml/.json files, not subdirectories. */
const applied = readdirSync(deploy, { withFileTypes: true })
  .filter((e) => e.isFile() && /\.(ya?ml|json)$/.test(e.name))
  .map((e) => e.name)
  .sort();
const objects = applied.flatMap((f) => docs(`deploy/${f}`).map((o) => ({ file: f, o })));
const find = (kind: string): Obj => {
  const hit = objects.find((x) => x.o['kind'] === kind);
  assert.ok(hit, `deploy/ has a ${kind}`);
  return hit.o;
};

const ds = find('DaemonSet');
const pod = ds['spec']['template']['spec'] as Obj;
const containers = [...(pod['initContainers'] ?? []), ...pod['containers']] as Obj[];
const container = (name: string): Obj => {
  const c = containers.find((x) => x['name'] === name);
  assert.ok(c, `the DaemonSet has a container named ${name}`);
  return c;
};
const agent = container('agent');
const volume = (name: string): Obj => {
  const v = (pod['volumes'] as Obj[]).find((x) => x['name'] === name);
  assert.ok(v, `the DaemonSet has a volume named ${name}`);
  return v;
};
const mountOf = (c: Obj, name: string): Obj => {
  const m = (c['volumeMounts'] as Obj[] | undefined)?.find((x) => x['name'] === name);
  assert.ok(m, `${c['name']} mounts ${name}`);
  return m;
};
const agentPort = parseListenAddr(DEFAULTS.metricsAddr)!.port;

describe('deploy/ manifests', () => {
  it('are all Kubernetes objects that kubectl can apply, in kube-system when namespaced', () => {
    assert.deepEqual(applied, ['01-rbac.yaml', '02-config.yaml', '03-daemonset.yaml']);
    const kinds = objects.map((x) => x.o['kind']).sort();
    assert.deepEqual(kinds, ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'ServiceAccount']);
    for (const { file, o } of objects) {
      assert.equal(typeof o['apiVersion'], 'string', `${file}: ${o['kind']} has an apiVersion`);
      assert.match(o['metadata']?.['name'] ?? '', /^[a-z0-9-]+$/, `${file}: ${o['kind']} has a name`);
      if (!/^Cluster/.test(o['kind'])) assert.equal(o['metadata']['namespace'], 'kube-system', `${file}: ${o['kind']} is in kube-system`);
      assert.equal(o['metadata']['labels']?.['app.kubernetes.io/name'], 'podnet', `${file}: ${o['kind']} is labelled for a selector-based cleanup`);
    }
  });

  it('run the agent on every node: host network, every taint tolerated, node-critical, rolling update', () => {
    assert.equal(ds['apiVersion'], 'apps/v1');
    assert.equal(pod['hostNetwork'], true);
    assert.deepEqual(pod['tolerations'], [{ operator: 'Exists' }], 'one toleration without a key tolerates every taint');
    assert.equal(pod['priorityClassName'], 'system-node-critical');
    assert.equal(ds['spec']['updateStrategy']['type'], 'RollingUpdate');
    assert.equal(pod['enableServiceLinks'], false, 'no <SERVICE>_* variables land among the agent\'s PODNET_* settings');
    assert.equal(pod['serviceAccountName'], find('ServiceAccount')['metadata']['name']);
    assert.deepEqual(ds['spec']['selector']['matchLabels'], Object.fromEntries(Object.entries(ds['spec']['template']['metadata']['labels']).filter(([k]) => k in ds['spec']['selector']['matchLabels'])));
  });

  it('use the image this checkout builds, tagged with the package version, from every container', () => {
    for (const c of containers) {
      assert.equal(c['image'], `podnet.local/podnet-agent:${version}`, `${c['name']} runs the agent image`);
      assert.equal(c['imagePullPolicy'], 'IfNotPresent', `${c['name']} runs an imported image without pulling`);
    }
    assert.match(read('deploy/Dockerfile'), new RegExp(`-t podnet\\.local/podnet-agent:${version.replaceAll('.', '\\.')} `), 'the Dockerfile\'s usage line builds the same tag');
  });

  it('probe /healthz and /readyz on the metrics port, which is the agent\'s default port', () => {
    const ports = agent['ports'] as Obj[];
    assert.deepEqual(ports.map((p) => p['name']), ['metrics']);
    assert.equal(ports[0]!['containerPort'], agentPort, `the containerPort is the agent's default --metrics-addr port (${DEFAULTS.metricsAddr})`);
    assert.equal(agent['livenessProbe']['httpGet']['path'], '/healthz');
    assert.equal(agent['readinessProbe']['httpGet']['path'], '/readyz');
    for (const probe of [agent['livenessProbe'], agent['readinessProbe']]) {
      assert.ok(probe['httpGet']['port'] === 'metrics' || probe['httpGet']['port'] === agentPort, 'probes use the metrics port');
    }
    const cfgText = find('ConfigMap')['data']['config.yaml'] as string;
    assert.doesNotMatch(cfgText, /metricsAddr|metrics-addr/, 'the port is stated once: the agent default and the containerPort');
    assert.ok(!(agent['args'] as string[]).some((a) => /metrics-addr/.test(a)));
  });

  it('give the agent its capabilities, not privileged, and only the init container that mounts bpffs is privileged', () => {
    const sc = agent['securityContext'] as Obj;
    assert.notEqual(sc['privileged'], true);
    assert.deepEqual(sc['capabilities']['drop'], ['ALL']);
    assert.deepEqual([...sc['capabilities']['add']].sort(), ['BPF', 'NET_ADMIN', 'SYS_ADMIN']);
    assert.equal(sc['readOnlyRootFilesystem'], true);
    assert.equal(sc['appArmorProfile']['type'], 'Unconfined', 'the runtimes\' default AppArmor profile denies writes under /sys/fs/bpf');
    assert.equal(container('install-cni')['securityContext']['capabilities']['drop'][0], 'ALL');
    const privileged = containers.filter((c) => c['securityContext']?.['privileged'] === true).map((c) => c['name']);
    assert.deepEqual(privileged, ['mount-bpffs']);
    // Kubernetes rejects Bidirectional on unprivileged containers.
    for (const c of containers) {
      for (const m of c['volumeMounts'] ?? []) {
        if (m['mountPropagation'] === 'Bidirectional') assert.equal(c['securityContext']?.['privileged'], true, `${c['name']} mounts ${m['name']} Bidirectional only if privileged`);
      }
    }
  });

  it('mount bpffs, the state dir, the socket dir and netns dirs from the host with the right propagation', () => {
    const host = (v: string): string => volume(v)['hostPath']['path'];
    assert.equal(host(mountOf(agent, 'bpffs')['name']), '/sys/fs/bpf');
    assert.equal(mountOf(agent, 'bpffs')['mountPath'], '/sys/fs/bpf');
    assert.equal(mountOf(agent, 'bpffs')['mountPropagation'], 'HostToContainer', 'the bpffs the init container mounted is seen');
    assert.equal(mountOf(container('mount-bpffs'), 'bpffs')['mountPropagation'], 'Bidirectional', 'a bpffs mounted by the init container is the host\'s');
    assert.equal(host('state'), DEFAULTS.stateDir);
    assert.equal(mountOf(agent, 'state')['mountPath'], DEFAULTS.stateDir);
    assert.equal(host('run'), dirname(DEFAULTS.apiSocket), 'the CNI entry point on the host reaches the agent\'s socket');
    assert.equal(mountOf(agent, 'run')['mountPath'], dirname(DEFAULTS.apiSocket));
    assert.equal(host('netns'), '/run/netns');
    assert.equal(mountOf(agent, 'netns')['mountPropagation'], 'HostToContainer', 'namespaces made after the agent started are seen');
    assert.equal(host('cni-bin'), '/opt/cni/bin');
    assert.equal(host('cni-conf'), '/etc/cni/net.d');
    assert.ok(!(agent['volumeMounts'] as Obj[]).some((m) => m['name'].startsWith('cni-')), 'only the init container touches the CNI dirs');
    const conflist = JSON.parse(read('deploy/10-podnet.conflist')) as { plugins: Array<{ stateDir?: string }> };
    assert.equal(conflist.plugins[0]?.stateDir ?? DEFAULTS.stateDir, host('state'), 'the conflist\'s DEL queue is in the agent\'s state dir');
  });

  it('install the CNI entry point and conflist from the image with an init container', () => {
    const c = container('install-cni');
    assert.deepEqual(c['command'], ['/usr/local/bin/podnet-install-cni']);
    assert.equal(mountOf(c, 'cni-bin')['mountPath'], '/host/opt/cni/bin');
    assert.equal(mountOf(c, 'cni-conf')['mountPath'], '/host/etc/cni/net.d');
    const script = read('scripts/image/install-cni.sh');
    assert.match(script, /bin_dir=\$\{CNI_BIN_DIR:-\/host\/opt\/cni\/bin\}/);
    assert.match(script, /conf_dir=\$\{CNI_CONF_DIR:-\/host\/etc\/cni\/net\.d\}/);
    assert.match(script, /10-podnet\.conflist/);
  });

  it('take the node name from the downward API and the rest from a ConfigMap that the agent accepts', () => {
    const env = agent['env'] as Obj[];
    const nodeName = env.find((e) => e['name'] === 'PODNET_NODE_NAME');
    assert.equal(nodeName?.['valueFrom']?.['fieldRef']?.['fieldPath'], 'spec.nodeName');
    const args = agent['args'] as string[];
    assert.deepEqual(args, ['agent', '--config', '/etc/podnet/config.yaml']);
    const cm = find('ConfigMap');
    assert.equal(volume('config')['configMap']['name'], cm['metadata']['name']);
    assert.equal(mountOf(agent, 'config')['mountPath'], '/etc/podnet');
    const [raw] = docs('deploy/02-config.yaml').filter((o) => o['kind'] === 'ConfigMap').map((o) => o['data']['config.yaml'] as string);
    const settings = parseAllDocuments(raw ?? '')[0]!.toJS() as Record<string, unknown>;
    const cfg = buildAgentConfig({ ...settings, nodeName: 'node-1' }, 'ignored');
    assert.deepEqual(cfg.source, { kind: 'kubernetes', kubeconfig: undefined });
    assert.equal(cfg.bpffs, DEFAULTS.bpffs);
    assert.equal(cfg.stateDir, DEFAULTS.stateDir);
    assert.equal(cfg.apiSocket, DEFAULTS.apiSocket);
  });

  it('grant get, list and watch on every resource the agent\'s informers watch', () => {
    const role = find('ClusterRole');
    for (const t of [NODES, SERVICES, ENDPOINT_SLICES, ...SERVICE_CIDRS]) {
      const group = t.apiVersion.includes('/') ? t.apiVersion.split('/')[0]! : '';
      const rule = (role['rules'] as Obj[]).find((r) => r['apiGroups'].includes(group) && r['resources'].includes(t.plural));
      assert.ok(rule, `the ClusterRole grants ${group || 'core'}/${t.plural} (${t.apiVersion} ${t.kind})`);
      for (const verb of ['get', 'list', 'watch']) assert.ok(rule['verbs'].includes(verb), `${verb} on ${t.plural}`);
    }
  });

  it('grant only get, list and watch, on nodes and the service objects the agent watches', () => {
    const role = find('ClusterRole');
    const allowed: Record<string, string[]> = { '': ['nodes', 'services'], 'discovery.k8s.io': ['endpointslices'], 'networking.k8s.io': ['servicecidrs'] };
    assert.ok((role['rules'] as Obj[]).some((r) => r['resources'].includes('nodes')), 'the agent may read Nodes');
    for (const r of role['rules'] as Obj[]) {
      assert.deepEqual([...r['verbs']].sort(), ['get', 'list', 'watch'], `verbs on ${r['resources']}`);
      assert.ok(!('resourceNames' in r) && !('nonResourceURLs' in r));
      for (const g of r['apiGroups']) for (const res of r['resources']) assert.ok(allowed[g]?.includes(res), `${g || 'core'}/${res} is one the agent needs`);
    }
    const binding = find('ClusterRoleBinding');
    assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role['metadata']['name'] });
    const sa = find('ServiceAccount');
    assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: sa['metadata']['name'], namespace: sa['metadata']['namespace'] }]);
  });
});

describe('deploy/prometheus', () => {
  it('has a scrape job that discovers the agents through the Kubernetes API by the DaemonSet\'s label and port name', () => {
    const [cfg] = docs('deploy/prometheus/scrape-config.yaml');
    const job = (cfg?.['scrape_configs'] as Obj[])[0]!;
    assert.equal(job['job_name'], 'podnet');
    const sd = (job['kubernetes_sd_configs'] as Obj[])[0]!;
    assert.equal(sd['role'], 'pod');
    assert.deepEqual(sd['namespaces']['names'], [ds['metadata']['namespace']]);
    const labels = ds['spec']['template']['metadata']['labels'] as Record<string, string>;
    assert.equal(sd['selectors'][0]['label'], `app.kubernetes.io/name=${labels['app.kubernetes.io/name']}`);
    const keep = (job['relabel_configs'] as Obj[]).find((r) => r['action'] === 'keep' && r['source_labels'].includes('__meta_kubernetes_pod_container_port_name'))!;
    assert.deepEqual(keep['source_labels'], ['__meta_kubernetes_pod_label_app_kubernetes_io_name', '__meta_kubernetes_pod_container_port_name']);
    assert.equal(keep['regex'], `${labels['app.kubernetes.io/name']};${agent['ports'][0]['name']}`);
    const annotations = ds['spec']['template']['metadata']['annotations'] as Record<string, string>;
    assert.equal(annotations['prometheus.io/scrape'], 'true');
    assert.equal(annotations['prometheus.io/path'], '/metrics');
  });

  it('has a PodMonitor for the Prometheus Operator that scrapes the same port', () => {
    const [pm] = docs('deploy/prometheus/podmonitor.yaml');
    assert.equal(pm?.['kind'], 'PodMonitor');
    assert.deepEqual(pm?.['spec']['selector']['matchLabels'], ds['spec']['selector']['matchLabels']);
    assert.equal(pm?.['spec']['podMetricsEndpoints'][0]['port'], agent['ports'][0]['name']);
  });
});

describe('the agent image builds', () => {
  const dockerfile = read('deploy/Dockerfile');
  const script = read('scripts/image/build-agent-image.sh');

  it('install the one Debian package list, and name no package of their own', () => {
    assert.match(dockerfile, /COPY scripts\/image\/packages\.txt /);
    assert.match(dockerfile, /apt-get install -y --no-install-recommends \$\(grep -v -E '\^\\s\*\(#\|\$\)' \/tmp\/podnet-packages\.txt\)/);
    assert.match(script, /grep -v -E '\^\\s\*\(#\|\$\)' "\$here\/packages\.txt"/);
    assert.match(script, /debootstrap --variant=minbase [^\n]*--include="\$include"/);
    const packages = read('scripts/image/packages.txt').split('\n').filter((l) => !/^\s*(#|$)/.test(l));
    for (const p of ['libbpf1', 'libelf1', 'zlib1g', 'clang', 'libbpf-dev', 'linux-libc-dev']) assert.ok(packages.includes(p), `the list has ${p}`);
  });

  it('lay out podnet\'s files with the same staging script, from the same Debian release', () => {
    assert.match(dockerfile, /RUN bash scripts\/image\/stage\.sh --src \/src --modules \/prod\/node_modules --node \/usr\/local\/bin\/node \/stage/);
    assert.match(dockerfile, /COPY --from=build \/stage\/ \//);
    assert.match(script, /bash "\$here\/stage\.sh" --src "\$root" --modules "\$modules" --node "\$nodebin" "\$podnet"/);
    assert.match(script, /^suite=bookworm$/m);
    assert.match(dockerfile, /^FROM debian:12-slim$/m, 'Debian 12 is bookworm');
    assert.match(dockerfile, /^FROM node:20-bookworm-slim AS build$/m);
    for (const cmd of ['npm ci --omit=dev --ignore-scripts', 'rm -rf node_modules/@2060.io']) {
      assert.ok(dockerfile.includes(cmd), `the Dockerfile runs ${cmd}`);
    }
    assert.ok(script.includes('npm ci --omit=dev --ignore-scripts'));
    assert.ok(script.includes('rm -rf "$npmdir/node_modules/@2060.io"'));
  });

  it('start the agent the same way', () => {
    const json = (m: RegExpMatchArray | null): unknown => JSON.parse(m?.[1] ?? 'null');
    assert.deepEqual(json(dockerfile.match(/^ENTRYPOINT (\[.*\])$/m)), json(script.match(/^entrypoint='(\[.*\])'$/m)));
    assert.deepEqual(json(dockerfile.match(/^CMD (\[.*\])$/m)), json(script.match(/^cmd='(\[.*\])'$/m)));
    assert.deepEqual(json(script.match(/^entrypoint='(\[.*\])'$/m)), ['/usr/local/bin/podnet']);
    assert.equal(container('agent')['args'][0], 'agent');
    const stage = read('scripts/image/stage.sh');
    for (const c of containers) {
      const cmd = (c['command'] as string[] | undefined)?.[0];
      if (cmd) assert.ok(stage.includes(`"$dest${cmd}"`), `stage.sh installs ${cmd}, which ${c['name']} runs`);
    }
  });
});
