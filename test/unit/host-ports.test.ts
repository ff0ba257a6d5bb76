/**
 * Host ports (CNI portMappings): validation of runtimeConfig.portMappings,
 * conflicts between pods, the HostPort frontends model.ts makes of them,
 * the Services controller merging them into what the reconciler writes,
 * the CNI route passing them to the endpoint manager, and the services
 * view naming them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CniError } from '../../agent/src/api/cni-error.js';
import { cniRoutes } from '../../agent/src/api/cni-routes.js';
import { CniErrorCode, type CniResult, type HostPortMapping } from '../../agent/src/api/protocol.js';
import type { ApiRequest } from '../../agent/src/api/server.js';
import type { AddRequest, EndpointManager } from '../../agent/src/endpoints/index.js';
import { findConflict, overlaps, parsePortMappings } from '../../agent/src/endpoints/host-ports.js';
import { silentLogger } from '../../agent/src/log/index.js';
import { ServiceController } from '../../agent/src/services/index.js';
import { desiredFrontends, hostPortObjects, type HostPortPod } from '../../agent/src/services/model.js';
import { FakeServiceTables } from '../../agent/src/services/tables.js';
import { FakeSource, WEB as web } from '../lib/fake-service-source.js';

const TCP = 6, UDP = 17;

/** The CniError `fn` throws (fails the test when it throws something else or nothing). */
function cniErrorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, `expected a CniError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a CniError, nothing was thrown');
}

const m = (hostPort: number, protocol: 'tcp' | 'udp', hostIP: string, containerPort = 80): HostPortMapping => ({ hostPort, containerPort, protocol, hostIP });

describe('runtimeConfig.portMappings validation', () => {
  it('accepts a list, lower-cases the protocol, defaults it to tcp and an empty hostIP to 0.0.0.0', () => {
    const r = parsePortMappings([
      { hostPort: 8080, containerPort: 80 },
      { hostPort: 53, containerPort: 5353, protocol: 'UDP', hostIP: '' },
      { hostPort: 54323, containerPort: 8080, protocol: 'Tcp', hostIP: '127.0.0.1' },
    ]);
    assert.deepEqual(r.mappings, [m(8080, 'tcp', '0.0.0.0'), m(53, 'udp', '0.0.0.0', 5353), m(54323, 'tcp', '127.0.0.1', 8080)]);
    assert.deepEqual(r.skipped, []);
  });

  it('reads the field names containerd sends (go-cni\'s untagged HostPort, ContainerPort, Protocol, HostIP) as the portmap plugin does', () => {
    const r = parsePortMappings([
      { HostPort: 54323, ContainerPort: 8080, Protocol: 'TCP', HostIP: '127.0.0.1' },
      { hostport: 54324, CONTAINERPORT: 8081, protocol: 'udp' },
      { hostPort: 54325, HostPort: 1, containerPort: 8082 },
    ]);
    assert.deepEqual(r.mappings, [m(54323, 'tcp', '127.0.0.1', 8080), m(54324, 'udp', '0.0.0.0', 8081), m(54325, 'tcp', '0.0.0.0', 8082)]);
  });

  it('treats an absent or null list as none', () => {
    assert.deepEqual(parsePortMappings(undefined), { mappings: [], skipped: [] });
    assert.deepEqual(parsePortMappings(null), { mappings: [], skipped: [] });
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['a list that is not a list', { hostPort: 1 }, /^invalid config runtimeConfig\.portMappings: must be a list$/],
    ['an entry that is not an object', ['x'], /runtimeConfig\.portMappings\[0\]: must be an object/],
    ['hostPort 0', [{ hostPort: 0, containerPort: 80 }], /runtimeConfig\.portMappings\[0\]\.hostPort: 0 is not an integer in 1\.\.65535/],
    ['hostPort 65536', [{ hostPort: 80, containerPort: 80 }, { hostPort: 65536, containerPort: 80 }], /runtimeConfig\.portMappings\[1\]\.hostPort: 65536 is not/],
    ['a string hostPort', [{ hostPort: '80', containerPort: 80 }], /runtimeConfig\.portMappings\[0\]\.hostPort: "80" is not/],
    ['a fractional containerPort', [{ hostPort: 80, containerPort: 80.5 }], /runtimeConfig\.portMappings\[0\]\.containerPort: 80\.5 is not/],
    ['a missing containerPort', [{ hostPort: 80 }], /runtimeConfig\.portMappings\[0\]\.containerPort: undefined is not/],
    ['sctp', [{ hostPort: 80, containerPort: 80, protocol: 'SCTP' }], /runtimeConfig\.portMappings\[0\]\.protocol: sctp is not supported: podnet translates only tcp and udp/],
    ['an unknown protocol', [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }], /runtimeConfig\.portMappings\[0\]\.protocol: "icmp" is not tcp, udp or sctp/],
    ['a hostIP that is no address', [{ hostPort: 80, containerPort: 80, hostIP: '10.0.0.256' }], /runtimeConfig\.portMappings\[0\]\.hostIP: "10\.0\.0\.256" is not an IPv4 address/],
    ['a hostIP that is no string', [{ hostPort: 80, containerPort: 80, hostIP: 7 }], /runtimeConfig\.portMappings\[0\]\.hostIP: 7 is not a string/],
    ['two entries of one pod that overlap', [{ hostPort: 80, containerPort: 80, hostIP: '10.0.0.1' }, { hostPort: 80, containerPort: 81 }],
      /runtimeConfig\.portMappings\[1\]\.hostPort: 0\.0\.0\.0:80\/tcp -> 81 overlaps runtimeConfig\.portMappings\[0\]/],
  ];
  for (const [what, raw, msg] of bad) {
    it(`refuses ${what} with code 7 naming the field`, () => {
      const e = cniErrorOf(() => parsePortMappings(raw));
      assert.equal(e.cniCode, CniErrorCode.InvalidConfig);
      assert.match(e.message, msg);
    });
  }

  it('keeps an entry listed twice once', () => {
    const e = { hostPort: 80, containerPort: 8080, protocol: 'tcp' };
    assert.deepEqual(parsePortMappings([e, { ...e, protocol: 'TCP', hostIP: '0.0.0.0' }]).mappings, [m(80, 'tcp', '0.0.0.0', 8080)]);
  });

  it('skips IPv6 hostIPs with a line saying why and keeps the rest', () => {
    const r = parsePortMappings([{ hostPort: 80, containerPort: 80, hostIP: '::1' }, { hostPort: 81, containerPort: 80 }]);
    assert.deepEqual(r.mappings, [m(81, 'tcp', '0.0.0.0')]);
    assert.deepEqual(r.skipped, ['runtimeConfig.portMappings[0]: hostIP ::1 is IPv6; podnet serves IPv4 host ports only']);
  });
});

describe('host port conflicts', () => {
  it('are the same port and protocol on the same address, or on any address against 0.0.0.0', () => {
    assert.equal(overlaps(m(80, 'tcp', '10.0.0.1'), m(80, 'tcp', '10.0.0.1')), true);
    assert.equal(overlaps(m(80, 'tcp', '0.0.0.0'), m(80, 'tcp', '127.0.0.1')), true);
    assert.equal(overlaps(m(80, 'tcp', '127.0.0.1'), m(80, 'tcp', '0.0.0.0')), true);
    assert.equal(overlaps(m(80, 'tcp', '127.0.0.1'), m(80, 'tcp', '10.0.0.1')), false, 'different addresses');
    assert.equal(overlaps(m(80, 'tcp', '0.0.0.0'), m(80, 'udp', '0.0.0.0')), false, 'different protocols');
    assert.equal(overlaps(m(80, 'tcp', '0.0.0.0'), m(81, 'tcp', '0.0.0.0')), false, 'different ports');
  });

  it('name the pod that holds the port', () => {
    const holders = [{ who: 'web/a', mappings: [m(54323, 'tcp', '127.0.0.1')] }, { who: 'web/b', mappings: [m(54323, 'tcp', '10.0.0.1')] }];
    assert.equal(findConflict([m(54323, 'udp', '10.0.0.1')], holders), undefined, 'the conformance test\'s third pod fits');
    assert.equal(findConflict([m(54323, 'tcp', '0.0.0.0', 8080)], holders), 'host port 0.0.0.0:54323/tcp is held by pod web/a (127.0.0.1:54323/tcp -> 80)');
    assert.equal(findConflict([m(54323, 'tcp', '10.0.0.1')], holders), 'host port 10.0.0.1:54323/tcp is held by pod web/b (10.0.0.1:54323/tcp -> 80)');
  });
});

const node = { name: 'node-a', addresses: ['10.220.0.1'], hostPortAddresses: ['10.220.0.1', '192.168.5.4'] };
const pod = (mappings: HostPortMapping[], name = 'web-0', ip = '10.244.0.7'): HostPortPod => ({ podNamespace: 'shop', podName: name, containerId: `c-${name}`, ifName: 'eth0', ip, mappings });
const frontendsOf = (pods: HostPortPod[], n: typeof node = node) => {
  const { services, slices } = hostPortObjects(pods, n.name);
  return desiredFrontends(services, slices, n);
};
const show = (fs: ReturnType<typeof desiredFrontends>): string[] =>
  fs.map((f) => `${f.kind} ${f.address}:${f.port}/${f.protocol} -> ${f.backends.map((b) => `${b.ip}:${b.port}`).join(',')} (${f.service} ${f.portName})`);

describe('HostPort frontends', () => {
  it('of a 0.0.0.0 mapping are on every node address, --nodeport-addresses not applied, and on 127.0.0.1', () => {
    assert.deepEqual(show(frontendsOf([pod([m(8080, 'tcp', '0.0.0.0', 80)])])), [
      'HostPort 10.220.0.1:8080/TCP -> 10.244.0.7:80 (hostport:shop/web-0 0.0.0.0:8080)',
      'HostPort 127.0.0.1:8080/TCP -> 10.244.0.7:80 (hostport:shop/web-0 0.0.0.0:8080)',
      'HostPort 192.168.5.4:8080/TCP -> 10.244.0.7:80 (hostport:shop/web-0 0.0.0.0:8080)',
    ]);
  });

  it('of a specific hostIP are on that address only, 127.0.0.1 included', () => {
    assert.deepEqual(show(frontendsOf([pod([m(54323, 'tcp', '127.0.0.1', 8080), m(54323, 'tcp', '10.220.0.1', 8081), m(54323, 'udp', '10.220.0.1', 8082)])])), [
      'HostPort 10.220.0.1:54323/TCP -> 10.244.0.7:8081 (hostport:shop/web-0 10.220.0.1:54323)',
      'HostPort 10.220.0.1:54323/UDP -> 10.244.0.7:8082 (hostport:shop/web-0 10.220.0.1:54323)',
      'HostPort 127.0.0.1:54323/TCP -> 10.244.0.7:8080 (hostport:shop/web-0 127.0.0.1:54323)',
    ]);
  });

  it('fall back to the NodePort addresses when the node view has no host-port addresses', () => {
    const fs = frontendsOf([pod([m(8080, 'tcp', '0.0.0.0')])], { name: 'node-a', addresses: ['10.220.0.1'] } as typeof node);
    assert.deepEqual(fs.map((f) => f.address), ['10.220.0.1', '127.0.0.1']);
  });

  it('are only made for the agent\'s own host-port Services, not for a file\'s Service of type HostPort', () => {
    const fs = desiredFrontends([{ metadata: { namespace: 'shop', name: 'sneaky' }, spec: { type: 'HostPort', ports: [{ name: 'x', port: 22, hostIP: '0.0.0.0' }] } }], [], node);
    assert.deepEqual(fs, []);
  });

  it('get a Service per pod, named by the pod, or by the container id without a pod name', () => {
    const { services } = hostPortObjects([pod([m(1, 'tcp', '0.0.0.0')]), { containerId: 'abc123', ifName: 'net1', ip: '10.244.0.9', mappings: [m(2, 'tcp', '0.0.0.0')] }, pod([], 'idle')], 'node-a');
    assert.deepEqual(services.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`), ['hostport:shop/web-0', 'hostport:/abc123@net1']);
  });
});


