/* Endpoint and IPAM records shared with agent/src/maps. enum pn_endpoint_flag
 * is generated into agent/src/maps/gen/enums.ts by scripts/gen-enums.mjs. */
#pragma once
#include <linux/types.h>

/* Key of pn_endpoints and pn_ipam: an IPv4 address in network order. */
struct pn_ip4_key {
	__be32 addr;
};

/* Bits of pn_endpoint.flags. */
enum pn_endpoint_flag {
	PN_EP_F_READY = 0x1, /* datapath fully attached; traffic may be redirected to it */
};

struct pn_endpoint {
	__u32 ifindex;      /* host-side veth */
	__u32 endpoint_id;
	__u8 pod_mac[6];
	__u8 host_mac[6];
	__u32 flags;        /* enum pn_endpoint_flag bits */
};

#define PN_CONTAINER_ID_LEN 64
#define PN_IFNAME_LEN 16

/* Value of pn_ipam: who owns an address. The pinned map IS the allocator's state. */
struct pn_ipam_entry {
	char container_id[PN_CONTAINER_ID_LEN];
	char ifname[PN_IFNAME_LEN];
	__u64 created_unix_ms;
};
