# Shared paths and helpers of scripts/cluster/up.sh and down.sh. Source it.
#
# Everything the cluster creates lives under $CLUSTER_DIR (build/cluster in
# the checkout) apart from the kernel objects named in cluster.env (netns,
# veth, routes), kubelet's cgroups, its /var/log/containers links and the
# sysctls kubelet sets, which down.sh restores from sysctl.saved.

CLUSTER_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_SCRIPTS/../.." && pwd)
# shellcheck source=cluster.env
. "$CLUSTER_SCRIPTS/cluster.env"
# shellcheck source=../harness/lib.sh
. "$REPO_ROOT/scripts/harness/lib.sh"

CLUSTER_DIR=$REPO_ROOT/build/cluster
PKI=$CLUSTER_DIR/pki
CONF=$CLUSTER_DIR/conf
LOGS=$CLUSTER_DIR/logs
RUN=$CLUSTER_DIR/run
KUBECONFIG_ADMIN=$CLUSTER_DIR/kubeconfig

K8S_BIN=$(harness_component_dir kubernetes "$KUBERNETES_VERSION")/bin
ETCD_BIN=$(harness_component_dir etcd "$ETCD_VERSION")/bin
CONTAINERD_BIN=$(harness_component_dir containerd "$CONTAINERD_VERSION")/bin
CNI_PLUGINS_BIN=$(harness_component_dir cni-plugins "$CNI_PLUGINS_VERSION")/bin
PAUSE_BIN=$(harness_component_dir pause "$PAUSE_VERSION")/bin

CONTAINERD_SOCK=$CLUSTER_DIR/containerd/containerd.sock
NODE_NAME=$(hostname | tr '[:upper:]' '[:lower:]')

# The sysctls kubelet sets at start-up (pkg/kubelet/cm setupKernelTunables);
# up.sh saves them and down.sh puts them back.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

cluster_log() { echo "cluster: $*" >&2; }
cluster_die() {
  echo "cluster: $*" >&2
  exit 1
}

# proc_starttime PID: field 22 of /proc/PID/stat (clock ticks since boot);
# with the PID it names one process, even after PIDs wrap. Fails for a
# process that is gone or a zombie (dead, not yet reaped).
proc_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  set -- $stat
  [[ $1 != Z && $1 != X ]] || return 1
  echo "${20}"
}

# proc_alive NAME: the process recorded in $RUN/NAME.pid is still running.
proc_alive() {
  local pid st
  [[ -f $RUN/$1.pid ]] || return 1
  read -r pid st <"$RUN/$1.pid" || return 1
  [[ $(proc_starttime "$pid" 2>/dev/null) == "$st" ]]
}

# start_proc NAME NETNS|- CMD...: start CMD detached (own session), in the
# network namespace NETNS or in the root one (-), output to $LOGS/NAME.log,
# PID and start time to $RUN/NAME.pid.
start_proc() {
  local name=$1 ns=$2
  shift 2
  mkdir -p "$LOGS" "$RUN"
  echo "=== $(date -u +%FT%TZ) $*" >>"$LOGS/$name.log"
  if [[ $ns == - ]]; then
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  else
    setsid ip netns exec "$ns" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  fi
  local pid=$!
  local st
  st=$(proc_starttime "$pid") || cluster_die "start $name: exited at once, see $LOGS/$name.log"
  echo "$pid $st" >"$RUN/$name.pid"
  # The command line, for scripts/cluster/start.sh after a component was stopped.
  printf '%s\0' "$ns" "$@" >"$RUN/$name.cmd"
}

