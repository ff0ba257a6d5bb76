/* Records on the pn_events ring buffer, read by `podnet monitor`. Every
 * record starts with its type, so new kinds (trace) can share the ring.
 * enum pn_event_type is generated into agent/src/maps/gen/enums.ts. */
#pragma once
#include <linux/types.h>

enum pn_event_type {
	PN_EVENT_DROP = 1, /* a packet was dropped; reason and direction say why */
};

/* 32 bytes, 8-byte aligned: the type first, the u64 timestamp at offset 8. */
struct pn_event {
	__u8 type;      /* enum pn_event_type */
	__u8 reason;    /* enum pn_drop_reason */
	__u8 direction; /* enum pn_direction */
	__u8 protocol;
	__u32 len;
	__u64 timestamp_ns;
	__u32 endpoint_id;
	__u32 ifindex;
	__be32 saddr;
	__be32 daddr;
};
