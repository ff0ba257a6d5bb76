/* The pod datapath, attached to every pod's host-side veth.
 *
 * from_pod (tc ingress of the host veth, i.e. traffic leaving the pod):
 *   anti-spoofing; then Service translation (lib/service.h): an answer of
 *   a translated connection whose backend is this pod gets the frontend
 *   back as its source, a packet to a frontend is DNATed to a backend (or
 *   rejected when there is none), a packet into a service range that
 *   matches no frontend is dropped; then routing on the (translated)
 *   destination: local ready pod -> rewrite MACs + bpf_redirect_peer (BPF
 *   host routing) or on to the host stack (kernel host routing, see
 *   pn_host_routing_kernel), unknown address inside this node's pod CIDR ->
 *   drop, else on to the host stack (PN_PASS, so other programs on the hook
 *   still run).
 * to_pod (tc egress of the host veth, traffic the host stack delivers to the
 *   pod): the answers of backends outside this node's pods (host network,
 *   other nodes) get the frontend back as their source; counts it.
 *   Pod-to-pod traffic redirected by from_pod goes straight to the peer's
 *   ingress and never passes here, so nothing is counted twice; with kernel
 *   host routing it does pass here, and from_pod counts only the sender.
 *
 * Both entry programs are thin dispatchers with one exit: a handler decides
 * and names a drop reason, the entry program alone calls the drop path (or,
 * for a rejected packet, records it and lets the answer go).
 * Maps: pn_endpoints, pn_counters, pn_events, the service maps (lib/maps/).
 * One object per node: per-node values are load-time constants below. */
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
#include "lib/fib.h"
#include "lib/verdict.h"

/* This node's pod CIDR, network order; set by the agent between open and load. */
volatile const __be32 pn_pod_cidr_addr = 0;
volatile const __be32 pn_pod_cidr_mask = 0;
/* The source a pod that reaches itself through a Service sees (network
 * order; 0 turns hairpin translation off). A link-local address no pod
 * owns, so the pod's answer leaves through its host veth. */
volatile const __be32 pn_hairpin_addr = 0;
/* Host routing (--host-routing): 0 is BPF host routing, where from_pod hands
 * traffic for a local pod straight to it (bpf_redirect_peer); 1 is kernel
 * host routing, where that traffic goes on to the host stack like traffic
 * leaving the node, and the host routes it over the pod's /32 route. Then
 * netfilter and conntrack see both directions of pod-to-pod traffic: a
 * Service proxy in netfilter (kube-proxy) translates a backend's answer
 * back to the ClusterIP, which a redirect past the host stack would skip. */
volatile const __u8 pn_host_routing_kernel = 0;

static __always_inline int pn_in_pod_cidr(__be32 addr)
{
	return pn_pod_cidr_mask && (addr & pn_pod_cidr_mask) == pn_pod_cidr_addr;
}

/* Decides what happens to a packet leaving a pod. Returns the drop reason
 * (PN_DROP_NONE when not dropped) and sets *verdict otherwise. */
/* Service translation of a packet leaving a pod; updates pkt->daddr and,
 * for an answer translated back, f (else f->proto is 0). */
static __always_inline __u8 pn_services_from_pod(struct __sk_buff *skb, struct pn_pkt *pkt, struct pn_flow *out, int *verdict)
{
	struct pn_flow f;
	int translated = 0, rejected = 0, rc;
	__u8 reason;

	out->proto = 0;
	rc = pn_flow_parse(skb, &f);
	if (rc < 0)
		return PN_DROP_MALFORMED;
	if (rc > 0) {
		reason = pn_svc_reverse_icmp(skb, &translated);
		if (reason != PN_DROP_NONE || translated)
			return reason;
		return pn_lb_in_service_range(pkt->daddr) ? PN_DROP_NO_SERVICE : PN_DROP_NONE;
	}
	reason = pn_svc_reverse(skb, &f, &translated);
	if (!translated)
		reason = pn_svc_forward(skb, &f, pn_hairpin_addr, &rejected);
	if (rejected) {
		pkt->rejected = 1;
		*verdict = TC_ACT_REDIRECT;
	}
	if (translated)
		*out = f;
	pkt->daddr = f.daddr;
	return reason;
}

