/** Typed views of every podnet BPF map; the schema itself is bpf/maps.h. */
export * from './layout.js';
export * from './endpoints.js';
export * from './ipam.js';
export * from './counters.js';
export * from './events.js';
export * from './registry.js';
