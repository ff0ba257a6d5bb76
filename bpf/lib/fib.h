/* Forwarding a packet out of the node without the host stack: a FIB lookup
 * on its (translated) addresses, then a redirect to the egress interface
 * with the neighbour's MAC (bpf_redirect_neigh resolves it when the FIB
 * result has none yet).
 *
 * The pod programs use it for answers whose source became a node address
 * (NodePort replies): the host stack would drop those as martians, a
 * packet arriving from a veth with one of its own addresses as source. */
#pragma once
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "lib/nat.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Redirects the packet towards f->daddr; returns TC_ACT_REDIRECT, or -1
 * when the FIB has no usable answer (the caller then leaves the packet to
 * the host stack). */
static __always_inline int pn_fib_redirect(struct __sk_buff *skb, const struct pn_flow *f)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib.family = AF_INET;
	fib.l4_protocol = f->proto;
	fib.sport = f->sport;
	fib.dport = f->dport;
	fib.tot_len = skb->len - ETH_HLEN;
	fib.ifindex = skb->ifindex;
	fib.ipv4_src = f->saddr;
	fib.ipv4_dst = f->daddr;

	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__u8 macs[12];

		__builtin_memcpy(macs, fib.dmac, 6);
		__builtin_memcpy(macs + 6, fib.smac, 6);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
			return -1;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	return -1;
}
