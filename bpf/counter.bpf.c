/* Per-interface packet/byte counters on tc (tcx or clsact) and XDP.
 * The smallest program that exercises the whole path: compile, load,
 * attach, count, read back from the agent. Never changes a verdict. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"
#include "lib/count.h"
#include "lib/verdict.h"

SEC("tc")
int count_tc_ingress(struct __sk_buff *skb)
{
	pn_if_count(skb->ifindex, PN_HOOK_TC_INGRESS, skb->len);
	return PN_PASS;
}

SEC("tc")
int count_tc_egress(struct __sk_buff *skb)
{
	pn_if_count(skb->ifindex, PN_HOOK_TC_EGRESS, skb->len);
	return PN_PASS;
}

SEC("xdp")
int count_xdp(struct xdp_md *ctx)
{
	__u64 len = (__u64)ctx->data_end - (__u64)ctx->data;

	pn_if_count(ctx->ingress_ifindex, PN_HOOK_XDP, len);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
