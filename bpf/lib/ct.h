/* Conntrack of translated connections (pn_ct). A connection has two
 * entries: FORWARD keyed by the client's packet as it arrives (client ->
 * frontend), naming the backend; REVERSE keyed by the backend's answer as
 * it arrives (backend -> client, or -> the hairpin address), saying what
 * to write back. An entry older than its timeout counts as absent; the
 * timeouts are load-time constants. */
#pragma once
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "shared/services.h"
#include "lib/maps/services.h"

/* Idle timeouts in seconds, set by the agent between open and load. */
volatile const __u32 pn_ct_tcp_timeout_s = 21600;  /* an answered TCP connection */
volatile const __u32 pn_ct_syn_timeout_s = 60;     /* TCP before the backend's first answer */
volatile const __u32 pn_ct_closing_timeout_s = 10; /* TCP after a FIN or RST */
volatile const __u32 pn_ct_other_timeout_s = 60;   /* UDP and everything else */

static __always_inline __u64 pn_ct_timeout_ns(__u8 proto, __u8 flags)
{
	__u32 s = pn_ct_other_timeout_s;

	if (proto == IPPROTO_TCP) {
		if (flags & PN_CT_F_CLOSING)
			s = pn_ct_closing_timeout_s;
		else if (flags & PN_CT_F_SEEN_REPLY)
			s = pn_ct_tcp_timeout_s;
		else
			s = pn_ct_syn_timeout_s;
	}
	return (__u64)s * 1000000000ULL;
}

/* The live entry under key, or NULL when there is none or it expired. */
static __always_inline struct pn_ct_entry *pn_ct_lookup(const struct pn_ct_key *key, __u64 now)
{
	struct pn_ct_entry *e = bpf_map_lookup_elem(&pn_ct, key);

	if (!e)
		return NULL;
	/* Another CPU may have refreshed the entry after this one read the
	 * clock: a last use later than now is fresh, not 2^64 ns old. */
	if (now > e->last_seen_ns && now - e->last_seen_ns > pn_ct_timeout_ns(key->proto, e->flags))
		return NULL;
	return e;
}

/* How stale last_seen_ns may get before a packet writes it again. */
#define PN_CT_REFRESH_NS 1000000000ULL

/* True when an entry's last use is due to be written again. */
static __always_inline int pn_ct_due(const struct pn_ct_entry *e, __u64 now)
{
	return now > e->last_seen_ns + PN_CT_REFRESH_NS;
}

/* Refreshes an entry: its last use at most once a second, and the flags
 * this packet adds. The two directions of a connection run on different
 * CPUs; a write on every packet would bounce the entry's cache line
 * between them on every packet. Timeouts are seconds, so a second of
 * slack is within their precision. */
static __always_inline void pn_ct_touch(struct pn_ct_entry *e, __u64 now, __u8 add_flags)
{
	if (pn_ct_due(e, now))
		e->last_seen_ns = now;
	if ((e->flags & add_flags) != add_flags)
		e->flags |= add_flags;
}

/* Adds flags to the entry under key, if any (the other direction's entry). */
static __always_inline void pn_ct_flag(const struct pn_ct_key *key, __u64 now, __u8 add_flags)
{
	struct pn_ct_entry *e = bpf_map_lookup_elem(&pn_ct, key);

	if (e)
		pn_ct_touch(e, now, add_flags);
}

static __always_inline int pn_ct_create(const struct pn_ct_key *key, const struct pn_ct_entry *e)
{
	return bpf_map_update_elem(&pn_ct, key, e, BPF_ANY);
}

static __always_inline void pn_ct_delete(const struct pn_ct_key *key)
{
	bpf_map_delete_elem(&pn_ct, key);
}
