/* The pod datapath, attached to every pod's host-side veth.
 *
 * from_pod (tc ingress of the host veth, i.e. traffic leaving the pod):
 *   anti-spoofing, then local pod -> rewrite MACs + bpf_redirect_peer,
 *   unknown address inside this node's pod CIDR -> drop, else on to the host
 *   stack (PN_PASS, so other programs on the hook still run).
 * to_pod (tc egress of the host veth, traffic the host stack delivers to the
 *   pod): counts it. Pod-to-pod traffic redirected by from_pod goes straight
 *   to the peer's ingress and never passes here, so nothing is counted twice.
 *
 * One object per node: per-node values are load-time constants below. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "shared/drop-reasons.h"
#include "lib/parse.h"
#include "lib/count.h"
#include "lib/drop.h"
#include "lib/verdict.h"

/* This node's pod CIDR, network order; set by the agent between open and load. */
volatile const __be32 pn_pod_cidr_addr = 0;
volatile const __be32 pn_pod_cidr_mask = 0;

static __always_inline int pn_in_pod_cidr(__be32 addr)
{
	return pn_pod_cidr_mask && (addr & pn_pod_cidr_mask) == pn_pod_cidr_addr;
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct pn_ip4_key skey, dkey;
	struct pn_endpoint *src, *dst;
	struct iphdr *ip;
	__be32 saddr, daddr;
	__u32 src_id;
	__u8 proto;
	int malformed;
	long ret;

	ip = pn_parse_ipv4(skb, &malformed);
	if (!ip) {
		if (malformed)
			return pn_drop(skb, 0, PN_DIR_EGRESS, PN_DROP_MALFORMED, 0, 0, 0);
		return PN_PASS; /* ARP, IPv6: the host stack decides */
	}
	saddr = ip->saddr;
	daddr = ip->daddr;
	proto = ip->protocol;

	skey.addr = saddr;
	src = bpf_map_lookup_elem(&pn_endpoints, &skey);
	if (!src || src->ifindex != skb->ifindex)
		return pn_drop(skb, src ? src->endpoint_id : 0, PN_DIR_EGRESS,
			       PN_DROP_SPOOFED_SOURCE, saddr, daddr, proto);
	src_id = src->endpoint_id;

	dkey.addr = daddr;
	dst = bpf_map_lookup_elem(&pn_endpoints, &dkey);
	if (dst && (dst->flags & PN_EP_F_READY)) {
		/* Copy what is needed before the packet writes: they invalidate
		 * every packet pointer, and dst points into a map anyway. */
		__u32 dst_if = dst->ifindex, dst_id = dst->endpoint_id;
		__u8 macs[12];

		__builtin_memcpy(macs, dst->pod_mac, 6);
		__builtin_memcpy(macs + 6, dst->host_mac, 6);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
			return pn_drop(skb, src_id, PN_DIR_EGRESS, PN_DROP_MALFORMED, saddr, daddr, proto);
		ret = bpf_redirect_peer(dst_if, 0);
		if (ret != TC_ACT_REDIRECT)
			return pn_drop(skb, src_id, PN_DIR_EGRESS, PN_DROP_REDIRECT_FAILED, saddr, daddr, proto);
		pn_ep_count(src_id, PN_DIR_EGRESS, PN_DROP_NONE, skb->len);
		pn_ep_count(dst_id, PN_DIR_INGRESS, PN_DROP_NONE, skb->len);
		return TC_ACT_REDIRECT;
	}
	if (pn_in_pod_cidr(daddr))
		return pn_drop(skb, src_id, PN_DIR_EGRESS, PN_DROP_NO_ENDPOINT, saddr, daddr, proto);

	pn_ep_count(src_id, PN_DIR_EGRESS, PN_DROP_NONE, skb->len);
	return PN_PASS;
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	struct pn_ip4_key key;
	struct pn_endpoint *ep;
	struct iphdr *ip;
	int malformed;

	ip = pn_parse_ipv4(skb, &malformed);
	if (!ip)
		return PN_PASS;
	key.addr = ip->daddr;
	ep = bpf_map_lookup_elem(&pn_endpoints, &key);
	if (ep)
		pn_ep_count(ep->endpoint_id, PN_DIR_INGRESS, PN_DROP_NONE, skb->len);
	return PN_PASS;
}

char LICENSE[] SEC("license") = "GPL";
