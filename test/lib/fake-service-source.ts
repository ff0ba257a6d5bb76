/** A Services source the unit tests push snapshots through, and the one small Service they share. */
import { SERVICE_NAME_LABEL, type ServiceSnapshot, type ServiceSource } from '../../agent/src/services/index.js';

/** A ServiceSource whose snapshots the test pushes. */
export class FakeSource implements ServiceSource {
  onChange: ((s: ServiceSnapshot) => void) | undefined;
  synced = false;
  lastError: string | undefined;
  stopped = false;
  start(onChange: (s: ServiceSnapshot) => void): void { this.onChange = onChange; }
  stats(): Record<string, unknown> { return {}; }
  async stop(): Promise<void> { this.stopped = true; }
  push(s: ServiceSnapshot): void { this.synced = true; this.onChange!(s); }
}

/** shop/web: a ClusterIP 10.96.0.10:80 with one endpoint 10.244.0.5:8080 on node "n". */
export const WEB: ServiceSnapshot = {
  services: [{ metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] } }],
  slices: [{ metadata: { name: 'web-1', namespace: 'shop', labels: { [SERVICE_NAME_LABEL]: 'web' } }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['10.244.0.5'], nodeName: 'n' }] }],
  serviceCidrs: undefined,
};
