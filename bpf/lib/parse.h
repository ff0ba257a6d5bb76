/* Header parsing with the bounds checks the verifier requires. Works on a
 * [data, data_end) range, so tc (skb->data) and XDP (ctx->data) share it. */
#pragma once
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>

/* Returns the IPv4 header of an Ethernet frame, or NULL if the frame is not
 * IPv4. *malformed is set when it claims IPv4 but is truncated. */
static __always_inline struct iphdr *pn_parse_ipv4(void *data, void *data_end, int *malformed)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	*malformed = 0;
	if ((void *)(eth + 1) > data_end)
		return NULL;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5 || ip->version != 4) {
		*malformed = 1;
		return NULL;
	}
	return ip;
}