# stop_pid PID STARTTIME LABEL: SIGTERM, up to 20 s, then SIGKILL.
stop_pid() {
  local pid=$1 st=$2 label=$3 i
  [[ $(proc_starttime "$pid" 2>/dev/null) == "$st" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    [[ $(proc_starttime "$pid" 2>/dev/null) == "$st" ]] || return 0
    sleep 0.1
  done
  cluster_log "stop $label (pid $pid): no exit 20 s after SIGTERM, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    [[ $(proc_starttime "$pid" 2>/dev/null) == "$st" ]] || return 0
    sleep 0.1
  done
  cluster_log "stop $label (pid $pid): still running after SIGKILL"
}

# kill_pids LABEL PID...: SIGKILL each process (named by PID and its start
# time read now), then wait up to 10 s for all of them to be gone.
kill_pids() {
  local label=$1 pid st i
  shift
  local -A started=()
  for pid in "$@"; do
    st=$(proc_starttime "$pid") || continue
    started[$pid]=$st
    kill -KILL "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < 100; i++)); do
    local left=0
    for pid in "${!started[@]}"; do
      [[ $(proc_starttime "$pid" 2>/dev/null) == "${started[$pid]}" ]] && left=1
    done
    ((left)) || return 0
    sleep 0.1
  done
  cluster_log "kill $label ${!started[*]}: still running 10 s after SIGKILL"
}

# stop_proc NAME: stop the process recorded in $RUN/NAME.pid, if it runs.
stop_proc() {
  local pid st
  [[ -f $RUN/$1.pid ]] || return 0
  read -r pid st <"$RUN/$1.pid" || true
  if [[ -n ${pid:-} && -n ${st:-} ]]; then
    stop_pid "$pid" "$st" "$1"
  fi
  rm -f "$RUN/$1.pid"
}

# wait_for SECONDS WHAT CMD...: retry CMD every half second, bounded.
wait_for() {
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}

kubectl_admin() {
  "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" --cache-dir "$CLUSTER_DIR/kubectl-cache" "$@"
}

ctr_k8s() {
  "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"
}

# --- podnet on the cluster -----------------------------------------------------
# up.sh applies deploy/ through a generated kustomization in $PODNET_DEPLOY_DIR
# (copies of deploy/*.yaml plus one patch) that sets the cluster's two knobs:
# the API server's real address for the agent (no kube-proxy, so the
# kubernetes Service's ClusterIP leads nowhere) and the CNI directories
# containerd's CRI reads ($CLUSTER_DIR/cni, not /opt/cni/bin and
# /etc/cni/net.d). It also mounts the CRI's sandbox netns directory into the
# agent at the same path: the entry point hands the agent that path.
PODNET_IMAGE_TAR=$REPO_ROOT/build/agent-image.tar
PODNET_DEPLOY_DIR=$CLUSTER_DIR/deploy
CRI_NETNS_DIR=$CLUSTER_DIR/containerd/state/io.containerd.grpc.v1.cri/netns
# What the agent puts on the node (deploy/02-config.yaml), removed by down.sh.
PODNET_BPFFS=/sys/fs/bpf/podnet
PODNET_STATE_DIR=/var/lib/podnet
PODNET_RUN_DIR=/run/podnet

# mount_shared PATH: whether the mount holding PATH is shared.
mount_shared() {
  local target
  target=$(findmnt -n -o TARGET --target "$1") || return 1
  awk -v t="$target" '$5 == t { for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) found = 1 } END { exit !found }' /proc/self/mountinfo
}

podnet_share_mounts() {
  if ! mountpoint -q /sys/fs/bpf; then
    mount -t bpf bpf /sys/fs/bpf
    touch "$RUN/bpffs.mounted"
  fi
  if ! mount_shared /sys/fs/bpf; then
    mount --make-shared /sys/fs/bpf
    touch "$RUN/bpffs.madeshared"
  fi
  mkdir -p "$CRI_NETNS_DIR"
  if ! mountpoint -q "$CRI_NETNS_DIR"; then
    mount --bind "$CRI_NETNS_DIR" "$CRI_NETNS_DIR"
    mount --make-shared "$CRI_NETNS_DIR"
  fi
}

# podnet_render: the kustomization up.sh applies (deploy/ plus the knobs).
podnet_render() {
  rm -rf "$PODNET_DEPLOY_DIR"
  mkdir -p "$PODNET_DEPLOY_DIR"
  local f resources=()
  for f in "$REPO_ROOT"/deploy/*.yaml; do
    cp "$f" "$PODNET_DEPLOY_DIR/"
    resources+=("  - $(basename "$f")")
  done
  cat >"$PODNET_DEPLOY_DIR/kustomization.yaml" <<YAML
# Generated by scripts/cluster/up.sh: deploy/ as it is, plus cluster.yaml.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
$(printf '%s\n' "${resources[@]}")
patches:
  - path: cluster.yaml
YAML
  cat >"$PODNET_DEPLOY_DIR/cluster.yaml" <<YAML
# The cluster's knobs (deploy/README.md, "Clusters without kube-proxy" and
# "CNI directories").
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: podnet
  namespace: kube-system
spec:
  template:
    spec:
      containers:
        - name: agent
          env:
            - name: KUBERNETES_SERVICE_HOST
              value: "$CLUSTER_APISERVER_IP"
            - name: KUBERNETES_SERVICE_PORT
              value: "$CLUSTER_APISERVER_PORT"
          volumeMounts:
            - name: cri-netns
              mountPath: $CRI_NETNS_DIR
              mountPropagation: HostToContainer
      volumes:
        - name: cni-bin
          hostPath:
            path: $CLUSTER_DIR/cni/bin
            type: Directory
        - name: cni-conf
          hostPath:
            path: $CLUSTER_DIR/cni/net.d
            type: Directory
        - name: cri-netns
          hostPath:
            path: $CRI_NETNS_DIR
            type: Directory
YAML
}

podnet_apply() {
  podnet_render
  touch "$RUN/podnet.owner"
  kubectl_admin apply -k "$PODNET_DEPLOY_DIR" >>"$LOGS/podnet-apply.log" 2>&1 ||
    cluster_die "apply deploy/: kubectl apply -k $PODNET_DEPLOY_DIR failed, see $LOGS/podnet-apply.log"
}

podnet_wait() {
  kubectl_admin -n kube-system rollout status daemonset/podnet --timeout=300s >>"$LOGS/podnet-apply.log" 2>&1 ||
    cluster_die "start podnet: DaemonSet not ready after 300 s, see $LOGS/podnet-apply.log and kubectl -n kube-system logs ds/podnet"
  kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >>"$LOGS/podnet-apply.log" 2>&1 ||
    cluster_die "node $NODE_NAME: not Ready 120 s after podnet started, see $LOGS/kubelet.log"
}
