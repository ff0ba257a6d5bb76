/* Backend selection for a Service frontend, independent of the program
 * context: the tc programs (lib/service.h) and the cgroup socket programs
 * both call it. Only map lookups and helpers every program type has
 * (bpf_ktime_get_ns, bpf_get_prandom_u32).
 *
 *   pn_lb_frontend()  the frontend of (address, port, protocol), or NULL
 *   pn_lb_backend()   a backend by id, or NULL (also for id 0)
 *   pn_lb_select()    picks the backend of a new connection: the client's
 *                     affinity backend while it is fresh and still exists,
 *                     else a random slot of the group; records affinity
 *   pn_lb_stats_*()   per-frontend counters in pn_svc_stats
 *
 * Locality (PN_SVC_F_LOCAL) and terminating endpoints are the agent's:
 * it fills each group with the backends its policy allows, and selection
 * takes the group as it is. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/services.h"
#include "lib/maps/services.h"

#define PN_NSEC_PER_SEC 1000000000ULL

/* The frontend of a destination, or NULL. */
static __always_inline struct pn_svc *pn_lb_frontend(__be32 addr, __be16 port, __u8 proto)
{
	struct pn_svc_key key = { .addr = addr, .port = port, .proto = proto };

	return bpf_map_lookup_elem(&pn_services, &key);
}

/* A backend by id; NULL when it is gone (or for id 0, which is never a backend). */
static __always_inline struct pn_backend *pn_lb_backend(__u32 backend_id)
{
	struct pn_backend_key key = { .backend_id = backend_id };

	if (backend_id == 0)
		return NULL;
	return bpf_map_lookup_elem(&pn_backends, &key);
}

/* True when addr lies inside one of the service CIDRs. */
static __always_inline int pn_lb_in_service_range(__be32 addr)
{
	struct pn_svc_range_key key = { .prefixlen = 32, .addr = addr };

	return bpf_map_lookup_elem(&pn_svc_ranges, &key) != NULL;
}

/* What pn_lb_select() needs of a frontend, copied out of the map value so
 * a concurrent update by the agent cannot change it half-way. */
struct pn_lb_frontend_info {
	__u32 frontend_id;
	__u32 group_id;
	__u32 count;
	__u32 flags;
	__u32 affinity_seconds;
};

static __always_inline void pn_lb_frontend_copy(const struct pn_svc *svc, struct pn_lb_frontend_info *fe)
{
	fe->frontend_id = svc->frontend_id;
	fe->group_id = svc->group_id;
	fe->count = svc->count;
	fe->flags = svc->flags;
	fe->affinity_seconds = svc->affinity_seconds;
}

/* The affinity backend of `client` in the frontend's group while it is
 * younger than affinity_seconds and still exists; refreshes its last use. */
static __always_inline __u32 pn_lb_affinity_get(const struct pn_lb_frontend_info *fe, __be32 client, __u64 now)
{
	struct pn_affinity_key key = { .group_id = fe->group_id, .client_addr = client };
	struct pn_affinity *a;
	__u32 id;

	a = bpf_map_lookup_elem(&pn_affinity, &key);
	if (!a)
		return 0;
	/* A last use after now (another CPU, just now) is fresh. */
	if (now > a->last_used_ns && now - a->last_used_ns > (__u64)fe->affinity_seconds * PN_NSEC_PER_SEC)
		return 0;
	id = a->backend_id;
	if (!pn_lb_backend(id))
		return 0;
	a->last_used_ns = now;
	return id;
}

static __always_inline void pn_lb_affinity_set(const struct pn_lb_frontend_info *fe, __be32 client, __u32 backend_id, __u64 now)
{
	struct pn_affinity_key key = { .group_id = fe->group_id, .client_addr = client };
	struct pn_affinity val = { .last_used_ns = now, .backend_id = backend_id };

	bpf_map_update_elem(&pn_affinity, &key, &val, BPF_ANY);
}

/* The backend of a random slot 0..count-1 of the group; 0 when the slot is
 * missing (the agent is between writes) or count is 0. */
static __always_inline __u32 pn_lb_random_slot(const struct pn_lb_frontend_info *fe)
{
	struct pn_slot_key key = { .group_id = fe->group_id };
	struct pn_slot *s;

	if (fe->count == 0)
		return 0;
	key.slot = bpf_get_prandom_u32() % fe->count;
	s = bpf_map_lookup_elem(&pn_svc_slots, &key);
	return s ? s->backend_id : 0;
}

/* Picks the backend of a new connection from `client`: with
 * PN_SVC_F_AFFINITY the client's fresh affinity backend, else (and then
 * recorded as its affinity) a random slot. Returns the backend id and sets
 * *be, or returns 0 when the group has no usable backend. */
static __always_inline __u32 pn_lb_select(const struct pn_lb_frontend_info *fe, __be32 client, __u64 now, struct pn_backend **be)
{
	__u32 id = 0;

	*be = NULL;
	if (fe->count == 0)
		return 0;
	if (fe->flags & PN_SVC_F_AFFINITY)
		id = pn_lb_affinity_get(fe, client, now);
	if (id == 0) {
		id = pn_lb_random_slot(fe);
		if (id != 0 && (fe->flags & PN_SVC_F_AFFINITY))
			pn_lb_affinity_set(fe, client, id, now);
	}
	*be = pn_lb_backend(id);
	return *be ? id : 0;
}

/* The calling CPU's stats of a frontend, created on first use; NULL when
 * the map is full (counting is best effort, translating is not). */
static __always_inline struct pn_svc_stats *pn_lb_stats(__u32 frontend_id)
{
	struct pn_svc_stats_key key = { .frontend_id = frontend_id };
	struct pn_svc_stats *s = bpf_map_lookup_elem(&pn_svc_stats, &key);

	if (!s) {
		struct pn_svc_stats zero = {};

		bpf_map_update_elem(&pn_svc_stats, &key, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&pn_svc_stats, &key);
	}
	return s;
}

/* Counts one translated packet of `bytes`; `new_conn` also counts a connection. */
static __always_inline void pn_lb_stats_packet(__u32 frontend_id, int new_conn, __u64 bytes)
{
	struct pn_svc_stats *s = pn_lb_stats(frontend_id);

	if (!s)
		return;
	if (new_conn)
		s->connections++;
	s->packets++;
	s->bytes += bytes;
}

/* Counts a new connection refused for want of a backend. */
static __always_inline void pn_lb_stats_no_backend(__u32 frontend_id)
{
	struct pn_svc_stats *s = pn_lb_stats(frontend_id);

	if (s)
		s->no_backend++;
}
