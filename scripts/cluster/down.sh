#!/usr/bin/env bash
# Stop the cluster scripts/cluster/up.sh started and remove what it made:
# processes (each by its recorded PID; containerd's shims and containers
# found through containerd's own state), mounts under build/cluster
# (kubelet's pod volumes, container root filesystems, sandbox netns), the
# control plane's netns and veth, the guard routes, kubelet's cgroups,
# iptables chains and /var/log/containers links, the sysctls kubelet
# changed, and build/cluster itself apart from logs/. Safe to run at any
# time, also after a crash or twice.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || cluster_die "stop cluster: needs root"

# 0. kube-proxy, when scripts/cluster/kube-proxy.sh started it (its rules
#    and the sysctls it saved go with it).
if [[ -f $RUN/kube-proxy.pid || -f $RUN/kube-proxy.mode ]]; then
  bash "$CLUSTER_SCRIPTS/kube-proxy.sh" stop
fi
# The reference CNI's guard route and portmap's chains (scripts/cluster/reference-cni.sh).
if [[ -f $RUN/reference-cni.guard || -f $RUN/reference-cni.iptables.before ]]; then
  bash "$CLUSTER_SCRIPTS/reference-cni.sh" down
fi

# 1. kubelet first, so it does not restart what is being removed.
stop_proc kubelet

# 2. Every container and sandbox containerd runs for Kubernetes.
if proc_alive containerd; then
  for t in $(ctr_k8s tasks list -q 2>/dev/null); do
    ctr_k8s tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  for t in $(ctr_k8s tasks list -q 2>/dev/null); do
    for ((i = 0; i < 50; i++)); do
      ctr_k8s tasks delete "$t" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
fi
stop_proc containerd

# 3. Shims outlive containerd by design, and a container outlives a killed
#    shim. Container processes are those in kubelet's kubepods cgroups (which
#    did not exist before up.sh, unless run/kubepods.before says so); shims
#    are those serving our socket.
if [[ -f $RUN/kubepods.checked && ! -f $RUN/kubepods.before ]]; then
  pids=()
  for tree in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $tree ]] || continue
    while IFS= read -r f; do
      mapfile -t -O "${#pids[@]}" pids <"$f"
    done < <(find "$tree" -name cgroup.procs)
  done
  kill_pids "container process" "${pids[@]}"
fi
# A shim removes its socket (/run/containerd/s/<hash>) only when it exits
# cleanly; each bundle's bootstrap.json names it.
shim_sockets=()
for f in "$CLUSTER_DIR"/containerd/state/io.containerd.runtime.v2.task/*/*/bootstrap.json; do
  [[ -f $f ]] || continue
  addr=$(sed -n 's#.*"address":"unix://\(/run/containerd/s/[0-9a-f]*\)".*#\1#p' "$f")
  [[ -n $addr ]] && shim_sockets+=("$addr")
done
shims=()
for d in /proc/[0-9]*; do
  cmd=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null || true)
  if [[ $cmd == *containerd-shim-runc-v2* && $cmd == *"-address $CONTAINERD_SOCK "* ]]; then
    shims+=("${d#/proc/}")
  fi
done
kill_pids shim "${shims[@]}"
for sock in "${shim_sockets[@]}"; do
  [[ -S $sock ]] && rm -f "$sock"
done

# 4. The control plane, newest first.
for p in kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop_proc "$p"
done

