// The C baseline of test/bench/maps.ts: the same element and batch loops
// as the TypeScript variants, calling libbpf directly, on a map the driver
// pinned. One invocation measures one sample and prints one JSON line.
//
// Build: gcc -O2 -Wall -Wextra -o build/bench/maps-baseline test/bench/maps-baseline.c -lbpf
// Usage: maps-baseline --op update|lookup|batch --pin PATH --ops N --range R
//          [--batch B] [--warmup W] [--max-ms MS] [--marker BYTE]
//
// update: N single bpf_map_update_elem calls (BPF_ANY) over keys 0..R-1.
// lookup: N single bpf_map_lookup_elem calls over keys 0..R-1; every key must exist.
// batch:  bpf_map_update_batch calls of B elements over keys 0..R-1 until
//         N elements are written.
// Keys are u32, values 16 bytes filled with MARKER, so the driver can tell
// which variant wrote last. A sample stops early after MAX-MS; the output
// says how many operations it timed.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VALUE_SIZE 16
// The clock is read once per CHECK_EVERY operations so the time bound costs
// nothing measurable inside the loop.
#define CHECK_EVERY 1024

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc) {
  int e = rc < 0 ? -rc : rc;
  fprintf(stderr, "maps-baseline: %s: %s (errno %d)\n", what, strerror(e), e);
  exit(1);
}

static uint64_t parse_u64(const char *name, const char *s) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') {
    fprintf(stderr, "maps-baseline: parse --%s: %s is not a number\n", name, s);
    exit(2);
  }
  return v;
}

struct args {
  const char *op;
  const char *pin;
  uint64_t ops;
  uint32_t range;
  uint32_t batch;
  uint64_t warmup;
  uint64_t max_ms;
  uint8_t marker;
};

// Single updates over keys 0..range-1; returns how many were timed.
static uint64_t loop_update(int fd, uint64_t n, uint32_t range, const uint8_t *value, uint64_t deadline) {
  uint32_t key = 0;
  uint64_t i;
  for (i = 0; i < n; i++) {
    int rc = bpf_map_update_elem(fd, &key, value, BPF_ANY);
    if (rc != 0) die("update element", rc);
    if (++key == range) key = 0;
    if ((i & (CHECK_EVERY - 1)) == CHECK_EVERY - 1 && now_ns() >= deadline) return i + 1;
  }
  return i;
}

// Single lookups over keys 0..range-1; every key is expected to be there.
static uint64_t loop_lookup(int fd, uint64_t n, uint32_t range, uint8_t *out, uint64_t deadline) {
  uint32_t key = 0;
  uint64_t i;
  for (i = 0; i < n; i++) {
    int rc = bpf_map_lookup_elem(fd, &key, out);
    if (rc != 0) die("look up element", rc);
    if (++key == range) key = 0;
    if ((i & (CHECK_EVERY - 1)) == CHECK_EVERY - 1 && now_ns() >= deadline) return i + 1;
  }
  return i;
}

// Batch updates of `batch` elements walking keys 0..range-1; returns elements written.
static uint64_t loop_batch(int fd, uint64_t n, uint32_t range, uint32_t batch, const uint32_t *keys, const uint8_t *values,
                           uint64_t deadline, uint64_t *calls) {
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  uint64_t done = 0;
  uint32_t off = 0;
  while (done < n) {
    uint32_t want = range - off < batch ? range - off : batch;
    uint32_t count = want;
    int rc = bpf_map_update_batch(fd, keys + off, values + (size_t)off * VALUE_SIZE, &count, &opts);
    if (rc != 0) die("update batch", rc);
    if (count != want) die("update batch: short count", EIO);
    (*calls)++;
    done += count;
    off += count;
    if (off == range) off = 0;
    if (now_ns() >= deadline) break;
  }
  return done;
}

