/* Socket load-balancing records shared with agent/src/maps/sock.ts.
 * Fixed-width types, explicit padding; test/bpf/layout.test.ts checks the
 * TypeScript codecs against the compiled BTF. */
#pragma once
#include <linux/types.h>

/* Key of pn_sock_rev: one socket (by cookie) talking to one backend, as the
 * socket hooks rewrote it. */
struct pn_sock_rev_key {
	__u64 cookie;   /* bpf_get_socket_cookie(): stable for the socket's life, never reused */
	__be32 addr;    /* the backend the socket was sent to */
	__be16 port;
	__u16 pad;
};

/* Value of pn_sock_rev: the frontend the application asked for, written back
 * by recvmsg4 and getpeername4. */
struct pn_sock_rev {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
	__u32 frontend_id;
};

/* Key of the socket destroyer's target set (bpf/sock_destroy.bpf.c): a
 * removed backend whose connected host sockets are destroyed. */
struct pn_sock_target {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* One destroyed socket, as the destroyer's iterator reports it. */
struct pn_sock_destroyed {
	__u64 cookie;
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
	__s32 err;  /* bpf_sock_destroy()'s return: 0 or -errno */
	__u32 pad2;
};
