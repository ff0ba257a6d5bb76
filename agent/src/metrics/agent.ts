/** Agent health and IPAM usage metrics. */
import { Gauge, type Registry } from 'prom-client';

/** What the agent group reads at scrape time. */
export interface AgentSource {
  ready(): boolean;
  mode(): string;
  hostRouting(): string;
  ipam(): { used: number; free: number };
  version: string;
}

/** Registers podnet_agent_ready, podnet_agent_info and podnet_ipam_addresses. */
export function agentMetrics(registry: Registry, src: AgentSource): void {
  const registers = [registry];
  new Gauge({ name: 'podnet_agent_ready', help: '1 when the agent serves CNI requests.', registers, collect() { this.set(src.ready() ? 1 : 0); } });
  new Gauge({
    name: 'podnet_agent_info', help: 'Agent version, datapath attach mode and host routing (value always 1).', labelNames: ['version', 'datapath_mode', 'host_routing'], registers,
    collect() { this.reset(); this.set({ version: src.version, datapath_mode: src.mode(), host_routing: src.hostRouting() }, 1); },
  });
  new Gauge({
    name: 'podnet_ipam_addresses', help: 'Pod CIDR addresses by state (used, free).', labelNames: ['state'], registers,
    collect() { const u = src.ipam(); this.set({ state: 'used' }, u.used); this.set({ state: 'free' }, u.free); },
  });
}