describe('the service controller with host ports', () => {
  function setup(pods: HostPortPod[]) {
    const tables = new FakeServiceTables();
    const source = new FakeSource();
    const c = new ServiceController({
      tables, source, nodeName: 'n', addresses: () => ['10.220.0.1'], hostPortAddresses: () => ['10.220.0.1', '192.168.5.4'],
      hostPorts: () => pods, defaultServiceCidrs: [], log: silentLogger(), healthChecks: false,
    });
    c.start();
    return { tables, source, c };
  }

  it('writes host ports beside the source\'s Services, only once the source delivered its first state', async () => {
    const pods = [pod([m(8080, 'tcp', '0.0.0.0', 80), m(53, 'udp', '127.0.0.1', 5353)])];
    const { tables, source, c } = setup(pods);
    c.hostPortsChanged();
    assert.equal(tables.frontends.size, 0, 'nothing before the first snapshot (a pass would sweep an earlier agent\'s Services)');
    assert.deepEqual(c.hostPortProblems(pods[0]!), ['host ports are not written yet: the Service source has not delivered its first state']);
    source.push(web);
    assert.deepEqual(tables.backendsOf('10.96.0.10', 80, TCP), ['10.244.0.5:8080']);
    for (const a of ['10.220.0.1', '192.168.5.4', '127.0.0.1']) assert.deepEqual(tables.backendsOf(a, 8080, TCP), ['10.244.0.7:80'], `${a}:8080/TCP`);
    assert.deepEqual(tables.backendsOf('127.0.0.1', 53, UDP), ['10.244.0.7:5353']);
    assert.deepEqual(tables.backendsOf('10.220.0.1', 53, UDP), [], 'a 127.0.0.1 mapping is not on the node address');
    assert.deepEqual(c.hostPortProblems(pods[0]!), []);
    const hp = c.info().services.find((s) => s.name === 'web-0');
    assert.ok(hp, 'the view lists the pod');
    assert.equal(hp.namespace, 'shop');
    assert.equal(hp.kind, 'hostport');
    assert.deepEqual(hp.ports.flatMap((p) => p.frontends.map((f) => `${f.kind} ${f.address}:${f.port}/${f.protocol}`)).sort(),
      ['HostPort 10.220.0.1:8080/TCP', 'HostPort 127.0.0.1:53/UDP', 'HostPort 127.0.0.1:8080/TCP', 'HostPort 192.168.5.4:8080/TCP']);
    await c.stop();
  });

  it('removes the frontends of a pod that no longer holds host ports and keeps the Services', async () => {
    const pods = [pod([m(8080, 'tcp', '0.0.0.0', 80)])];
    const { tables, source, c } = setup(pods);
    source.push(web);
    assert.equal(tables.frontends.size, 4);
    pods.length = 0;
    c.hostPortsChanged();
    assert.equal(tables.frontends.size, 1, 'only the ClusterIP is left');
    assert.deepEqual(tables.backendsOf('10.220.0.1', 8080, TCP), []);
    assert.deepEqual([...tables.backends.values()].map((b) => `${b.addr}:${b.port}`), ['10.244.0.5:8080'], 'the pod\'s backend went too');
    await c.stop();
  });

  it('keeps host ports through a snapshot of the source and a full resync', async () => {
    const pods = [pod([m(8080, 'tcp', '127.0.0.1', 80)])];
    const { tables, source, c } = setup(pods);
    source.push(web);
    source.push({ ...web, services: [...web.services] });
    assert.deepEqual(tables.backendsOf('127.0.0.1', 8080, TCP), ['10.244.0.7:80']);
    tables.frontends.clear();
    assert.deepEqual(c.hostPortProblems(pods[0]!), ['host port frontend 127.0.0.1:8080/TCP is missing from pn_services']);
    (c as unknown as { d: { verifyIntervalMs: number } }).d.verifyIntervalMs = 0;
    await c.resync();
    assert.deepEqual(tables.backendsOf('127.0.0.1', 8080, TCP), ['10.244.0.7:80'], 'repaired');
    await c.stop();
  });

  it('follows a change of the node\'s addresses', async () => {
    let addrs = ['10.220.0.1'];
    const tables = new FakeServiceTables();
    const source = new FakeSource();
    const c = new ServiceController({
      tables, source, nodeName: 'n', addresses: () => ['10.220.0.1'], hostPortAddresses: () => addrs,
      hostPorts: () => [pod([m(8080, 'tcp', '0.0.0.0', 80)])], defaultServiceCidrs: [], log: silentLogger(), healthChecks: false,
    });
    c.start();
    source.push(web);
    assert.deepEqual(tables.backendsOf('10.220.0.9', 8080, TCP), []);
    addrs = ['10.220.0.1', '10.220.0.9'];
    c.hostPortsChanged();
    assert.deepEqual(tables.backendsOf('10.220.0.9', 8080, TCP), ['10.244.0.7:80']);
    await c.stop();
  });

  it('with Services off writes nothing and says host ports need them', async () => {
    const tables = new FakeServiceTables();
    const c = new ServiceController({ tables, source: undefined, nodeName: 'n', addresses: () => [], hostPorts: () => [pod([m(1, 'tcp', '0.0.0.0')])], defaultServiceCidrs: [], log: silentLogger() });
    c.start();
    c.hostPortsChanged();
    assert.equal(tables.frontends.size, 0);
    assert.deepEqual(c.hostPortProblems(pod([m(1, 'tcp', '0.0.0.0')])), ['host ports need Services on (--services on)']);
    await c.stop();
  });
});

