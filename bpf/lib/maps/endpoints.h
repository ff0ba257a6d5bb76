/* pn_endpoints: pod IPv4 -> host veth, MACs, endpoint id, flags.
 * Written by the agent (agent/src/maps/endpoints.ts) on CNI ADD/DEL; read by
 * from_pod and to_pod. Pinned by name under the agent's pin root, so every
 * object and agent generation shares one instance. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/endpoint.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pn_ip4_key);
	__type(value, struct pn_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_endpoints SEC(".maps");
