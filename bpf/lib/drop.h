/* The one drop path: every drop bumps the per-CPU {endpoint, direction,
 * reason} counter and emits an event for `podnet monitor`, then returns
 * TC_ACT_SHOT. Code never returns TC_ACT_SHOT by itself. */
#pragma once
#include <linux/pkt_cls.h>
#include "maps.h"
#include "shared/drop-reasons.h"
#include "lib/count.h"

static __always_inline int pn_drop(struct __sk_buff *skb, __u32 endpoint_id, __u8 direction,
				   __u8 reason, __be32 saddr, __be32 daddr, __u8 protocol)
{
	struct pn_event *ev;

	pn_ep_count(endpoint_id, direction, reason, skb->len);
	ev = bpf_ringbuf_reserve(&pn_events, sizeof(*ev), 0);
	if (ev) {
		ev->timestamp_ns = bpf_ktime_get_ns();
		ev->endpoint_id = endpoint_id;
		ev->ifindex = skb->ifindex;
		ev->saddr = saddr;
		ev->daddr = daddr;
		ev->reason = reason;
		ev->direction = direction;
		ev->protocol = protocol;
		ev->pad = 0;
		ev->len = skb->len;
		bpf_ringbuf_submit(ev, 0);
	}
	return TC_ACT_SHOT;
}
