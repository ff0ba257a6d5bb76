#!/usr/bin/env bash
# The reference column of docs/conformance.md: the same conformance set
# with the real kube-proxy as the Service proxy, on the CNI reference
# plugins instead of podnet (scripts/cluster/reference-cni.sh), on a fresh
# cluster that is torn down afterwards (one cluster per machine).
# Usage: scripts/cluster/conformance-reference.sh [iptables|nftables]
#   reports in $CONFORMANCE_REPORT_DIR (default build/conformance-kube-proxy-MODE)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mode=${1:-iptables}
[[ $mode == iptables || $mode == nftables ]] || cluster_die "usage: $0 [iptables|nftables]"
export CONFORMANCE_REPORT_DIR=${CONFORMANCE_REPORT_DIR:-$REPO_ROOT/build/conformance-kube-proxy-$mode}

cleanup() {
  bash "$CLUSTER_SCRIPTS/kube-proxy.sh" stop || true
  bash "$CLUSTER_SCRIPTS/reference-cni.sh" down || true
  bash "$CLUSTER_SCRIPTS/down.sh"
}
bash "$CLUSTER_SCRIPTS/down.sh"
trap cleanup EXIT
PODNET_CLUSTER_DEPLOY=0 bash "$CLUSTER_SCRIPTS/up.sh"
bash "$CLUSTER_SCRIPTS/reference-cni.sh" up
bash "$CLUSTER_SCRIPTS/kube-proxy.sh" start "$mode"
bash "$CLUSTER_SCRIPTS/dns.sh" up
bash "$CLUSTER_SCRIPTS/dns.sh" wait
set +e
bash "$CLUSTER_SCRIPTS/conformance.sh"
rc=$?
set -e
exit "$rc"
