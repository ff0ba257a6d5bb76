/* pn_events: ring buffer of struct pn_event records (drops today, traces
 * later). Written by the drop path (lib/drop.h); read by `podnet monitor`. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shared/events.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_events SEC(".maps");
