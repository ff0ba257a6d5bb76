/* Traffic counters shared with agent/src/maps. Fixed-width types, explicit
 * padding: the TypeScript codecs are checked against this BTF, and the enum
 * below is generated into agent/src/maps/gen/enums.ts by scripts/gen-enums.mjs.
 * Format of each enum entry: PN_<NAME> = <value>, then a comment that is the
 * human description. */
#pragma once
#include <linux/types.h>

enum pn_direction {
	PN_DIR_INGRESS = 0, /* towards the endpoint/interface */
	PN_DIR_EGRESS = 1,  /* away from the endpoint/interface */
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
