/* Service translation on tc hooks (from_pod, to_pod, from_netdev).
 *
 * pn_svc_forward()  a packet towards a frontend: conntrack FORWARD hit ->
 *                   the connection's backend; miss -> pick one
 *                   (lib/lb.h), create the FORWARD and REVERSE entries;
 *                   then DNAT to the backend (and, when the client is
 *                   its own backend, SNAT to the hairpin address). A
 *                   frontend without backends is rejected; so is an
 *                   established TCP connection whose backend is gone (a
 *                   UDP flow picks again). A destination inside a service
 *                   range that matches no frontend is dropped.
 * pn_svc_reverse()  a backend's answer: conntrack REVERSE hit -> the
 *                   source becomes the frontend again (and a hairpinned
 *                   answer's destination the client again).
 * pn_svc_reverse_icmp()  an ICMP error a backend sent about a translated
 *                   connection (port unreachable, fragmentation needed):
 *                   the quoted packet and the error's source become the
 *                   frontend again, so the client's socket matches it.
 *
 * Both return a drop reason (PN_DROP_NONE when the packet goes on) and
 * keep *f equal to what is on the wire. A rejected packet has been turned
 * into its answer and redirected: *rejected says so, and the reason is
 * recorded but the packet is not dropped. FIN and RST move both entries of
 * a connection to the closing timeout. */
#pragma once
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "shared/drop-reasons.h"
#include "shared/services.h"
#include "lib/lb.h"
#include "lib/ct.h"
#include "lib/nat.h"
#include "lib/reject.h"

static __always_inline __u8 pn_svc_tcp_closing(const struct pn_flow *f)
{
	return f->proto == IPPROTO_TCP && (f->tcp_flags & (PN_TCP_FIN | PN_TCP_RST)) ? PN_CT_F_CLOSING : 0;
}

/* Answers the packet (RST / ICMP) and returns `reason`; when it cannot be
 * answered the packet is dropped with the same reason. */
static __always_inline __u8 pn_svc_reject(struct __sk_buff *skb, const struct pn_flow *f, __u8 reason, int *rejected)
{
	if (pn_reject(skb, f) == TC_ACT_REDIRECT)
		*rejected = 1;
	return reason;
}

