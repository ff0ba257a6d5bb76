/* Drop reasons: the single source of truth. agent/src/datapath/gen/drop-reasons.ts
 * and the table in docs/architecture.md are generated from this file by
 * scripts/gen-drop-reasons.mjs; a test fails when they drift.
 * Format of each entry: PN_DROP_<NAME> = <value>, followed by a comment that
 * is the human description. 0 is not a drop: it counts forwarded traffic.
 */
#pragma once

enum pn_drop_reason {
	PN_DROP_NONE = 0,            /* not dropped: forwarded or passed to the stack */
	PN_DROP_SPOOFED_SOURCE = 1,  /* source IPv4 is not the sending endpoint's address */
	PN_DROP_MALFORMED = 2,       /* truncated or malformed Ethernet/IPv4 header */
	PN_DROP_REDIRECT_FAILED = 3, /* redirect to the destination endpoint failed */
	PN_DROP_NO_ENDPOINT = 4,     /* destination inside this node's pod CIDR has no endpoint */
	PN_DROP_NO_SERVICE = 5,      /* destination inside a service range matches no Service frontend */
	PN_DROP_NO_BACKEND = 6,      /* Service frontend has no backend: answered with a TCP reset or ICMP port unreachable */
	PN_DROP_BACKEND_GONE = 7,    /* established connection's backend was removed: answered with a TCP reset */
	PN_DROP_NO_LOCAL_BACKEND = 8, /* Service with a Local traffic policy has no endpoint on this node */
	PN_DROP_CT_FULL = 9,         /* conntrack entry for a new Service connection could not be created */
	PN_DROP_MAX = 10,
};
