/* The node's uplink datapath.
 *
 * from_netdev (tc ingress of the --uplink device, traffic entering the
 *   node): Service translation of packets to a frontend (NodePort on a node
 *   address, externalIP, LoadBalancer IP, or a ClusterIP routed here) with
 *   the same conntrack, selection and rejects as from_pod (lib/service.h);
 *   a translated packet for a pod of this node is redirected straight into
 *   it (bpf_redirect_peer), any other goes on to the host stack. A packet
 *   into a service range that matches no frontend is dropped. Everything
 *   else passes untouched (PN_PASS). The answers of the pods leave through
 *   from_pod's REVERSE translation (and a FIB redirect to the uplink).
 * to_netdev (tc egress of the uplink): answers the host stack sends out for
 *   backends on the host network (a NodePort whose endpoint is a
 *   hostNetwork pod or the node itself) get the frontend as their source
 *   again; never drops.
 *
 * A thin dispatcher with one exit, like pod.bpf.c; drops are recorded
 * against no endpoint (0), direction ingress.
 * Maps: pn_endpoints, pn_counters, pn_events, the service maps (lib/maps/). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "shared/drop-reasons.h"
#include "lib/maps/endpoints.h"
#include "lib/maps/counters.h"
#include "lib/maps/services.h"
#include "lib/parse.h"
#include "lib/drop.h"
#include "lib/deliver.h"
#include "lib/service.h"
#include "lib/verdict.h"

static __always_inline __u8 pn_handle_from_netdev(struct __sk_buff *skb, struct pn_pkt *pkt, int *verdict)
{
	struct pn_endpoint *dst;
	struct pn_ip4_key dkey;
	struct pn_flow f;
	struct iphdr *ip;
	int malformed, rc, rejected = 0;
	__u8 reason;

	ip = pn_parse_ipv4((void *)(long)skb->data, (void *)(long)skb->data_end, &malformed);
	if (!ip)
		return PN_DROP_NONE; /* not IPv4, or broken: the host stack's business */
	pkt->saddr = ip->saddr;
	pkt->daddr = ip->daddr;
	pkt->protocol = ip->protocol;

	rc = pn_flow_parse(skb, &f);
	if (rc != 0)
		return rc > 0 && pn_lb_in_service_range(pkt->daddr) ? PN_DROP_NO_SERVICE : PN_DROP_NONE;
	reason = pn_svc_forward(skb, &f, 0, &rejected);
	if (rejected) {
		pkt->rejected = 1;
		*verdict = TC_ACT_REDIRECT;
	}
	if (reason != PN_DROP_NONE || f.daddr == pkt->daddr)
		return reason;
	pkt->daddr = f.daddr;

	dkey.addr = f.daddr;
	dst = bpf_map_lookup_elem(&pn_endpoints, &dkey);
	if (dst && (dst->flags & PN_EP_F_READY)) {
		__u32 dst_id;

		reason = pn_deliver_to_endpoint(skb, dst, &dst_id);
		if (reason != PN_DROP_NONE)
			return reason;
		pn_ep_count(dst_id, PN_DIR_INGRESS, PN_DROP_NONE, pkt->len);
		*verdict = TC_ACT_REDIRECT;
	}
	return PN_DROP_NONE;
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct pn_pkt pkt = { .ifindex = skb->ifindex, .len = skb->len, .direction = PN_DIR_INGRESS };
	int verdict = PN_PASS;
	__u8 reason;

	reason = pn_handle_from_netdev(skb, &pkt, &verdict);
	if (reason != PN_DROP_NONE)
		verdict = pkt.rejected ? pn_reject_tc(&pkt, reason) : pn_drop_tc(&pkt, reason);
	return verdict;
}

/* Translates answers of host-network backends leaving through the uplink;
 * never drops (a packet it cannot translate goes on as it is). */
static __always_inline void pn_handle_to_netdev(struct __sk_buff *skb)
{
	struct pn_flow f;
	int translated = 0;

	if (pn_flow_parse(skb, &f) == 0)
		pn_svc_reverse(skb, &f, &translated);
	else
		pn_svc_reverse_icmp(skb, &translated);
}

SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	pn_handle_to_netdev(skb);
	return PN_PASS;
}

char LICENSE[] SEC("license") = "GPL";
