/* pn_sock_rev: {socket cookie, backend} -> frontend. Written by the socket
 * hooks (bpf/sock.bpf.c: connect4, sendmsg4) when they rewrite a frontend to
 * a backend; read by recvmsg4 and getpeername4 to show the application the
 * frontend again. LRU: an entry of a closed socket is never looked up again
 * (cookies are not reused) and ages out. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/sock.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_sock_rev_key);
	__type(value, struct pn_sock_rev);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_sock_rev SEC(".maps");
