/** pn_endpoints: pod IPv4 -> host veth, MACs, endpoint id, flags. Written by the agent, read by from_pod/to_pod. */
import { ipv4, mac, u32, type BpfMap, type TypedMap } from '../libbpf/index.js';
import { defineMap } from './descriptor.js';
import { cStruct } from './layout.js';
import { ENDPOINT_FLAG, decodeEndpointFlags } from './gen/enums.js';

/** PN_EP_F_READY: the datapath may redirect traffic to this endpoint. */
export const EP_F_READY = ENDPOINT_FLAG.ready;

export const ip4Key = cStruct('pn_ip4_key', 4, { addr: ['addr', 0, ipv4] });
export const endpointValue = cStruct('pn_endpoint', 24, {
  ifindex: ['ifindex', 0, u32],
  endpointId: ['endpoint_id', 4, u32],
  podMac: ['pod_mac', 8, mac],
  hostMac: ['host_mac', 14, mac],
  flags: ['flags', 20, u32],
});

/** The pn_endpoints descriptor (bpf/lib/maps/endpoints.h). */
export const ENDPOINTS = defineMap({
  name: 'pn_endpoints',
  type: 'hash',
  key: ip4Key,
  value: endpointValue,
  maxEntries: 4096,
  perCpu: false,
  pinned: true,
  origin: 'object',
  description: 'pod IPv4 -> host veth, MACs, endpoint id, flags; written by the agent on CNI ADD/DEL, read by from_pod and to_pod',
});
export const ENDPOINTS_MAP = ENDPOINTS.name;

/** An endpoint entry. */
export interface EndpointEntry { ifindex: number; endpointId: number; podMac: string; hostMac: string; flags: number }

/** What the endpoint lifecycle needs from the map; tests fake it. */
export interface EndpointsTable {
  get(ip: string): EndpointEntry | undefined;
  set(ip: string, e: EndpointEntry): void;
  delete(ip: string): boolean;
  entries(): Iterable<[string, EndpointEntry]>;
}

// A flag this agent does not know means a newer datapath wrote the entry:
// acting on half of its meaning would be wrong, so reading it fails.
function checked(ip: string, e: EndpointEntry): EndpointEntry {
  decodeEndpointFlags(e.flags, `pn_endpoints[${ip}].flags`);
  return e;
}

/** The BPF-backed endpoints table. Reads throw PodnetError BAD_ENUM on flag bits this build does not know. */
export class EndpointsMap implements EndpointsTable {
  private readonly t: TypedMap<{ addr: string }, EndpointEntry>;
  constructor(readonly map: BpfMap) {
    this.t = map.typed(ip4Key, endpointValue);
  }
  get(ip: string): EndpointEntry | undefined {
    const e = this.t.get({ addr: ip });
    return e && checked(ip, e);
  }
  set(ip: string, e: EndpointEntry): void { this.t.set({ addr: ip }, e); }
  delete(ip: string): boolean { return this.t.delete({ addr: ip }); }
  *entries(): Generator<[string, EndpointEntry]> {
    for (const [k, v] of this.t.entries()) yield [k.addr, checked(k.addr, v)];
  }
}