int main(int argc, char **argv) {
  struct args a = {.op = NULL, .pin = NULL, .ops = 0, .range = 0, .batch = 10000, .warmup = 0, .max_ms = 5000, .marker = 0xc0};
  static const struct option longopts[] = {
      {"op", required_argument, NULL, 'o'},     {"pin", required_argument, NULL, 'p'},   {"ops", required_argument, NULL, 'n'},
      {"range", required_argument, NULL, 'r'},  {"batch", required_argument, NULL, 'b'}, {"warmup", required_argument, NULL, 'w'},
      {"max-ms", required_argument, NULL, 'm'}, {"marker", required_argument, NULL, 'k'}, {NULL, 0, NULL, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'o': a.op = optarg; break;
    case 'p': a.pin = optarg; break;
    case 'n': a.ops = parse_u64("ops", optarg); break;
    case 'r': a.range = (uint32_t)parse_u64("range", optarg); break;
    case 'b': a.batch = (uint32_t)parse_u64("batch", optarg); break;
    case 'w': a.warmup = parse_u64("warmup", optarg); break;
    case 'm': a.max_ms = parse_u64("max-ms", optarg); break;
    case 'k': a.marker = (uint8_t)parse_u64("marker", optarg); break;
    default: return 2;
    }
  }
  if (a.op == NULL || a.pin == NULL || a.ops == 0 || a.range == 0 || a.batch == 0) {
    fprintf(stderr, "usage: maps-baseline --op update|lookup|batch --pin PATH --ops N --range R [--batch B] [--warmup W] [--max-ms MS] [--marker BYTE]\n");
    return 2;
  }
  int fd = bpf_obj_get(a.pin);
  if (fd < 0) die("open pinned map", fd);

  uint8_t value[VALUE_SIZE];
  memset(value, a.marker, sizeof(value));
  uint8_t out[VALUE_SIZE];
  uint64_t timed = 0, calls = 0, t0 = 0, t1 = 0;
  // Warm-up gets its own bound: a quarter of the sample's.
  uint64_t warm_deadline = now_ns() + a.max_ms * 250000ull;

  if (strcmp(a.op, "update") == 0) {
    loop_update(fd, a.warmup, a.range, value, warm_deadline);
    t0 = now_ns();
    timed = loop_update(fd, a.ops, a.range, value, t0 + a.max_ms * 1000000ull);
    t1 = now_ns();
  } else if (strcmp(a.op, "lookup") == 0) {
    loop_lookup(fd, a.warmup, a.range, out, warm_deadline);
    t0 = now_ns();
    timed = loop_lookup(fd, a.ops, a.range, out, t0 + a.max_ms * 1000000ull);
    t1 = now_ns();
  } else if (strcmp(a.op, "batch") == 0) {
    uint32_t *keys = malloc((size_t)a.range * sizeof(uint32_t));
    uint8_t *values = malloc((size_t)a.range * VALUE_SIZE);
    if (keys == NULL || values == NULL) die("allocate batch buffers", ENOMEM);
    for (uint32_t i = 0; i < a.range; i++) keys[i] = i;
    memset(values, a.marker, (size_t)a.range * VALUE_SIZE);
    uint64_t warm_calls = 0;
    loop_batch(fd, a.warmup, a.range, a.batch, keys, values, warm_deadline, &warm_calls);
    t0 = now_ns();
    timed = loop_batch(fd, a.ops, a.range, a.batch, keys, values, t0 + a.max_ms * 1000000ull, &calls);
    t1 = now_ns();
    free(keys);
    free(values);
  } else {
    fprintf(stderr, "maps-baseline: unknown --op %s\n", a.op);
    return 2;
  }
  close(fd);

  uint64_t ns = t1 - t0;
  printf("{\"op\":\"%s\",\"ops\":%llu,\"calls\":%llu,\"ns\":%llu,\"nsPerOp\":%.3f,\"libbpf\":\"%s\"}\n", a.op, (unsigned long long)timed,
         (unsigned long long)(calls ? calls : timed), (unsigned long long)ns, timed ? (double)ns / (double)timed : 0.0,
         libbpf_version_string());
  return 0;
}