# 5. Mounts under build/cluster, deepest first (kubelet's pod volumes, the
#    snapshotter's overlays, sandbox shm and netns files).
if [[ -d $CLUSTER_DIR ]]; then
  for ((round = 0; round < 5; round++)); do
    mapfile -t mounts < <(awk -v d="$CLUSTER_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    ((${#mounts[@]} == 0)) && break
    for m in "${mounts[@]}"; do
      m=$(printf '%b' "$m")
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
fi

# 5b. What podnet's DaemonSet put on the node, when up.sh applied it
#     (run/podnet.owner): the documented uninstall, `podnet cleanup` (pins
#     under /sys/fs/bpf/podnet, the host veths it recorded, the state dir, the
#     API socket), by hand when the checkout has no build; then /run/podnet
#     and the bpffs propagation up.sh changed.
if [[ -f $RUN/podnet.owner ]]; then
  if [[ -f $REPO_ROOT/build/podnet.cjs ]] && command -v node >/dev/null; then
    node "$REPO_ROOT/bin/podnet" cleanup --bpffs "$PODNET_BPFFS" --state-dir "$PODNET_STATE_DIR" \
      --api-socket "$PODNET_RUN_DIR/agent.sock" --cni --cni-conf-dir "$CLUSTER_DIR/cni/net.d" \
      --cni-bin-dir "$CLUSTER_DIR/cni/bin" >>"$LOGS/podnet-cleanup.log" 2>&1 ||
      cluster_log "podnet cleanup: failed, see $LOGS/podnet-cleanup.log; removing by hand"
  fi
  # Only veths this agent recorded: other podnet instances on the machine
  # name theirs the same way.
  for l in $(cat "$PODNET_STATE_DIR"/endpoints/*.json 2>/dev/null | grep -o '"hostIfName":"pn[0-9a-f]\{12\}"' | cut -d'"' -f4); do
    ip link delete "$l" 2>/dev/null || true
  done
  rm -rf "$PODNET_BPFFS" "$PODNET_STATE_DIR" "$PODNET_RUN_DIR"
  rm -f "$RUN/podnet.owner"
fi
if [[ -f $RUN/bpffs.madeshared ]]; then
  mount --make-private /sys/fs/bpf 2>/dev/null || cluster_log "restore /sys/fs/bpf propagation: failed"
  rm -f "$RUN/bpffs.madeshared"
fi
if [[ -f $RUN/bpffs.mounted ]]; then
  umount /sys/fs/bpf 2>/dev/null || cluster_log "unmount /sys/fs/bpf: failed (still in use?)"
  rm -f "$RUN/bpffs.mounted"
fi

# 6. Network: deleting the namespace deletes the veth's peer, and the pair.
#    Only when this checkout made them (run/netns.owner): the names are
#    fixed, and another checkout's cluster must not lose its network.
if [[ -f $RUN/netns.owner ]]; then
  if ip netns list | grep -qw "$CLUSTER_NETNS"; then
    ip netns delete "$CLUSTER_NETNS"
  fi
  ip link delete "$CLUSTER_VETH_NODE" 2>/dev/null || true
  ip route delete blackhole "$CLUSTER_SERVICE_CIDR" 2>/dev/null || true
  ip route delete blackhole "$CLUSTER_POD_CIDR" 2>/dev/null || true
  rm -f "$RUN/netns.owner"
elif ip netns list | grep -qw "$CLUSTER_NETNS"; then
  cluster_log "leave netns $CLUSTER_NETNS: not made from this checkout ($CLUSTER_DIR)"
fi

# 7. kubelet's cgroups (cgroupfs driver, cgroup v1: one tree per controller).
for tree in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [[ -d $tree && -f $RUN/kubepods.checked && ! -f $RUN/kubepods.before ]] || continue
  find "$tree" -depth -type d -exec rmdir {} + 2>/dev/null || true
  [[ -d $tree ]] && cluster_log "remove cgroup $tree: still busy"
done

# 8. iptables chains kubelet makes: KUBE-FIREWALL (with jumps from INPUT
#    and OUTPUT), KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT. Only those that
#    did not exist before up.sh (run/iptables.before) are removed.
for ipt in iptables ip6tables; do
  [[ -f $RUN/iptables.before ]] || break
  command -v $ipt >/dev/null || continue
  for table in filter nat mangle; do
    for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
      grep -qx "$ipt $table $chain" "$RUN/iptables.before" 2>/dev/null && continue
      $ipt -w -t $table -S $chain >/dev/null 2>&1 || continue
      for builtin in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
        while $ipt -w -t $table -D $builtin -j $chain 2>/dev/null; do :; done
      done
      $ipt -w -t $table -F $chain 2>/dev/null || true
      $ipt -w -t $table -X $chain 2>/dev/null || cluster_log "remove $ipt -t $table chain $chain: still referenced"
    done
  done
done

# 9. kubelet's compatibility links in /var/log/containers to our pod logs.
if [[ -d /var/log/containers ]]; then
  for l in /var/log/containers/*; do
    [[ -L $l && $(readlink "$l") == "$CLUSTER_DIR"/* ]] && rm -f "$l"
  done
fi

# 10. The sysctls kubelet set, as they were before.
if [[ -f $RUN/sysctl.saved ]]; then
  while IFS= read -r kv; do
    sysctl -q -w "$kv" >/dev/null || cluster_log "restore sysctl $kv: failed"
  done <"$RUN/sysctl.saved"
fi

# 11. Everything else under build/cluster; logs stay for a post-mortem.
if [[ -d $CLUSTER_DIR ]]; then
  if [[ -n $(awk -v d="$CLUSTER_DIR/" 'index($5, d) == 1' /proc/self/mountinfo) ]]; then
    cluster_die "remove $CLUSTER_DIR: mounts remain (see /proc/self/mountinfo)"
  fi
  find "$CLUSTER_DIR" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
fi