static __always_inline __u8 pn_svc_forward(struct __sk_buff *skb, struct pn_flow *f, __be32 hairpin_addr, int *rejected)
{
	struct pn_ct_key fkey = { .saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport, .proto = f->proto, .dir = PN_CT_FORWARD };
	struct pn_ct_key rkey = { .proto = f->proto, .dir = PN_CT_REVERSE };
	struct pn_lb_frontend_info fe;
	struct pn_backend *be = NULL;
	struct pn_ct_entry *ct;
	__be32 be_addr, snat_addr = 0;
	__be16 be_port;
	__u32 backend_id = 0;
	__u8 closing = pn_svc_tcp_closing(f);
	int new_conn = 0;
	struct pn_svc *svc;
	__u64 now;

	/* 127.0.0.0/8 belongs to the host stack: a frontend there (a host
	 * port on 127.0.0.1) is for host processes, which the socket hooks
	 * translate. A packet on a tc hook addressed there was crafted by a pod
	 * or came off the wire; it is left to the kernel, which drops it as a
	 * martian, so it never reaches a port meant for the host only. */
	if ((f->daddr & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000))
		return PN_DROP_NONE;
	svc = pn_lb_frontend(f->daddr, f->dport, f->proto);
	if (!svc)
		return pn_lb_in_service_range(f->daddr) ? PN_DROP_NO_SERVICE : PN_DROP_NONE;
	pn_lb_frontend_copy(svc, &fe);
	now = bpf_ktime_get_ns();

	ct = pn_ct_lookup(&fkey, now);
	if (ct) {
		backend_id = ct->backend_id;
		snat_addr = ct->nat_addr;
		be = pn_lb_backend(backend_id);
		if (be) {
			pn_ct_touch(ct, now, closing);
		} else {
			/* The backend left while the connection was up. */
			pn_ct_delete(&fkey);
			if (f->proto == IPPROTO_TCP)
				return pn_svc_reject(skb, f, PN_DROP_BACKEND_GONE, rejected);
			backend_id = 0; /* a UDP flow picks again */
			snat_addr = 0;
		}
	}
	if (!be) {
		if (fe.count == 0) {
			pn_lb_stats_no_backend(fe.frontend_id);
			/* A Local policy without a local endpoint drops, as
			 * kube-proxy does; no endpoint at all rejects. */
			if (fe.flags & PN_SVC_F_LOCAL)
				return PN_DROP_NO_LOCAL_BACKEND;
			return pn_svc_reject(skb, f, PN_DROP_NO_BACKEND, rejected);
		}
		backend_id = pn_lb_select(&fe, f->saddr, now, &be);
		if (!be) {
			/* count > 0 but the slot or backend is missing: the agent
			 * is between writes; nothing to send to. */
			pn_lb_stats_no_backend(fe.frontend_id);
			return pn_svc_reject(skb, f, PN_DROP_NO_BACKEND, rejected);
		}
		new_conn = 1;
	}
	be_addr = be->addr;
	be_port = be->port;

	if (new_conn) {
		struct pn_ct_entry fwd = { .last_seen_ns = now, .backend_id = backend_id, .frontend_id = fe.frontend_id, .flags = closing };
		struct pn_ct_entry rev = { .last_seen_ns = now, .backend_id = backend_id, .frontend_id = fe.frontend_id, .flags = closing,
					   .nat_addr = f->daddr, .nat_port = f->dport };

		/* Hairpin: the client reaches itself. Its answer would go to
		 * itself with the backend's own address as source and never be
		 * translated back; a source it does not own makes the answer
		 * leave through the host veth, where the REVERSE entry finds it. */
		if (hairpin_addr && be_addr == f->saddr) {
			snat_addr = hairpin_addr;
			fwd.nat_addr = hairpin_addr;
			fwd.nat_port = f->sport;
			fwd.flags |= PN_CT_F_HAIRPIN;
			rev.flags |= PN_CT_F_HAIRPIN;
			rev.orig_addr = f->saddr;
		}
		rkey.saddr = be_addr;
		rkey.daddr = snat_addr ? snat_addr : f->saddr;
		rkey.sport = be_port;
		rkey.dport = f->sport;
		/* REVERSE first: an answer can never find a FORWARD entry
		 * without its way back. A full LRU evicts, so failures are rare
		 * and the connection then goes untranslated back: drop it. */
		if (pn_ct_create(&rkey, &rev) < 0 || pn_ct_create(&fkey, &fwd) < 0)
			return PN_DROP_CT_FULL;
	} else if (closing) {
		rkey.saddr = be_addr;
		rkey.daddr = snat_addr ? snat_addr : f->saddr;
		rkey.sport = be_port;
		rkey.dport = f->sport;
		pn_ct_flag(&rkey, now, closing);
	}

	pn_lb_stats_packet(fe.frontend_id, new_conn, skb->len);
	if (snat_addr && pn_nat_addr(skb, f, 0, snat_addr) < 0)
		return PN_DROP_MALFORMED;
	if (pn_nat_dest(skb, f, be_addr, be_port) < 0)
		return PN_DROP_MALFORMED;
	return PN_DROP_NONE;
}

/* *translated is set when the packet was an answer of a translated connection. */
static __always_inline __u8 pn_svc_reverse(struct __sk_buff *skb, struct pn_flow *f, int *translated)
{
	struct pn_ct_key rkey = { .saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport, .proto = f->proto, .dir = PN_CT_REVERSE };
	struct pn_ct_key fkey = { .proto = f->proto, .dir = PN_CT_FORWARD };
	struct pn_ct_entry *rev;
	__be32 nat_addr, orig_addr;
	__be16 nat_port;
	__u8 add = pn_svc_tcp_closing(f) | PN_CT_F_SEEN_REPLY;
	__u64 now = bpf_ktime_get_ns();

	rev = pn_ct_lookup(&rkey, now);
	if (!rev)
		return PN_DROP_NONE;
	nat_addr = rev->nat_addr;
	nat_port = rev->nat_port;
	orig_addr = rev->orig_addr;
	/* The FORWARD entry learns of the answer too (it decides the timeout
	 * the client's next packet sees, and answers keep it alive), but only
	 * when there is news: a flag this entry lacks, or a last use due. Both
	 * entries get the same flags, so this one's say what that one has. */
	if ((rev->flags & add) != add || pn_ct_due(rev, now)) {
		fkey.saddr = orig_addr ? orig_addr : f->daddr;
		fkey.daddr = nat_addr;
		fkey.sport = f->dport;
		fkey.dport = nat_port;
		pn_ct_flag(&fkey, now, add);
	}
	pn_ct_touch(rev, now, add);

	*translated = 1;
	if (pn_nat_source(skb, f, nat_addr, nat_port) < 0)
		return PN_DROP_MALFORMED;
	if (orig_addr && pn_nat_addr(skb, f, 1, orig_addr) < 0)
		return PN_DROP_MALFORMED;
	return PN_DROP_NONE;
}

