/* What the socket hooks need of the service load-balancing model
 * (shared/services.h): the service maps, backend selection (affinity, else
 * a random slot) and the per-frontend counters. Context-independent: no
 * packet, only the frontend and the client address. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/services.h"

/* The service maps, pinned by name and shared with every object that
 * declares them; sizes are agent/src/maps/services.ts's defaults. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_svc_key);
	__type(value, struct pn_svc);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct pn_slot_key);
	__type(value, struct pn_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_svc_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct pn_backend_key);
	__type(value, struct pn_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_affinity_key);
	__type(value, struct pn_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_svc_stats_key);
	__type(value, struct pn_svc_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__type(key, struct pn_svc_range_key);
	__type(value, struct pn_svc_range);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_svc_ranges SEC(".maps");

/* True when addr lies inside one of the service CIDRs. */
static __always_inline int pn_in_svc_range(__be32 addr)
{
	struct pn_svc_range_key key = { .prefixlen = 32, .addr = addr };

	return bpf_map_lookup_elem(&pn_svc_ranges, &key) != NULL;
}

/* Adds to a frontend's per-CPU counters (best effort: a full map loses the
 * count, never the connection). */
static __always_inline void pn_svc_count(__u32 frontend_id, __u64 connections, __u64 no_backend)
{
	struct pn_svc_stats_key key = { .frontend_id = frontend_id };
	struct pn_svc_stats *st = bpf_map_lookup_elem(&pn_svc_stats, &key);

	if (!st) {
		struct pn_svc_stats zero = {};

		bpf_map_update_elem(&pn_svc_stats, &key, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&pn_svc_stats, &key);
		if (!st)
			return;
	}
	st->connections += connections;
	st->no_backend += no_backend;
}

/* The backend in one slot of a group, or NULL. */
static __always_inline struct pn_backend *pn_slot_backend(__u32 group_id, __u32 slot, __u32 *backend_id)
{
	struct pn_slot_key skey = { .group_id = group_id, .slot = slot };
	struct pn_backend_key bkey;
	struct pn_slot *s;

	s = bpf_map_lookup_elem(&pn_svc_slots, &skey);
	if (!s)
		return NULL;
	bkey.backend_id = s->backend_id;
	*backend_id = s->backend_id;
	return bpf_map_lookup_elem(&pn_backends, &bkey);
}

/* Picks the backend of a frontend for a new connection of `client`: the
 * client's affinity backend while it is fresh and still exists, else a
 * random slot (recorded as the client's affinity when the frontend has it).
 * NULL when the frontend has no backend (count 0, or a slot or backend
 * missing, which the agent's write order never leaves behind). */
static __always_inline struct pn_backend *pn_sock_select(const struct pn_svc *svc, __be32 client)
{
	struct pn_affinity_key akey = { .group_id = svc->group_id, .client_addr = client };
	__u64 now = bpf_ktime_get_ns();
	struct pn_backend *be;
	__u32 backend_id = 0;

	if (svc->count == 0)
		return NULL;
	if (svc->flags & PN_SVC_F_AFFINITY) {
		struct pn_affinity *a = bpf_map_lookup_elem(&pn_affinity, &akey);

		if (a && now - a->last_used_ns <= (__u64)svc->affinity_seconds * 1000000000ULL) {
			struct pn_backend_key bkey = { .backend_id = a->backend_id };

			be = bpf_map_lookup_elem(&pn_backends, &bkey);
			if (be) {
				a->last_used_ns = now;
				return be;
			}
		}
	}
	be = pn_slot_backend(svc->group_id, bpf_get_prandom_u32() % svc->count, &backend_id);
	if (be && (svc->flags & PN_SVC_F_AFFINITY)) {
		struct pn_affinity a = { .last_used_ns = now, .backend_id = backend_id };

		bpf_map_update_elem(&pn_affinity, &akey, &a, BPF_ANY);
	}
	return be;
}
