/* Traffic counters shared with agent/src/datapath. Fixed-width types,
 * explicit padding: the TypeScript codecs are checked against this BTF. */
#pragma once
#include <linux/types.h>

enum pn_direction {
	PN_DIR_INGRESS = 0, /* towards the endpoint/interface */
	PN_DIR_EGRESS = 1,  /* away from the endpoint/interface */
};

/* Key of pn_ifcount: packets seen on an interface by one attach point. */
struct pn_if_key {
	__u32 ifindex;
	__u32 hook; /* enum pn_hook */
};

enum pn_hook {
	PN_HOOK_TC_INGRESS = 0,
	PN_HOOK_TC_EGRESS = 1,
	PN_HOOK_XDP = 2,
};

/* Key of pn_counters: one endpoint, direction and verdict. */
struct pn_counter_key {
	__u32 endpoint_id;
	__u8 direction; /* enum pn_direction */
	__u8 reason;    /* enum pn_drop_reason; PN_DROP_NONE counts forwarded traffic */
	__u16 pad;
};

struct pn_traffic {
	__u64 packets;
	__u64 bytes;
};

/* A record on the pn_events ring buffer, read by `podnet monitor`. */
struct pn_event {
	__u64 timestamp_ns;
	__u32 endpoint_id;
	__u32 ifindex;
	__be32 saddr;
	__be32 daddr;
	__u8 reason;    /* enum pn_drop_reason */
	__u8 direction; /* enum pn_direction */
	__u8 protocol;
	__u8 pad;
	__u32 len;
};