describe('the CNI routes with portMappings', () => {
  const RESULT: CniResult = { cniVersion: '1.1.0', interfaces: [], ips: [{ address: '10.244.1.2/32' }], routes: [], dns: {} };
  function setup() {
    const adds: AddRequest[] = [];
    const checks: unknown[] = [];
    const mgr = {
      add: async (req: AddRequest) => { adds.push(req); return { result: RESULT, meta: {} }; },
      check: (req: unknown) => { checks.push(req); },
    };
    const routes = cniRoutes(mgr as unknown as EndpointManager, { readiness: () => ({ ready: true }), defaultMtu: 1450, log: silentLogger() });
    const call = (key: string, body: unknown) => routes[key]!({ method: 'POST', path: key.split(' ')[1]!, query: new URLSearchParams(), body } as ApiRequest);
    return { adds, checks, call };
  }
  const body = (portMappings: unknown) => ({ containerId: 'c1', netns: '/var/run/netns/p1', ifName: 'eth0', args: {}, network: 'podnet', cniVersion: '1.0.0', portMappings });

  it('hand validated host ports to the endpoint manager on ADD and CHECK', async () => {
    const { adds, checks, call } = setup();
    await call('POST /v1/cni/add', body([{ hostPort: 54323, containerPort: 8080, protocol: 'UDP', hostIP: '10.0.0.1' }]));
    assert.deepEqual(adds[0]!.hostPorts, [m(54323, 'udp', '10.0.0.1', 8080)]);
    await call('POST /v1/cni/add', body(undefined));
    assert.equal(adds[1]!.hostPorts, undefined, 'none without portMappings');
    await call('POST /v1/cni/check', { ...body([{ hostPort: 1, containerPort: 2 }]), prevResult: RESULT });
    assert.deepEqual((checks[0] as { hostPorts: unknown }).hostPorts, [m(1, 'tcp', '0.0.0.0', 2)]);
  });

  it('refuse a bad entry with code 7 before the endpoint manager is called', async () => {
    const { adds, call } = setup();
    await assert.rejects(call('POST /v1/cni/add', body([{ hostPort: 80, containerPort: 80, protocol: 'sctp' }])), (err: unknown) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.cniCode, CniErrorCode.InvalidConfig);
      assert.match(err.message, /runtimeConfig\.portMappings\[0\]\.protocol: sctp is not supported/);
      return true;
    });
    assert.equal(adds.length, 0);
  });
});

