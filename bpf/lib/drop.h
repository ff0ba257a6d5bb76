/* The one drop path. Every drop bumps the per-CPU {endpoint, direction,
 * reason} counter and emits a PN_EVENT_DROP record for `podnet monitor`.
 * pn_drop_record() is the context-independent core; pn_drop_tc() and
 * pn_drop_xdp() wrap it and return their hook's drop verdict. Code never
 * returns TC_ACT_SHOT or XDP_DROP by itself. pn_reject_tc() records a
 * packet that was answered (rejected) rather than dropped. */
#pragma once
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "shared/drop-reasons.h"
#include "shared/events.h"
#include "lib/maps/counters.h"
#include "lib/maps/events.h"

/* What the drop path records about a packet, filled in as parsing goes. */
struct pn_pkt {
	__u32 endpoint_id; /* 0 when the sender is not (yet) known */
	__u32 ifindex;
	__u32 len;
	__be32 saddr;
	__be32 daddr;
	__u8 direction;    /* enum pn_direction, relative to the endpoint */
	__u8 protocol;
	__u8 rejected;     /* answered instead of forwarded (lib/reject.h); recorded, not dropped */
};

static __always_inline void pn_drop_record(const struct pn_pkt *pkt, __u8 reason)
{
	struct pn_event *ev;

	pn_ep_count(pkt->endpoint_id, pkt->direction, reason, pkt->len);
	ev = bpf_ringbuf_reserve(&pn_events, sizeof(*ev), 0);
	if (!ev)
		return; /* ring full: the counter above still has it */
	ev->type = PN_EVENT_DROP;
	ev->reason = reason;
	ev->direction = pkt->direction;
	ev->protocol = pkt->protocol;
	ev->len = pkt->len;
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->endpoint_id = pkt->endpoint_id;
	ev->ifindex = pkt->ifindex;
	ev->saddr = pkt->saddr;
	ev->daddr = pkt->daddr;
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline int pn_drop_tc(const struct pn_pkt *pkt, __u8 reason)
{
	pn_drop_record(pkt, reason);
	return TC_ACT_SHOT;
}

/* A packet answered instead of forwarded (lib/reject.h turned it into a TCP
 * reset or ICMP unreachable and set up the redirect): recorded exactly like
 * a drop of its reason, so counters and `podnet monitor` show it. */
static __always_inline int pn_reject_tc(const struct pn_pkt *pkt, __u8 reason)
{
	pn_drop_record(pkt, reason);
	return TC_ACT_REDIRECT;
}

static __always_inline int pn_drop_xdp(const struct pn_pkt *pkt, __u8 reason)
{
	pn_drop_record(pkt, reason);
	return XDP_DROP;
}
