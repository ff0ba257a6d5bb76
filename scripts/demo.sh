#!/usr/bin/env bash
# make demo: a simulated Kubernetes node on this machine, no cluster needed.
#
#  1. starts a private podnet agent (its own bpffs dir, state dir, socket)
#  2. creates three "pods" (network namespaces) and networks them by exec'ing
#     the installed CNI entry point exactly as a container runtime does
#     (CNI_* environment + network config on stdin)
#  3. sends traffic pod-to-pod and host-to-pod, and shows the kernel state:
#     podnet status / endpoints / ipam, the BPF counters and live metrics
#  4. puts a Service in front of two pods by renaming a new services file
#     (scripts/demo-services.yaml filled in) over the one the agent watches,
#     then rewrites it with one backend fewer
#  5. deletes the pods through CNI DEL and removes everything it created
#
# Traffic goes only between namespaces this script creates.
#
# Overrides (environment or make variables; PODNET_* names belong to the agent):
#   DEMO_POD_CIDR      the demo node's pod CIDR (default 10.244.7.0/24); must not
#                      overlap any address or route on this host
#   DEMO_SERVICE_CIDR  the demo's service range (default 10.96.7.0/24); its Service
#                      web gets the 10th address; must be free on this host too
#   DEMO_METRICS_PORT  the agent's metrics port on 127.0.0.1 (default 29962)
#   NO_COLOR           set (non-empty) to print no colour; none is printed
#                      either when stdout is not a terminal
set -euo pipefail
cd "$(dirname "$0")/.."

CIDR=${DEMO_POD_CIDR:-10.244.7.0/24}
PORT=${DEMO_METRICS_PORT:-29962}
SVC_CIDR=${DEMO_SERVICE_CIDR:-10.96.7.0/24}
METRICS=127.0.0.1:$PORT
PODS=(frontend backend db)
PODNET=./bin/podnet
AGENT_PID=
SERVER_PIDS=()
BLACKHOLE=
DEMO=
BPFFS=
declare -A NS

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD= PLAIN=; fi
say() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
run() { printf '$ %s\n' "$*"; "$@"; }
die() { printf 'make demo: %s\n' "$*" >&2; exit 1; }

# ip4 A.B.C.D: the address as an integer; fails on anything else.
ip4() {
  local IFS=. a b c d
  read -r a b c d <<<"$1"
  for o in "$a" "$b" "$c" "$d"; do [[ $o =~ ^[0-9]{1,3}$ ]] && [ "$o" -le 255 ] || return 1; done
  echo $(( (a << 24) | (b << 16) | (c << 8) | d ))
}
# range CIDR: "first last" of the prefix (a bare address is a /32).
range() {
  local addr=${1%/*} len=32 n mask
  [[ $1 == */* ]] && len=${1#*/}
  [[ $len =~ ^[0-9]{1,2}$ ]] && [ "$len" -le 32 ] || return 1
  n=$(ip4 "$addr") || return 1
  mask=$(( len == 0 ? 0 : (0xffffffff << (32 - len)) & 0xffffffff ))
  echo $(( n & mask )) $(( (n & mask) | (~mask & 0xffffffff) ))
}