describe('podnet services with host ports', () => {
  it('prints a pod\'s host ports as "hostport <namespace>/<pod>" and keeps the kind in JSON', async () => {
    const { servicesJson, servicesText } = await import('../../agent/src/cli/read.js');
    const fe = { id: 1, kind: 'HostPort', address: '127.0.0.1', port: 54323, protocol: 'TCP', count: 1, flags: [], affinitySeconds: null, stats: { connections: 0, packets: 0, bytes: 0, noBackend: 0 } };
    const d = servicesJson({
      enabled: true, synced: true, sourceError: null, ranges: [], lastReconcile: null,
      services: [{ namespace: 'web', name: 'pod-1', kind: 'hostport', ports: [{ groupId: 1, portName: '127.0.0.1:54323', protocol: 'TCP', scope: 'cluster', frontends: [fe], backends: [{ id: 1, address: '10.244.0.7', port: 8080, protocol: 'TCP', state: 'ready', local: true }], problems: [] }] }],
    });
    assert.equal(d.services[0]!.kind, 'hostport');
    assert.match(servicesText(d), /^hostport web\/pod-1\s+127\.0\.0\.1:54323\/TCP\s+127\.0\.0\.1:54323\s+HostPort\s+-\s+0\s+0\s+10\.244\.0\.7:8080$/m);
  });
});
