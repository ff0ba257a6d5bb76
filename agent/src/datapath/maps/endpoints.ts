/** pn_endpoints: pod IPv4 -> host veth, MACs, endpoint id. Written by the agent, read by from_pod/to_pod. */
import { ipv4, mac, u32, type BpfMap, type TypedMap } from '../../libbpf/index.js';
import { cStruct } from './layout.js';

export const ENDPOINTS_MAP = 'pn_endpoints';
/** PN_EP_F_READY: the datapath may redirect traffic to this endpoint. */
export const EP_F_READY = 0x1;

export const ip4Key = cStruct('pn_ip4_key', 4, { addr: ['addr', 0, ipv4] });
export const endpointValue = cStruct('pn_endpoint', 24, {
  ifindex: ['ifindex', 0, u32],
  endpointId: ['endpoint_id', 4, u32],
  podMac: ['pod_mac', 8, mac],
  hostMac: ['host_mac', 14, mac],
  flags: ['flags', 20, u32],
});

/** An endpoint entry. */
export interface EndpointEntry { ifindex: number; endpointId: number; podMac: string; hostMac: string; flags: number }

/** What the endpoint lifecycle needs from the map; tests fake it. */
export interface EndpointsTable {
  get(ip: string): EndpointEntry | undefined;
  set(ip: string, e: EndpointEntry): void;
  delete(ip: string): boolean;
  entries(): Iterable<[string, EndpointEntry]>;
}

/** The BPF-backed endpoints table. */
export class EndpointsMap implements EndpointsTable {
  private readonly t: TypedMap<{ addr: string }, EndpointEntry>;
  constructor(readonly map: BpfMap) {
    this.t = map.typed(ip4Key, endpointValue);
  }
  get(ip: string) { return this.t.get({ addr: ip }); }
  set(ip: string, e: EndpointEntry) { this.t.set({ addr: ip }, e); }
  delete(ip: string) { return this.t.delete({ addr: ip }); }
  *entries(): Generator<[string, EndpointEntry]> {
    for (const [k, v] of this.t.entries()) yield [k.addr, v];
  }
}
