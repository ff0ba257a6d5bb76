/* pn_counters: per-CPU {endpoint, direction, reason} -> packets/bytes.
 * Written by the pod programs (forwarded traffic and the drop path); read by
 * the agent's metrics collector at scrape time (agent/src/maps/counters.ts).
 * Per-CPU values need no atomics: each CPU only touches its own copy. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/counters.h"
#include "lib/traffic.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pn_counter_key);
	__type(value, struct pn_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_counters SEC(".maps");

static __always_inline void pn_ep_count(__u32 endpoint_id, __u8 direction, __u8 reason, __u64 bytes)
{
	struct pn_counter_key key = { .endpoint_id = endpoint_id, .direction = direction, .reason = reason };

	pn_traffic_add(&pn_counters, &key, bytes);
}
