/** pn_events: drop (later also trace) records on a ring buffer, read by `podnet monitor`. */
import { ipv4, u32, u64, u8 } from '../libbpf/index.js';
import { defineMap } from './descriptor.js';
import { cStruct } from './layout.js';
import { decodeDirection, decodeEventType, type DirectionName, type EventTypeName } from './gen/enums.js';
import { decodeDropReason, type DropReasonName } from './gen/drop-reasons.js';

export const eventRecord = cStruct('pn_event', 32, {
  type: ['type', 0, u8],
  reason: ['reason', 1, u8],
  direction: ['direction', 2, u8],
  protocol: ['protocol', 3, u8],
  len: ['len', 4, u32],
  timestampNs: ['timestamp_ns', 8, u64],
  endpointId: ['endpoint_id', 16, u32],
  ifindex: ['ifindex', 20, u32],
  saddr: ['saddr', 24, ipv4],
  daddr: ['daddr', 28, ipv4],
});

/** The pn_events descriptor (bpf/lib/maps/events.h). */
export const EVENTS = defineMap({
  name: 'pn_events',
  type: 'ringbuf',
  maxEntries: 256 * 1024,
  perCpu: false,
  pinned: true,
  origin: 'object',
  description: 'ring buffer of struct pn_event; written by the drop path, read by podnet monitor',
});
export const EVENTS_MAP = EVENTS.name;

/** A decoded pn_events record. */
export type DatapathEvent = {
  type: 'drop'; reason: DropReasonName; direction: DirectionName; protocol: number; len: number;
  timestampNs: bigint; endpointId: number; ifindex: number; saddr: string; daddr: string;
};

/** Decodes one ring-buffer record. Throws PodnetError BAD_ENUM on a type, reason or direction this build does not know. */
export function decodeEvent(data: Buffer): DatapathEvent {
  const r = eventRecord.decode(data, 0);
  const type: EventTypeName = decodeEventType(r.type, 'pn_events record type');
  return {
    type,
    reason: decodeDropReason(r.reason, 'pn_events record reason'),
    direction: decodeDirection(r.direction, 'pn_events record direction'),
    protocol: r.protocol, len: r.len, timestampNs: r.timestampNs, endpointId: r.endpointId, ifindex: r.ifindex, saddr: r.saddr, daddr: r.daddr,
  };
}
