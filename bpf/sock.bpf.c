/* Socket load balancing for host-originated traffic, attached at the cgroup
 * v2 root (every process of the node, hostNetwork pods included).
 *
 * sock_connect4  (cgroup/connect4): connect() to a frontend -> a backend is
 *   picked once and the destination rewritten before the kernel routes it, so
 *   the connection never carries the Service address. TCP and connected UDP.
 * sock_sendmsg4  (cgroup/sendmsg4): the same per datagram for unconnected UDP.
 * sock_recvmsg4  (cgroup/recvmsg4) and sock_getpeer4 (cgroup/getpeername4):
 *   the backend a translated socket talks to is shown as the frontend again,
 *   from pn_sock_rev, so UDP clients (DNS resolvers) accept the answer.
 *
 * A frontend without backends refuses the call with ECONNREFUSED, an address
 * inside a service range that matches no frontend with EHOSTUNREACH: nothing
 * addressed to a Service leaves the node untranslated.
 *
 * Only sockets of the host's network namespace are translated (its netns
 * cookie is a load-time constant): pods' traffic keeps the tc path, and a
 * service mesh inside a pod sees the addresses its application used.
 * Refusals are recorded through the drop path (PN_DROP_NO_BACKEND,
 * PN_DROP_NO_SERVICE) and no-backend ones in pn_svc_stats too. Entry
 * functions are thin dispatchers with one exit; the call is refused only in
 * pn_sock_forward. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/maps/sock.h"
#include "lib/lb.h"
#include "lib/drop.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* bpf_get_netns_cookie() of the host's network namespace; set by the agent
 * between open and load. 0 (never a real cookie) translates nothing. */
volatile const __u64 pn_host_netns_cookie = 0;

/* What the socket hooks return: 1 lets the call go on, 0 fails it with the
 * errno given to bpf_set_retval() (cgroup/connect4 and sendmsg4 only). */
#define PN_SOCK_ALLOW 1
#define PN_SOCK_REFUSE 0

static __always_inline int pn_sock_ours(struct bpf_sock_addr *ctx)
{
	return ctx->user_family == AF_INET && pn_host_netns_cookie != 0 &&
	       bpf_get_netns_cookie(ctx) == pn_host_netns_cookie;
}

/* Records a refused call through the one drop path (counters and a ring
 * buffer event for `podnet monitor`), as the tc path records the packets it
 * rejects: no endpoint, direction egress, the frontend as destination. */
static __always_inline void pn_sock_record(__be32 daddr, __u8 proto, __u8 reason)
{
	struct pn_pkt pkt = { .daddr = daddr, .direction = PN_DIR_EGRESS, .protocol = proto, .rejected = 1 };

	pn_drop_record(&pkt, reason);
}

/* Rewrites a frontend destination to a backend. Returns 0, or the errno the
 * call fails with. */
static __always_inline int pn_sock_translate(struct bpf_sock_addr *ctx, int per_message)
{
	__be32 addr = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	__u8 proto = (__u8)ctx->protocol;
	struct pn_sock_rev_key rkey = {};
	struct pn_sock_rev rev = {};
	struct pn_lb_frontend_info fe;
	struct pn_svc_stats *st;
	struct pn_backend *be;
	struct pn_svc *svc;
	int new_flow = 1;

	svc = pn_lb_frontend(addr, port, proto);
	if (!svc) {
		if (!pn_lb_in_service_range(addr))
			return 0;
		pn_sock_record(addr, proto, PN_DROP_NO_SERVICE);
		return EHOSTUNREACH;
	}
	pn_lb_frontend_copy(svc, &fe);
	/* The host is one client: node processes share one affinity entry per
	 * group, as they share the node's source address towards a backend. */
	if (!pn_lb_select(&fe, 0, bpf_ktime_get_ns(), &be)) {
		pn_lb_stats_no_backend(fe.frontend_id);
		pn_sock_record(addr, proto, PN_DROP_NO_BACKEND);
		return ECONNREFUSED;
	}
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.addr = be->addr;
	rkey.port = be->port;
	rev.addr = addr;
	rev.port = port;
	rev.proto = proto;
	rev.frontend_id = fe.frontend_id;
	/* A datagram flow is new when this socket has not sent to this backend
	 * for this frontend before; a connect is always new. */
	if (per_message) {
		struct pn_sock_rev *old = bpf_map_lookup_elem(&pn_sock_rev, &rkey);

		new_flow = !old || old->frontend_id != rev.frontend_id || old->addr != addr || old->port != port;
	}
	/* Sockets are counted as connections (flows); their packets and bytes
	 * never pass a program here. */
	st = pn_lb_stats(fe.frontend_id);
	if (st && new_flow)
		st->connections++;
	if (new_flow)
		bpf_map_update_elem(&pn_sock_rev, &rkey, &rev, BPF_ANY);
	ctx->user_ip4 = be->addr;
	ctx->user_port = (__u32)be->port;
	return 0;
}

static __always_inline int pn_sock_forward(struct bpf_sock_addr *ctx, int per_message)
{
	int err;

	if (!pn_sock_ours(ctx))
		return PN_SOCK_ALLOW;
	err = pn_sock_translate(ctx, per_message);
	if (err) {
		bpf_set_retval(-err);
		return PN_SOCK_REFUSE;
	}
	return PN_SOCK_ALLOW;
}

/* Shows a translated peer as the frontend the application addressed. Runs
 * where nothing can be refused. */
static __always_inline void pn_sock_reverse(struct bpf_sock_addr *ctx)
{
	struct pn_sock_rev_key rkey = {};
	struct pn_sock_rev *rev;
	struct pn_svc *svc;

	if (!pn_sock_ours(ctx))
		return;
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.addr = ctx->user_ip4;
	rkey.port = (__be16)ctx->user_port;
	rev = bpf_map_lookup_elem(&pn_sock_rev, &rkey);
	if (!rev)
		return;
	/* A frontend removed since (or re-created under another id) no longer
	 * stands for this backend: show the real peer and forget the entry. */
	svc = pn_lb_frontend(rev->addr, rev->port, rev->proto);
	if (!svc || svc->frontend_id != rev->frontend_id) {
		bpf_map_delete_elem(&pn_sock_rev, &rkey);
		return;
	}
	ctx->user_ip4 = rev->addr;
	ctx->user_port = (__u32)rev->port;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return pn_sock_forward(ctx, 0);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return pn_sock_forward(ctx, 1);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	pn_sock_reverse(ctx);
	return PN_SOCK_ALLOW;
}

SEC("cgroup/getpeername4")
int sock_getpeer4(struct bpf_sock_addr *ctx)
{
	pn_sock_reverse(ctx);
	return PN_SOCK_ALLOW;
}

char LICENSE[] SEC("license") = "GPL";
