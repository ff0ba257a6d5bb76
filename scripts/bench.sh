#!/usr/bin/env bash
# Runs the benchmarks under test/bench (one file each; lib/ is shared code).
# Usage: scripts/bench.sh [NAME...]   e.g. scripts/bench.sh cni-latency
#
# Benchmarks run one after another, never in parallel (they would measure
# each other), each bounded by BENCH_TIMEOUT (default 45m). Output goes to
# the terminal and to build/bench/<name>.log. Extra flags for one benchmark
# can be passed as BENCH_ARGS_<NAME> with dashes as underscores, e.g.
# BENCH_ARGS_cni_latency="--pods 200".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ $(id -u) -ne 0 ]]; then
  echo "bench: needs root (network namespaces, CNI plugins)" >&2
  exit 1
fi

"$root/scripts/ensure-debs.sh" iproute2 iperf3 sockperf time
"$root/scripts/ensure-debs.sh" gcc libbpf-dev # maps: the C baseline against libbpf
# The libcni driver and the reference plugins (the peers), built from Go
# modules into the harness cache when missing.
bash "$root/scripts/harness/cnidriver.sh" "$root/build/cnidriver"
bash "$root/scripts/harness/build.sh" --quiet cni-plugins

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for f in test/bench/*.ts; do
    names+=("$(basename "$f" .ts)")
  done
fi

node_bin=$(command -v node) || { echo "bench: node not found" >&2; exit 1; }

# Tools only the CNI entry-point comparison needs (versions in
# test/bench/lib/tools.json), installed with npm into a cache of the
# benchmark's own, in the caller's environment (which may hold what reaching
# the registry needs), never into the checkout. (Not PODNET_*: the agent
# the benchmark starts reads those as its flags.)
tools=${BENCH_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/podnet/bench-tools}
if [[ " ${names[*]} " == *" cni-latency "* ]]; then
  read -r postject_v deno_v < <("$node_bin" -p 'const t = require("./test/bench/lib/tools.json"); `${t.postject} ${t.deno}`')
  marker="$tools/installed-postject-$postject_v-deno-$deno_v"
  if [[ ! -e $marker ]]; then
    mkdir -p "$tools"
    [[ -f $tools/package.json ]] || echo '{"private":true}' >"$tools/package.json"
    if npm install --prefix "$tools" --no-audit --no-fund "postject@$postject_v" "deno@$deno_v" </dev/null; then
      touch "$marker"
    else
      echo "bench: could not install postject and deno into $tools: the SEA and deno candidates will be skipped" >&2
    fi
  fi
fi
# services-proxy: kube-proxy's nftables mode runs nft (iptables mode uses
# the iptables package, which the base system has); the benchmark builds
# kube-proxy with the harness and brings the cluster up when it is not running.
if [[ " ${names[*]} " == *" services-proxy "* ]]; then
  "$root/scripts/ensure-debs.sh" iptables nftables
fi
mkdir -p build/bench
failed=()
for name in "${names[@]}"; do
  file="test/bench/$name.ts"
  if [[ ! -f $file ]]; then
    echo "bench: no benchmark $file" >&2
    failed+=("$name")
    continue
  fi
  var="BENCH_ARGS_${name//-/_}"
  read -r -a extra <<<"${!var:-}"
  echo "=== $name ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  # A clean environment: inherited variables such as NODE_EXTRA_CA_CERTS
  # change process start-up cost and would leak into every measurement.
  if ! env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/root}" BENCH_TOOLS_DIR="$tools" \
    timeout --kill-after=30s "${BENCH_TIMEOUT:-45m}" \
    "$node_bin" --import tsx "$file" "${extra[@]}" 2>&1 | tee "build/bench/$name.log"; then
    failed+=("$name")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