static __always_inline __u8 pn_handle_from_pod(struct __sk_buff *skb, struct pn_pkt *pkt, int *verdict)
{
	struct pn_ip4_key skey, dkey;
	struct pn_endpoint *src, *dst;
	struct pn_flow answer;
	struct iphdr *ip;
	int malformed;
	__u8 reason;

	ip = pn_parse_ipv4((void *)(long)skb->data, (void *)(long)skb->data_end, &malformed);
	if (!ip)
		return malformed ? PN_DROP_MALFORMED : PN_DROP_NONE; /* ARP, IPv6: the host stack decides */
	pkt->saddr = ip->saddr;
	pkt->daddr = ip->daddr;
	pkt->protocol = ip->protocol;

	skey.addr = pkt->saddr;
	src = bpf_map_lookup_elem(&pn_endpoints, &skey);
	/* A source that is another pod's address is not that pod's doing: the
	 * drop is recorded against no endpoint (0) rather than the victim. */
	if (!src || src->ifindex != skb->ifindex)
		return PN_DROP_SPOOFED_SOURCE;
	pkt->endpoint_id = src->endpoint_id;

	reason = pn_services_from_pod(skb, pkt, &answer, verdict);
	if (reason != PN_DROP_NONE)
		return reason;

	dkey.addr = pkt->daddr;
	dst = bpf_map_lookup_elem(&pn_endpoints, &dkey);
	if (dst && (dst->flags & PN_EP_F_READY)) {
		__u32 dst_id;

		if (pn_host_routing_kernel) {
			/* The destination's to_pod counts its ingress. */
			pn_ep_count(pkt->endpoint_id, PN_DIR_EGRESS, PN_DROP_NONE, pkt->len);
			return PN_DROP_NONE;
		}

		reason = pn_deliver_to_endpoint(skb, dst, &dst_id);
		if (reason != PN_DROP_NONE)
			return reason;
		pn_ep_count(pkt->endpoint_id, PN_DIR_EGRESS, PN_DROP_NONE, pkt->len);
		pn_ep_count(dst_id, PN_DIR_INGRESS, PN_DROP_NONE, pkt->len);
		*verdict = TC_ACT_REDIRECT;
		return PN_DROP_NONE;
	}
	if (pn_in_pod_cidr(pkt->daddr))
		return PN_DROP_NO_ENDPOINT;

	pn_ep_count(pkt->endpoint_id, PN_DIR_EGRESS, PN_DROP_NONE, pkt->len);
	/* An answer leaving the node with a frontend as its source (a NodePort
	 * on a node address) goes straight out: the host stack would take
	 * its own address as source for a martian. */
	if (answer.proto && pn_fib_redirect(skb, &answer) == TC_ACT_REDIRECT)
		*verdict = TC_ACT_REDIRECT;
	return PN_DROP_NONE;
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct pn_pkt pkt = { .ifindex = skb->ifindex, .len = skb->len, .direction = PN_DIR_EGRESS };
	int verdict = PN_PASS;
	__u8 reason;

	reason = pn_handle_from_pod(skb, &pkt, &verdict);
	if (reason != PN_DROP_NONE)
		verdict = pkt.rejected ? pn_reject_tc(&pkt, reason) : pn_drop_tc(&pkt, reason);
	return verdict;
}

/* Translates answers of backends the host stack routed here and counts
 * traffic the host stack delivers to a pod; never drops (a packet it
 * cannot translate goes on as it is). */
static __always_inline void pn_handle_to_pod(struct __sk_buff *skb)
{
	struct pn_ip4_key key;
	struct pn_endpoint *ep;
	struct pn_flow f;
	struct iphdr *ip;
	int malformed, translated = 0;

	ip = pn_parse_ipv4((void *)(long)skb->data, (void *)(long)skb->data_end, &malformed);
	if (!ip)
		return;
	key.addr = ip->daddr;
	if (pn_flow_parse(skb, &f) == 0)
		pn_svc_reverse(skb, &f, &translated);
	else
		pn_svc_reverse_icmp(skb, &translated);
	ep = bpf_map_lookup_elem(&pn_endpoints, &key);
	if (ep)
		pn_ep_count(ep->endpoint_id, PN_DIR_INGRESS, PN_DROP_NONE, skb->len);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	pn_handle_to_pod(skb);
	return PN_PASS;
}

char LICENSE[] SEC("license") = "GPL";
