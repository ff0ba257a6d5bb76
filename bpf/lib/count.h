/* Per-CPU packet/byte counters. Per-CPU values need no atomics: each CPU
 * only ever touches its own copy, and the agent sums them at read time. */
#pragma once
#include "maps.h"

static __always_inline void pn_traffic_add(void *map, const void *key, __u64 bytes)
{
	struct pn_traffic *t = bpf_map_lookup_elem(map, key);

	if (!t) {
		struct pn_traffic zero = {};

		/* NOEXIST: another CPU may have created the entry meanwhile; either way
		 * the lookup below then finds this CPU's copy. */
		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(map, key);
		if (!t)
			return; /* map full: counting is best effort, forwarding is not */
	}
	t->packets++;
	t->bytes += bytes;
}

static __always_inline void pn_if_count(__u32 ifindex, __u32 hook, __u64 bytes)
{
	struct pn_if_key key = { .ifindex = ifindex, .hook = hook };

	pn_traffic_add(&pn_ifcount, &key, bytes);
}

static __always_inline void pn_ep_count(__u32 endpoint_id, __u8 direction, __u8 reason, __u64 bytes)
{
	struct pn_counter_key key = { .endpoint_id = endpoint_id, .direction = direction, .reason = reason };

	pn_traffic_add(&pn_counters, &key, bytes);
}
