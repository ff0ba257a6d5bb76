/* Destroys the host's sockets connected to removed backends (Linux >= 6.5:
 * the bpf_sock_destroy kfunc in socket iterators).
 *
 * A connected UDP socket keeps the backend connect4 picked for as long as it
 * lives; when that backend goes, the application would send into nothing.
 * The agent fills pn_sd_targets with the removed backends and runs an
 * iterator: every socket of the iterating process's network namespace (the
 * agent's: the host's) whose peer is a target is destroyed, so the
 * application sees an error (ECONNABORTED) and reconnects through connect4,
 * which picks a live backend. Each destroyed socket is reported as one struct
 * pn_sock_destroyed record in the iterator's output.
 *
 * The kernel structs are declared here with only the fields read; CO-RE
 * (preserve_access_index) relocates them against the running kernel's BTF. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "shared/sock.h"

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct sock_common {
	__be32 skc_daddr;
	__be16 skc_dport;
	unsigned short skc_family;
	volatile unsigned char skc_state;
} __attribute__((preserve_access_index));

/* Its struct sock_common sits at offset 0 (inet.sk.__sk_common): a cast is enough. */
struct udp_sock;

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

#ifndef AF_INET
#define AF_INET 2
#endif

/* TCP states (include/net/tcp_states.h); a connected UDP socket is ESTABLISHED. */
#define PN_TCP_ESTABLISHED 1
#define PN_TCP_TIME_WAIT 6
#define PN_TCP_CLOSE 7
#define PN_TCP_LISTEN 10
#define PN_TCP_NEW_SYN_RECV 12

/* pn_sd_targets: removed backends; written by the agent before each run of
 * an iterator, read by the iterators. Private to the agent: never pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pn_sock_target);
	__type(value, __u8);
} pn_sd_targets SEC(".maps");

static __always_inline int pn_sd_match(struct sock_common *sk, __u8 proto)
{
	struct pn_sock_target t = {};

	if (sk->skc_family != AF_INET)
		return 0;
	t.addr = sk->skc_daddr;
	t.port = sk->skc_dport;
	t.proto = proto;
	return bpf_map_lookup_elem(&pn_sd_targets, &t) != NULL;
}

/* Destroys one socket and reports it; the peer is read first, as the
 * destroy disconnects the socket (a UDP socket's peer is zeroed). */
static __always_inline void pn_sd_destroy(struct seq_file *seq, struct sock_common *sk, __u8 proto)
{
	struct pn_sock_destroyed rec = {
		.cookie = bpf_get_socket_cookie(sk),
		.addr = sk->skc_daddr,
		.port = sk->skc_dport,
		.proto = proto,
	};

	rec.err = bpf_sock_destroy(sk);
	bpf_seq_write(seq, &rec, sizeof(rec));
}

SEC("iter/udp")
int sd_udp(struct bpf_iter__udp *ctx)
{
	struct sock_common *sk = (struct sock_common *)ctx->udp_sk;

	if (!sk || sk->skc_state != PN_TCP_ESTABLISHED || !pn_sd_match(sk, IPPROTO_UDP))
		return 0;
	pn_sd_destroy(ctx->meta->seq, sk, IPPROTO_UDP);
	return 0;
}

SEC("iter/tcp")
int sd_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;
	unsigned char state;

	if (!sk)
		return 0;
	state = sk->skc_state;
	/* Listeners have no peer; time-wait and request sockets are not full
	 * sockets and go away on their own. */
	if (state == PN_TCP_LISTEN || state == PN_TCP_TIME_WAIT || state == PN_TCP_NEW_SYN_RECV || state == PN_TCP_CLOSE)
		return 0;
	if (!pn_sd_match(sk, IPPROTO_TCP))
		return 0;
	pn_sd_destroy(ctx->meta->seq, sk, IPPROTO_TCP);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
