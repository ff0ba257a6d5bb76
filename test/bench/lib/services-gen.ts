/**
 * The objects of the Services benchmarks: a namespace, the traffic program
 * as a ConfigMap, backend pods and a client pod (the agent image's node
 * runs lib/svc-probe.cjs), the Service under test with a selector, and the
 * extra selector-less Services, each with one hand-made EndpointSlice.
 *
 * Extra endpoints are addresses inside the cluster CIDR but outside the
 * node's pod CIDR, so nothing answers them and no packet to them leaves the
 * machine (the cluster's blackhole route covers the CIDR); no traffic is
 * sent to extra Services anyway. Every endpoint of the run is a distinct
 * address:port pair, so no proxy gets to share one backend between Services.
 */
import type { KubeManifest } from './kube-api.js';

/** Everything the benchmark creates lives in this namespace; deleting it removes the lot. */
export const BENCH_NAMESPACE = 'pn-bench-svc';
export const TARGET_SERVICE = 'pn-bench-target';
export const BACKEND_LABEL = 'pn-bench-backend';
/** The port the probe servers listen on, and the target Service's port. */
export const BACKEND_PORT = 8080;
export const SERVICE_PORT = 80;
/** The name of every Service port (kube-proxy's chain names include it). */
export const PORT_NAME = 'tcp';

export function namespace(): KubeManifest {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: BENCH_NAMESPACE } };
}

export function probeConfigMap(script: string): KubeManifest {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'pn-bench-probe', namespace: BENCH_NAMESPACE }, data: { 'svc-probe.cjs': script } };
}

/** A pod of the agent image running the probe program with `args`. */
export function probePod(name: string, image: string, args: readonly string[], labels: Record<string, string> = {}): KubeManifest {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: BENCH_NAMESPACE, labels },
    spec: {
      terminationGracePeriodSeconds: 0,
      enableServiceLinks: false,
      containers: [
        {
          name: 'probe',
          image,
          imagePullPolicy: 'Never',
          command: ['/usr/bin/node', '/probe/svc-probe.cjs', ...args],
          ...(args[0] === 'server' ? { readinessProbe: { tcpSocket: { port: Number(args[1]) }, periodSeconds: 1 } } : {}),
          volumeMounts: [{ name: 'probe', mountPath: '/probe', readOnly: true }],
        },
      ],
      volumes: [{ name: 'probe', configMap: { name: 'pn-bench-probe' } }],
    },
  };
}

export function backendPod(i: number, image: string): KubeManifest {
  return probePod(`pn-bench-be-${i}`, image, ['server', String(BACKEND_PORT)], { app: BACKEND_LABEL });
}

export function clientPod(image: string): KubeManifest {
  return probePod('pn-bench-client', image, ['server', String(BACKEND_PORT + 1)]);
}

export function targetService(): KubeManifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: TARGET_SERVICE, namespace: BENCH_NAMESPACE },
    spec: { selector: { app: BACKEND_LABEL }, ports: [{ name: PORT_NAME, port: SERVICE_PORT, targetPort: BACKEND_PORT, protocol: 'TCP' }] },
  };
}

export function extraServiceName(i: number): string {
  return `pn-bench-x-${String(i).padStart(5, '0')}`;
}

export function extraService(i: number): KubeManifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: extraServiceName(i), namespace: BENCH_NAMESPACE },
    spec: { ports: [{ name: PORT_NAME, port: SERVICE_PORT, targetPort: BACKEND_PORT, protocol: 'TCP' }] },
  };
}

/** 10.221.1.0 .. 10.221.255.255: the cluster CIDR without the node's first /24. */
const FAKE_BASE = (10 << 24) | (221 << 16) | (1 << 8);
const FAKE_COUNT = 255 * 256;

function ipv4(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * The endpoints of extra Service `i` with `perService` endpoints each:
 * consecutive addresses from the fake range, and a port that moves on each
 * time the range wraps, so address:port pairs never repeat.
 */
export function extraEndpoints(i: number, perService: number): { addresses: string[]; port: number } {
  const first = i * perService;
  const wrap = Math.floor(first / FAKE_COUNT);
  const addresses: string[] = [];
  for (let j = 0; j < perService; j++) addresses.push(ipv4(FAKE_BASE + ((first + j) % FAKE_COUNT)));
  return { addresses, port: BACKEND_PORT + 100 + wrap };
}

/** The hand-made EndpointSlice of extra Service `i`. */
export function extraSlice(i: number, perService: number, extra: readonly string[] = []): KubeManifest {
  const { addresses, port } = extraEndpoints(i, perService);
  return endpointSlice(extraServiceName(i), [...addresses, ...extra], port);
}

export function endpointSlice(service: string, addresses: readonly string[], port: number): KubeManifest {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${service}-bench`,
      namespace: BENCH_NAMESPACE,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'podnet-bench' },
    },
    addressType: 'IPv4',
    ports: [{ name: PORT_NAME, port, protocol: 'TCP' }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false } })),
  };
}

/** Addresses for endpoint-change samples: outside every extra Service's range (the top of the fake range is used last). */
export function changeAddress(k: number): string {
  return ipv4(FAKE_BASE + FAKE_COUNT - 1 - (k % 200));
}
