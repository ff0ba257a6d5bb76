/* Adding to a per-CPU packet/byte counter in any map whose value is
 * struct pn_traffic. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/counters.h"

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
