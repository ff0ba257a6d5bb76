#!/usr/bin/env bash
# Start one stopped component of the running cluster again, with the command
# line up.sh started it with (run/NAME.cmd), and wait until it serves.
# Usage: scripts/cluster/start.sh NAME
#   NAME: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#   containerd or kubelet.
# For tests that stop a component by its recorded PID (run/NAME.pid) and
# check what survives; a component that still runs is left alone.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || cluster_die "start component: needs root"
[[ $# -eq 1 ]] || cluster_die "usage: $0 NAME"
name=$1
[[ -f $RUN/$name.cmd ]] || cluster_die "start $name: no recorded command line in $RUN/$name.cmd (is the cluster up?)"
if proc_alive "$name"; then
  cluster_log "start $name: already running (pid $(cut -d' ' -f1 "$RUN/$name.pid"))"
  exit 0
fi
mapfile -d '' -t cmd <"$RUN/$name.cmd"
start_proc "$name" "${cmd[@]}"

case $name in
  kube-apiserver)
    wait_for 180 "$name" kubectl_admin get --raw /readyz ||
      cluster_die "start kube-apiserver: not ready after 180 s, see $LOGS/kube-apiserver.log" ;;
  containerd)
    wait_for 60 "$name" ctr_k8s version || cluster_die "start containerd: no answer after 60 s, see $LOGS/containerd.log" ;;
  kubelet)
    wait_for 60 "$name" curl -sf http://127.0.0.1:10248/healthz ||
      cluster_die "start kubelet: not healthy after 60 s, see $LOGS/kubelet.log" ;;
esac
cluster_log "started $name (pid $(cut -d' ' -f1 "$RUN/$name.pid"))"
