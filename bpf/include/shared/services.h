/* Service load-balancing records shared with agent/src/maps/services.ts.
 * Fixed-width types, explicit padding; the TypeScript codecs are checked
 * against the compiled objects' BTF. The enums are generated into
 * agent/src/maps/gen/enums.ts by scripts/gen-enums.mjs.
 *
 * The model, as the agent writes it and the programs read it:
 *   frontend  one address:port/protocol a Service answers on (a ClusterIP
 *             port, a NodePort on one node address, an externalIP, a
 *             LoadBalancer ingress IP). Key of pn_services.
 *   group     the ordered backend list a frontend picks from. Frontends of
 *             one Service port with the same traffic-policy scope share a
 *             group (a ClusterIP port and its NodePort on every node
 *             address), so a backend change is one write per group, not
 *             one per frontend. Slots 0..count-1 of pn_svc_slots.
 *   backend   one endpoint address:port, with an id that stays the same as
 *             long as the endpoint exists, so conntrack can keep an
 *             established connection on it while the lists change.
 *
 * Write order that never leaves a live frontend without backends: new
 * backends first, then the slots, then the frontend's count; shrinking
 * lowers the count before removing slots. */
#pragma once
#include <linux/types.h>

/* Key of pn_services: a frontend. */
struct pn_svc_key {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 pad;
};

/* Bits of pn_svc.flags. */
enum pn_svc_flag {
	PN_SVC_F_AFFINITY = 0x1,   /* sessionAffinity ClientIP: a client stays on one backend for affinity_seconds */
	PN_SVC_F_LOCAL = 0x2,      /* a Local traffic policy applies: the group holds only this node's endpoints */
	PN_SVC_F_NODEPORT = 0x4,   /* a NodePort frontend on one of the node's addresses */
	PN_SVC_F_EXTERNAL = 0x8,   /* an externalIP or LoadBalancer ingress frontend */
};

/* Value of pn_services. */
struct pn_svc {
	__u32 frontend_id;      /* names the frontend in pn_svc_stats and conntrack; never 0 */
	__u32 group_id;         /* first half of the pn_svc_slots key; never 0 */
	__u32 count;            /* slots 0..count-1 are valid; 0: no backend, reject */
	__u32 flags;            /* enum pn_svc_flag bits */
	__u32 affinity_seconds; /* with PN_SVC_F_AFFINITY */
	__u32 pad;
};

/* Key of pn_svc_slots: one position in a group's backend list. */
struct pn_slot_key {
	__u32 group_id;
	__u32 slot;
};

/* Value of pn_svc_slots. */
struct pn_slot {
	__u32 backend_id;
};

/* Key of pn_backends. */
struct pn_backend_key {
	__u32 backend_id; /* never 0 */
};

/* Bits of pn_backend.flags. */
enum pn_backend_flag {
	PN_BE_F_TERMINATING = 0x1, /* serving but terminating: listed only because no ready endpoint is left */
	PN_BE_F_LOCAL = 0x2,       /* an endpoint on this node */
};

/* Value of pn_backends: where translated traffic goes. */
struct pn_backend {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 flags; /* enum pn_backend_flag bits */
};

/* Conntrack entry kinds (pn_ct_key.dir). */
enum pn_ct_dir {
	PN_CT_FORWARD = 0, /* client -> frontend, as the client sent it: says which backend */
	PN_CT_REVERSE = 1, /* backend -> client, as the backend answers: says what to write back */
};

/* Key of pn_ct: a 5-tuple as it appears on the wire, plus its kind. */
struct pn_ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* enum pn_ct_dir */
	__u16 pad;
};

/* Bits of pn_ct_entry.flags. */
enum pn_ct_flag {
	PN_CT_F_HAIRPIN = 0x1, /* a pod reached itself: the source was rewritten to the hairpin address */
	PN_CT_F_CLOSING = 0x2, /* a FIN or RST was seen: the entry expires on the short timeout */
	PN_CT_F_SEEN_REPLY = 0x4, /* the backend has answered */
};

/* Value of pn_ct.
 * FORWARD: backend_id is the connection's backend; nat_addr/nat_port are
 *   the source to write when hairpinning (else zero).
 * REVERSE: nat_addr/nat_port are the frontend (the source the client
 *   expects); orig_addr is the client's address to restore as destination
 *   when hairpinning (else zero). */
struct pn_ct_entry {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() of the last packet */
	__u32 backend_id;
	__u32 frontend_id;
	__be32 nat_addr;
	__be32 orig_addr;
	__be16 nat_port;
	__u8 flags; /* enum pn_ct_flag bits */
	__u8 pad;
	__u32 pad2;
};

/* Key of pn_affinity: one client of one group. */
struct pn_affinity_key {
	__u32 group_id;
	__be32 client_addr;
};

/* Value of pn_affinity. */
struct pn_affinity {
	__u64 last_used_ns;
	__u32 backend_id;
	__u32 pad;
};

/* Key of pn_svc_stats. */
struct pn_svc_stats_key {
	__u32 frontend_id;
};

/* Value of pn_svc_stats (per CPU). */
struct pn_svc_stats {
	__u64 connections; /* new connections (or UDP flows) translated */
	__u64 packets;     /* packets translated towards a backend */
	__u64 bytes;
	__u64 no_backend;  /* new connections rejected or dropped for want of a backend */
};

/* Key of pn_svc_ranges (LPM trie): the service CIDRs. A packet to an address
 * inside one that matches no frontend is dropped and counted. */
struct pn_svc_range_key {
	__u32 prefixlen;
	__be32 addr;
};

/* Value of pn_svc_ranges. */
struct pn_svc_range {
	__u32 flags; /* none yet */
};