# check_cidr VAR CIDR WHAT EXAMPLE: the range must be free on this host: an
# overlapping address or route would send pod traffic (or the host's) the
# wrong way, and for the service range the blackhole route would hide it.
check_cidr() {
  local var=$1 cidr=$2 what_range=$3 example=$4 r first last f l what
  [[ $cidr == */* ]] && r=$(range "$cidr") || die "$var=$cidr is not an IPv4 CIDR such as $example"
  read -r first last <<<"$r"
  [ "${cidr#*/}" -ge 8 ] && [ "${cidr#*/}" -le 30 ] || die "$var=$cidr: the prefix length must be between /8 and /30"
  while read -r what; do
    [ -n "$what" ] || continue
    r=$(range "${what%% *}") || continue
    read -r f l <<<"$r"
    if [ "$f" -le "$last" ] && [ "$l" -ge "$first" ]; then
      die "the demo $what_range $cidr overlaps \"$what\" on this host; choose a free one, e.g. make demo $var=$example"
    fi
  done < <(
    # Destinations of every route in every table but the default routes,
    # and the prefix of every address.
    ip -4 route show table all | awk '{ sub(/ +$/, ""); for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(\/[0-9]+)?$/) { print $i " (route: " $0 ")"; break } }'
    ip -4 -o addr show | awk '{ for (i = 1; i < NF; i++) if ($i == "inet") print $(i + 1) " (address on " $2 ")" }'
  )
}

check_port() {
  [[ $PORT =~ ^[0-9]{1,5}$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "DEMO_METRICS_PORT=$PORT is not a TCP port"
  if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
    die "port $PORT on this host is in use; choose another, e.g. make demo DEMO_METRICS_PORT=29963"
  fi
}

say "Checking that pod CIDR $CIDR, service CIDR $SVC_CIDR and metrics port $PORT are free on this host"
check_cidr DEMO_POD_CIDR "$CIDR" "pod CIDR" 10.123.0.0/24
check_cidr DEMO_SERVICE_CIDR "$SVC_CIDR" "service CIDR" 10.124.0.0/24
read -r first last <<<"$(range "$SVC_CIDR")"
read -r pf pl <<<"$(range "$CIDR")"
if [ "$pf" -le "$last" ] && [ "$pl" -ge "$first" ]; then die "DEMO_SERVICE_CIDR=$SVC_CIDR overlaps the pod CIDR $CIDR; choose another, e.g. make demo DEMO_SERVICE_CIDR=10.124.0.0/24"; fi
SVC_IP=$(( first + 10 ))
SVC_IP=$(( SVC_IP >> 24 )).$(( (SVC_IP >> 16) & 255 )).$(( (SVC_IP >> 8) & 255 )).$(( SVC_IP & 255 ))
check_port
DEMO=$(mktemp -d /tmp/podnet-demo.XXXXXX)
BPFFS=/sys/fs/bpf/podnet-demo-$$
SOCK=$DEMO/agent.sock

cleanup() {
  set +e
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  [ -z "$BLACKHOLE" ] || ip route del blackhole "$BLACKHOLE" 2>/dev/null
  for pod in "${PODS[@]}"; do
    if [ -n "${NS[$pod]:-}" ]; then
      cni DEL "$pod" >/dev/null 2>&1
      ip netns del "${NS[$pod]}" 2>/dev/null
    fi
  done
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
  fi
  # The agent leaves the datapath pinned on purpose (pods keep working across
  # agent restarts); a demo removes its own instance entirely.
  [ -z "$BPFFS" ] || rm -rf "$BPFFS"
  [ -z "$DEMO" ] || rm -rf "$DEMO"
}
trap cleanup EXIT

# The network config a runtime would pass on stdin (from the conflist).
conf() {
  printf '{"cniVersion":"1.1.0","name":"podnet-demo","type":"podnet","agentSocket":"%s","stateDir":"%s/state"}' "$SOCK" "$DEMO"
}

# cni VERB POD: exec the installed plugin as a runtime would.
cni() {
  local verb=$1 pod=$2
  conf | env CNI_COMMAND="$verb" CNI_CONTAINERID="demo-$pod-$$" CNI_NETNS="/run/netns/${NS[$pod]}" \
    CNI_IFNAME=eth0 CNI_PATH="$DEMO/cni/bin" CNI_ARGS="K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$pod" \
    "$DEMO/cni/bin/podnet"
}

say "Installing the CNI entry point into $DEMO/cni (as make install does into /opt/cni/bin)"
make --no-print-directory -s install-cni CNI_BIN_DIR="$DEMO/cni/bin" CNI_CONF_DIR="$DEMO/cni/net.d"
ls -l "$DEMO/cni/bin/podnet"

# The agent watches this file; it starts with no Services (comments only).
printf '# Services and EndpointSlices for standalone mode: none yet\n' > "$DEMO/services.yaml"
say "Starting the agent (pod CIDR $CIDR, pins under $BPFFS)"
# The service range, for agents that take it (addresses in it that match no
# Service are dropped on the node).
svc_flags=()
if "$PODNET" agent --help 2>/dev/null | grep -q -- '--service-cidr'; then svc_flags=(--service-cidr "$SVC_CIDR"); fi
"$PODNET" agent --node-name demo-node --pod-cidr "$CIDR" --source "file:$DEMO/services.yaml" "${svc_flags[@]}" \
  --bpffs "$BPFFS" --state-dir "$DEMO/state" --api-socket "$SOCK" --metrics-addr "$METRICS" \
  --log-level warn &
AGENT_PID=$!
for _ in $(seq 1 100); do
  [ -S "$SOCK" ] && "$PODNET" status --api-socket "$SOCK" >/dev/null 2>&1 && break
  kill -0 "$AGENT_PID" 2>/dev/null || { echo "agent exited during start-up" >&2; exit 1; }
  sleep 0.1
done
run "$PODNET" status --api-socket "$SOCK"

say "Creating pods through CNI ADD"
declare -A IP
for pod in "${PODS[@]}"; do
  NS[$pod]="podnet-demo-$pod-$$"
  ip netns add "${NS[$pod]}"
  result=$(cni ADD "$pod")
  IP[$pod]=$(printf '%s' "$result" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).ips[0].address.split("/")[0]))')
  printf '%-9s netns %-28s ip %s\n' "$pod" "${NS[$pod]}" "${IP[$pod]}"
done

run "$PODNET" endpoints --api-socket "$SOCK"
run "$PODNET" ipam --api-socket "$SOCK"

say "Inside pod frontend: one /32 address, a link-local gateway answered by a permanent neighbour"
run ip -n "${NS[frontend]}" -br addr show dev eth0
run ip -n "${NS[frontend]}" route
run ip -n "${NS[frontend]}" neigh show dev eth0

COUNT=5
say "Pod to pod: frontend pings backend $COUNT times (redirected by from_pod, never through the host's routing)"
run ip netns exec "${NS[frontend]}" ping -c "$COUNT" -i 0.2 -W 1 "${IP[backend]}"
say "Pod to pod TCP: backend serves iperf3, db is the client (1 s)"
ip netns exec "${NS[backend]}" iperf3 -s -1 -B "${IP[backend]}" >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.3
ip netns exec "${NS[db]}" iperf3 -c "${IP[backend]}" -t 1 -f g | grep -E 'sender|receiver' || true
wait "$IPERF_PID" 2>/dev/null || true
say "Host to pod"
run ping -c 2 -i 0.2 -W 1 "${IP[db]}"

say "The BPF counters (pn_counters, per endpoint and direction, summed over CPUs)"
run "$PODNET" maps dump pn_counters --bpffs "$BPFFS"
say "Live metrics from http://$METRICS/metrics"
node -e '
fetch(process.argv[1]).then(r => r.text()).then(t => {
  for (const l of t.split("\n")) if (/^podnet_(endpoint_packets_total|ipam_addresses|endpoints|agent_ready|datapath_drop_packets_total|reconcile_runs_total|cni_del_queue_requests)\b/.test(l)) console.log(l);
});' "http://$METRICS/metrics"

say "Check: frontend sent $COUNT echo requests and got $COUNT replies; the datapath counted exactly that"
node -e '
const [url, want] = [process.argv[1], Number(process.argv[2])];
fetch(url).then(r => r.text()).then(t => {
  const get = (dir) => Number(t.match(new RegExp(`podnet_endpoint_packets_total\\{namespace="demo",pod="frontend",direction="${dir}"\\} (\\d+)`))?.[1]);
  const [tx, rx] = [get("egress"), get("ingress")];
  console.log(`frontend: sent ${want}, counted egress ${tx}; received ${want}, counted ingress ${rx}`);
  if (tx !== want || rx !== want) { console.log("MISMATCH"); process.exit(1); }
  console.log("counters equal the traffic sent");
});' "http://$METRICS/metrics" "$COUNT"

# services_file IP...: scripts/demo-services.yaml with the Service address
# and one ready endpoint per IP, renamed over the watched file (as an editor
# or a ConfigMap volume replaces a file: the agent sees the new one).
services_file() {
  local eps="" ip
  for ip in "$@"; do eps+=$'  - addresses: ['"$ip"$']\n    conditions: {ready: true}\n    nodeName: demo-node\n'; done
  awk -v svc="$SVC_IP" -v eps="${eps%$'\n'}" '{ gsub(/@SERVICE_IP@/, svc); if ($0 == "@ENDPOINTS@") print eps; else print }' \
    scripts/demo-services.yaml > "$DEMO/services.yaml.new"
  mv "$DEMO/services.yaml.new" "$DEMO/services.yaml"
}

# The agent has the Service datapath when its CLI lists `podnet services`.
has_services() { "$PODNET" --help 2>/dev/null | grep -qE '^ +podnet services( |$)'; }

# requests N: N HTTP requests from frontend to the ClusterIP; prints the pod that answered each.
requests() {
  # A new connection per request (agent: false; fetch would keep one
  # connection alive, and a connection stays on its backend).
  ip netns exec "${NS[frontend]}" node -e '
const http = require("http");
const [url, n] = [process.argv[1], Number(process.argv[2])];
const get = () => new Promise((resolve) => {
  const q = http.get(url, { agent: false, timeout: 2000 }, (res) => { let b = ""; res.on("data", (d) => { b += d; }); res.on("end", () => resolve(b)); });
  q.on("timeout", () => q.destroy(new Error("timeout")));
  q.on("error", (e) => resolve(`failed: ${e.code ?? e.message}`));
});
(async () => { for (let i = 0; i < n; i++) console.log(await get()); })();' "http://$SVC_IP/" "$1"
}

say "A Service in front of backend and db: demo/web at $SVC_IP:80 -> pods :8080"
# Guard first: until the datapath translates it, a packet to the Service
# address must not leave this machine.
ip route add blackhole "$SVC_CIDR"
BLACKHOLE=$SVC_CIDR
for pod in backend db; do
  ip netns exec "${NS[$pod]}" node -e '
require("http").createServer((q, s) => s.end(process.argv[1])).listen(8080, process.argv[2]);' "$pod" "${IP[$pod]}" &
  SERVER_PIDS+=($!)
done
services_file "${IP[backend]}" "${IP[db]}"
run cat "$DEMO/services.yaml"
if has_services; then
  for _ in $(seq 1 50); do "$PODNET" services --api-socket "$SOCK" 2>/dev/null | grep -q "$SVC_IP" && break; sleep 0.1; done
  run "$PODNET" services --api-socket "$SOCK"
  say "frontend -> http://$SVC_IP/ 20 times: both backends answer"
  out=$(requests 20)
  printf '%s\n' "$out" | sort | uniq -c
  printf '%s\n' "$out" | grep -q failed && die "a request through the Service failed"
  for pod in backend db; do printf '%s\n' "$out" | grep -qx "$pod" || die "$pod never answered through the Service"; done
  say "db leaves the Service: the file is rewritten with backend only"
  services_file "${IP[backend]}"
  for _ in $(seq 1 50); do "$PODNET" services --api-socket "$SOCK" 2>/dev/null | grep -q "${IP[db]}" || break; sleep 0.1; done
  out=$(requests 10)
  printf '%s\n' "$out" | sort | uniq -c
  [ "$(printf '%s\n' "$out" | grep -cx backend)" -eq 10 ] || die "requests after the change did not all go to backend"
else
  echo "(this build has no Service datapath yet: no traffic through $SVC_IP)"
fi
for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
SERVER_PIDS=()
ip route del blackhole "$SVC_CIDR"
BLACKHOLE=

say "Deleting the pods through CNI DEL"
for pod in "${PODS[@]}"; do cni DEL "$pod"; ip netns del "${NS[$pod]}"; unset "NS[$pod]"; echo "deleted $pod"; done
run "$PODNET" status --api-socket "$SOCK"
say "Done: the trap stops the agent and removes $BPFFS and $DEMO"
