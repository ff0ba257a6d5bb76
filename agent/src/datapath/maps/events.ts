/** pn_events: drop events on a ring buffer, read by `podnet monitor`. */
import { ipv4, u32, u64, u8 } from '../../libbpf/index.js';
import { cStruct } from './layout.js';

export const EVENTS_MAP = 'pn_events';

export const eventRecord = cStruct('pn_event', 32, {
  timestampNs: ['timestamp_ns', 0, u64],
  endpointId: ['endpoint_id', 8, u32],
  ifindex: ['ifindex', 12, u32],
  saddr: ['saddr', 16, ipv4],
  daddr: ['daddr', 20, ipv4],
  reason: ['reason', 24, u8],
  direction: ['direction', 25, u8],
  protocol: ['protocol', 26, u8],
  pad: ['pad', 27, u8],
  len: ['len', 28, u32],
});
