/* The 5-tuple of a TCP or UDP packet and the rewrites of its addresses and
 * ports with incremental checksum updates. The IPv4 header follows a
 * 14-byte Ethernet header (tc on veth and Ethernet uplinks).
 *
 * The L4 checksum covers the addresses through the pseudo header
 * (BPF_F_PSEUDO_HDR); a UDP checksum of 0 means "none" and stays 0
 * (BPF_F_MARK_MANGLED_0, which also writes a result of 0 as 0xffff). */
#pragma once
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PN_IP_OFF ETH_HLEN
#define PN_IP_CSUM_OFF (PN_IP_OFF + offsetof(struct iphdr, check))
#define PN_IP_SADDR_OFF (PN_IP_OFF + offsetof(struct iphdr, saddr))
#define PN_IP_DADDR_OFF (PN_IP_OFF + offsetof(struct iphdr, daddr))

#define PN_TCP_FIN 0x01
#define PN_TCP_SYN 0x02
#define PN_TCP_RST 0x04
#define PN_TCP_ACK 0x10

/* One packet's 5-tuple, as it is on the wire now (updated by the rewrites). */
struct pn_flow {
	__u32 l4_off; /* from the start of the frame */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* TCP only */
	__u8 ihl;
	__u8 pad;
};

/* Fills f from a TCP or UDP packet. Returns 0 when it did, 1 when the
 * packet has no ports to translate (another protocol, a non-first
 * fragment), -1 when its L4 header is truncated. */
static __always_inline int pn_flow_parse(struct __sk_buff *skb, struct pn_flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + PN_IP_OFF;
	__u32 off;
	__u8 *l4;

	if ((void *)(ip + 1) > data_end)
		return 1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 1;
	if (ip->frag_off & bpf_htons(0x1fff))
		return 1;
	f->ihl = ip->ihl;
	f->proto = ip->protocol;
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	/* ihl is 4 bits: the offset stays within 14 + 60, which the
	 * verifier sees through the mask. */
	off = PN_IP_OFF + ((__u32)(ip->ihl & 0xf) << 2);
	f->l4_off = off;
	l4 = data + off;
	if (f->proto == IPPROTO_TCP) {
		if ((void *)(l4 + sizeof(struct tcphdr)) > data_end)
			return -1;
		f->tcp_flags = l4[13];
	} else {
		if ((void *)(l4 + sizeof(struct udphdr)) > data_end)
			return -1;
		f->tcp_flags = 0;
	}
	f->sport = *(__be16 *)l4;
	f->dport = *(__be16 *)(l4 + 2);
	return 0;
}

static __always_inline __u32 pn_flow_csum_off(const struct pn_flow *f)
{
	return f->l4_off + (f->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
}

static __always_inline __u64 pn_flow_csum_flags(const struct pn_flow *f)
{
	return f->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrites the source (which = 0) or destination (which = 1) address. */
static __always_inline int pn_nat_addr(struct __sk_buff *skb, struct pn_flow *f, int which, __be32 to)
{
	__be32 from = which ? f->daddr : f->saddr;

	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, pn_flow_csum_off(f), from, to, BPF_F_PSEUDO_HDR | pn_flow_csum_flags(f) | sizeof(to)) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, PN_IP_CSUM_OFF, from, to, sizeof(to)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, which ? PN_IP_DADDR_OFF : PN_IP_SADDR_OFF, &to, sizeof(to), 0) < 0)
		return -1;
	if (which)
		f->daddr = to;
	else
		f->saddr = to;
	return 0;
}

/* Rewrites the source (which = 0) or destination (which = 1) port. */
static __always_inline int pn_nat_port(struct __sk_buff *skb, struct pn_flow *f, int which, __be16 to)
{
	__be16 from = which ? f->dport : f->sport;

	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, pn_flow_csum_off(f), from, to, pn_flow_csum_flags(f) | sizeof(to)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, f->l4_off + (which ? 2 : 0), &to, sizeof(to), 0) < 0)
		return -1;
	if (which)
		f->dport = to;
	else
		f->sport = to;
	return 0;
}

/* DNAT: the destination becomes addr:port. */
static __always_inline int pn_nat_dest(struct __sk_buff *skb, struct pn_flow *f, __be32 addr, __be16 port)
{
	if (pn_nat_addr(skb, f, 1, addr) < 0)
		return -1;
	return pn_nat_port(skb, f, 1, port);
}

/* SNAT: the source becomes addr:port. */
static __always_inline int pn_nat_source(struct __sk_buff *skb, struct pn_flow *f, __be32 addr, __be16 port)
{
	if (pn_nat_addr(skb, f, 0, addr) < 0)
		return -1;
	return pn_nat_port(skb, f, 0, port);
}
