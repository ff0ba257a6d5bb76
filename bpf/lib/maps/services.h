/* The service load-balancing maps (records in shared/services.h; the
 * TypeScript descriptors in agent/src/maps/services.ts). The sizes here are
 * the defaults; the agent may resize pn_services, pn_svc_slots, pn_backends,
 * pn_ct and pn_affinity before load, and every object of a node then
 * carries the same sizes, so the pins are shared.
 *
 * pn_services    frontend -> frontend id, group, count, flags. Written by the
 *                service reconciler; read by the LB programs (tc, cgroup).
 * pn_svc_slots   {group, slot} -> backend id. Written by the reconciler; read
 *                by backend selection (lib/lb.h).
 * pn_backends    backend id -> address, port. Written by the reconciler; read
 *                by DNAT and by the conntrack check that a backend still exists.
 * pn_ct          forward and reverse 5-tuples of translated connections.
 *                Written by the LB programs; swept by the agent.
 * pn_affinity    {group, client} -> backend, last use (sessionAffinity
 *                ClientIP). Written by backend selection.
 * pn_svc_stats   frontend id -> connections, packets, bytes, no-backend
 *                rejects per CPU. Written by the LB programs; read by metrics.
 * pn_svc_ranges  the service CIDRs (LPM). Written by the agent; read by the
 *                tc programs to drop what matches no frontend. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/services.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_svc_key);
	__type(value, struct pn_svc);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct pn_slot_key);
	__type(value, struct pn_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_svc_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct pn_backend_key);
	__type(value, struct pn_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct pn_ct_key);
	__type(value, struct pn_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_affinity_key);
	__type(value, struct pn_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pn_svc_stats_key);
	__type(value, struct pn_svc_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* the kernel requires it of LPM tries */
	__type(key, struct pn_svc_range_key);
	__type(value, struct pn_svc_range);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_svc_ranges SEC(".maps");
