/* Every BPF map of podnet: the single schema. Each object includes this
 * file; maps with LIBBPF_PIN_BY_NAME are pinned under the agent's pin root
 * (<bpffs>/<instance>) so that every program object and every agent
 * generation share one instance of them. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/counters.h"
#include "shared/endpoint.h"

/* Written by the agent (endpoints module) on CNI ADD/DEL; read by from_pod. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pn_ip4_key);
	__type(value, struct pn_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_endpoints SEC(".maps");

/* Written and read by the agent (ipam module) only: the allocator's state. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_ip4_key);
	__type(value, struct pn_ipam_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_ipam SEC(".maps");

/* Written by from_pod; read by the agent's metrics collector at scrape time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pn_counter_key);
	__type(value, struct pn_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_counters SEC(".maps");

/* Written by the interface counter programs; read by `podnet maps dump` and tests. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pn_if_key);
	__type(value, struct pn_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_ifcount SEC(".maps");

/* Written by the drop path; read by `podnet monitor`. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_events SEC(".maps");
