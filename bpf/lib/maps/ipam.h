/* pn_ipam: pod IPv4 -> owner (container id, ifname, creation time).
 * Written and read by the agent only (agent/src/maps/ipam.ts): the
 * allocator's whole state. No program uses it, so no datapath object
 * includes this header; the agent creates and pins the map from its
 * descriptor, and test/bpf/maps.test.ts checks that descriptor against this
 * declaration. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/endpoint.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_ip4_key);
	__type(value, struct pn_ipam_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_ipam SEC(".maps");
