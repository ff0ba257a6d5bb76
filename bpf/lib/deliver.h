/* Handing a packet to a ready endpoint on this node: the pod and uplink
 * programs both end a local delivery this way. */
#pragma once
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "shared/drop-reasons.h"
#include "shared/endpoint.h"

/* Rewrites the Ethernet addresses to the endpoint's (pod MAC as
 * destination, its host veth's as source) and redirects the packet into
 * the pod's namespace with bpf_redirect_peer. On success returns
 * PN_DROP_NONE and sets *dst_id; the caller returns TC_ACT_REDIRECT. */
static __always_inline __u8 pn_deliver_to_endpoint(struct __sk_buff *skb, const struct pn_endpoint *dst, __u32 *dst_id)
{
	/* Copy what is needed before the packet write: it invalidates every
	 * packet pointer, and dst points into a map anyway. */
	__u32 dst_if = dst->ifindex;
	__u8 macs[12];

	*dst_id = dst->endpoint_id;
	__builtin_memcpy(macs, dst->pod_mac, 6);
	__builtin_memcpy(macs + 6, dst->host_mac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return PN_DROP_MALFORMED;
	if (bpf_redirect_peer(dst_if, 0) != TC_ACT_REDIRECT)
		return PN_DROP_REDIRECT_FAILED;
	return PN_DROP_NONE;
}
