/**
 * podnet's BPF maps: one module per map with its descriptor (name, type,
 * key/value codecs, per-CPU, pinned, origin) and a narrow typed API; the
 * registry derives the decode table, the pin list and the open list from
 * the descriptors. The C declarations live in bpf/lib/maps/<feature>.h.
 */
export * from './layout.js';
export * from './descriptor.js';
export * from './endpoints.js';
export * from './ipam.js';
export * from './counters.js';
export * from './events.js';
export * from './services.js';
export * from './sock.js';
export * from './registry.js';
export * from './gen/enums.js';
export * from './gen/drop-reasons.js';
