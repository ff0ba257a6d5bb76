/* Answers a packet instead of forwarding it: a TCP RST for TCP, an ICMP
 * port unreachable (the original IPv4 header and the first 8 bytes of its
 * payload quoted) for UDP. The answer is built in place of the packet
 * (bpf_skb_change_tail, then the new headers written whole) and sent back
 * out of the interface it came from with bpf_redirect, so on a pod's host
 * veth it reaches the pod and on the uplink it leaves towards the sender.
 * The source of the answer is the address the client sent to (the
 * frontend), so the client's socket takes it as its peer's answer.
 *
 * Packets with IPv4 options are not answered (the quoted header would not
 * be the fixed 20 bytes): the caller drops them instead. */
#pragma once
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/nat.h"

#define PN_IP_DF 0x4000
/* linux/icmp.h pulls in libc headers through linux/if.h: the two values
 * and the 8-byte header are spelled out here. */
#define PN_ICMP_DEST_UNREACH 3
#define PN_ICMP_PORT_UNREACH 3

struct pn_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 unused;
};

static __always_inline __u16 pn_csum_fold(__s64 sum)
{
	__u64 s = (__u64)sum & 0xffffffff;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* A fresh 20-byte IPv4 header from `from` to `to`, checksummed. */
static __always_inline void pn_reject_ip(struct iphdr *ip, __be32 from, __be32 to, __u8 proto, __u16 tot_len)
{
	__builtin_memset(ip, 0, sizeof(*ip));
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = bpf_htons(tot_len);
	ip->frag_off = bpf_htons(PN_IP_DF);
	ip->ttl = 64;
	ip->protocol = proto;
	ip->saddr = from;
	ip->daddr = to;
	ip->check = pn_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, sizeof(*ip), 0));
}

static __always_inline int pn_reject_eth(struct __sk_buff *skb)
{
	struct ethhdr eth;
	__u8 tmp[ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return -1;
	__builtin_memcpy(tmp, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, tmp, ETH_ALEN);
	return bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0);
}

/* The RST (Linux's tcp_v4_send_reset rules): answering a segment with ACK,
 * seq is that ACK and only RST is set; otherwise seq is 0 and RST+ACK
 * acknowledges everything the segment carried (SYN and FIN count one). */
static __always_inline int pn_reject_tcp(struct __sk_buff *skb, const struct pn_flow *f)
{
	struct {
		__be32 saddr;
		__be32 daddr;
		__u8 zero;
		__u8 proto;
		__be16 len;
		struct tcphdr th;
	} seg = {};
	struct tcphdr in;
	struct iphdr ip;
	__u32 payload, hdrs;

	if (bpf_skb_load_bytes(skb, PN_IP_OFF, &ip, sizeof(ip)) < 0)
		return -1;
	if (bpf_skb_load_bytes(skb, f->l4_off, &in, sizeof(in)) < 0)
		return -1;
	hdrs = ((__u32)ip.ihl << 2) + ((__u32)in.doff << 2);
	payload = bpf_ntohs(ip.tot_len);
	payload = payload > hdrs ? payload - hdrs : 0;

	seg.saddr = ip.daddr;
	seg.daddr = ip.saddr;
	seg.proto = IPPROTO_TCP;
	seg.len = bpf_htons(sizeof(struct tcphdr));
	seg.th.source = in.dest;
	seg.th.dest = in.source;
	seg.th.doff = sizeof(struct tcphdr) / 4;
	seg.th.rst = 1;
	if (in.ack) {
		seg.th.seq = in.ack_seq;
	} else {
		seg.th.ack = 1;
		seg.th.ack_seq = bpf_htonl(bpf_ntohl(in.seq) + payload + in.syn + in.fin);
	}
	seg.th.check = pn_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&seg, sizeof(seg), 0));
	pn_reject_ip(&ip, seg.saddr, seg.daddr, IPPROTO_TCP, sizeof(struct iphdr) + sizeof(struct tcphdr));

	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr), 0) < 0)
		return -1;
	if (pn_reject_eth(skb) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, PN_IP_OFF, &ip, sizeof(ip), 0) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, PN_IP_OFF + sizeof(ip), &seg.th, sizeof(seg.th), 0);
}

/* ICMP destination unreachable, port unreachable, quoting the packet's
 * IPv4 header and the first 8 bytes after it (the UDP header). */
static __always_inline int pn_reject_icmp(struct __sk_buff *skb, const struct pn_flow *f)
{
	struct {
		struct pn_icmphdr icmp;
		struct iphdr ip;
		__u8 l4[8];
	} msg = {};
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, PN_IP_OFF, &msg.ip, sizeof(msg.ip) + sizeof(msg.l4)) < 0)
		return -1;
	msg.icmp.type = PN_ICMP_DEST_UNREACH;
	msg.icmp.code = PN_ICMP_PORT_UNREACH;
	msg.icmp.checksum = pn_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&msg, sizeof(msg), 0));
	pn_reject_ip(&ip, msg.ip.daddr, msg.ip.saddr, IPPROTO_ICMP, sizeof(struct iphdr) + sizeof(msg));

	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(msg), 0) < 0)
		return -1;
	if (pn_reject_eth(skb) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, PN_IP_OFF, &ip, sizeof(ip), 0) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, PN_IP_OFF + sizeof(ip), &msg, sizeof(msg), 0);
}

/* Turns the packet into its rejection and redirects it back out of the
 * interface it arrived on. Returns TC_ACT_REDIRECT, or -1 when it cannot
 * (IPv4 options, a failed resize): the caller drops the packet then. */
static __always_inline int pn_reject(struct __sk_buff *skb, const struct pn_flow *f)
{
	int rc;

	if (f->ihl != 5)
		return -1;
	if (f->proto == IPPROTO_TCP)
		rc = pn_reject_tcp(skb, f);
	else if (f->proto == IPPROTO_UDP)
		rc = pn_reject_icmp(skb, f);
	else
		return -1;
	if (rc < 0)
		return -1;
	return bpf_redirect(skb->ifindex, 0);
}
