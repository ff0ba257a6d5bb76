/** Agent health and IPAM usage metrics. */
import { Gauge, type Registry } from 'prom-client';
import type { IpamUsage } from '../ipam/index.js';

/** Registers podnet_agent_ready, podnet_endpoints and the IPAM gauges. */
export function agentMetrics(registry: Registry, src: { ready: () => boolean; endpoints: () => number; ipam: () => IpamUsage; version: string; mode: () => string }): void {
  new Gauge({ name: 'podnet_agent_ready', help: '1 when the agent serves CNI requests.', registers: [registry], collect() { this.set(src.ready() ? 1 : 0); } });
  new Gauge({ name: 'podnet_agent_info', help: 'Agent version and datapath attach mode.', labelNames: ['version', 'datapath_mode'], registers: [registry], collect() { this.reset(); this.set({ version: src.version, datapath_mode: src.mode() }, 1); } });
  new Gauge({ name: 'podnet_endpoints', help: 'Pod endpoints on this node.', registers: [registry], collect() { this.set(src.endpoints()); } });
  new Gauge({ name: 'podnet_ipam_addresses', help: 'Pod CIDR addresses by state (used, free).', labelNames: ['state'], registers: [registry], collect() { const u = src.ipam(); this.set({ state: 'used' }, u.used); this.set({ state: 'free' }, u.free); } });
}