/* Where an ICMP error's parts are, for an outer and a quoted IPv4 header
 * without options (anything else is left alone). */
#define PN_ICMP_OFF (PN_IP_OFF + 20)
#define PN_ICMP_CSUM_OFF (PN_ICMP_OFF + 2)
#define PN_INNER_IP_OFF (PN_ICMP_OFF + 8)
#define PN_INNER_CSUM_OFF (PN_INNER_IP_OFF + offsetof(struct iphdr, check))
#define PN_INNER_DADDR_OFF (PN_INNER_IP_OFF + offsetof(struct iphdr, daddr))
#define PN_INNER_L4_OFF (PN_INNER_IP_OFF + 20)
#define PN_ICMP_TYPE_DEST_UNREACH 3
#define PN_ICMP_TYPE_TIME_EXCEEDED 11

static __always_inline __u8 pn_svc_reverse_icmp(struct __sk_buff *skb, int *translated)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *outer = data + PN_IP_OFF, *inner;
	struct pn_ct_key rkey = { .dir = PN_CT_REVERSE };
	struct pn_ct_entry *rev;
	__be32 outer_saddr, inner_daddr, nat_addr;
	__be16 inner_dport, nat_port;
	__u8 *icmp, *l4;

	if ((void *)(outer + 1) > data_end || outer->protocol != IPPROTO_ICMP || outer->ihl != 5)
		return PN_DROP_NONE;
	icmp = data + PN_ICMP_OFF;
	inner = data + PN_INNER_IP_OFF;
	l4 = data + PN_INNER_L4_OFF;
	if ((void *)(l4 + 8) > data_end)
		return PN_DROP_NONE;
	if (icmp[0] != PN_ICMP_TYPE_DEST_UNREACH && icmp[0] != PN_ICMP_TYPE_TIME_EXCEEDED)
		return PN_DROP_NONE;
	if (inner->ihl != 5 || (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP))
		return PN_DROP_NONE;
	/* The quoted packet went client -> backend; its REVERSE entry is the
	 * other way round. */
	rkey.saddr = inner->daddr;
	rkey.daddr = inner->saddr;
	rkey.sport = *(__be16 *)(l4 + 2);
	rkey.dport = *(__be16 *)l4;
	rkey.proto = inner->protocol;
	outer_saddr = outer->saddr;
	inner_daddr = inner->daddr;
	inner_dport = rkey.sport;

	rev = pn_ct_lookup(&rkey, bpf_ktime_get_ns());
	if (!rev || rev->orig_addr)
		return PN_DROP_NONE; /* not ours, or hairpinned: left as it is */
	nat_addr = rev->nat_addr;
	nat_port = rev->nat_port;
	*translated = 1;

	/* The quoted header's checksum is updated with its address, so the sum
	 * over the whole quoted header, and with it the ICMP checksum, stays
	 * the same; the port is summed by ICMP only. The quoted L4 checksum
	 * is left as it was: nobody verifies a quoted header's. */
	if (bpf_l3_csum_replace(skb, PN_INNER_CSUM_OFF, inner_daddr, nat_addr, sizeof(nat_addr)) < 0 ||
	    bpf_skb_store_bytes(skb, PN_INNER_DADDR_OFF, &nat_addr, sizeof(nat_addr), 0) < 0)
		return PN_DROP_MALFORMED;
	if (bpf_l4_csum_replace(skb, PN_ICMP_CSUM_OFF, inner_dport, nat_port, sizeof(nat_port)) < 0 ||
	    bpf_skb_store_bytes(skb, PN_INNER_L4_OFF + 2, &nat_port, sizeof(nat_port), 0) < 0)
		return PN_DROP_MALFORMED;
	/* The backend itself sent the error: it comes from the frontend.
	 * (ICMP has no pseudo header: only the IPv4 checksum changes.) */
	if (outer_saddr == inner_daddr) {
		if (bpf_l3_csum_replace(skb, PN_IP_CSUM_OFF, outer_saddr, nat_addr, sizeof(nat_addr)) < 0 ||
		    bpf_skb_store_bytes(skb, PN_IP_SADDR_OFF, &nat_addr, sizeof(nat_addr), 0) < 0)
			return PN_DROP_MALFORMED;
	}
	return PN_DROP_NONE;
}
