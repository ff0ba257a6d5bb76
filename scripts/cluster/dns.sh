#!/usr/bin/env bash
# Cluster DNS on the running cluster: CoreDNS (built by
# scripts/harness/build.sh coredns) as the kube-dns Service at
# CLUSTER_DNS_IP, from deploy/addons/coredns.yaml. kubelet already hands
# pods that nameserver and search path (clusterDNS, clusterDomain).
# Usage: scripts/cluster/dns.sh up|wait|down
#   up    build the image when missing, import it, apply the manifest
#   wait  until the Deployment is available (CoreDNS reaches the API server
#         through the kubernetes Service, so this needs a Service datapath)
#   down  delete what up applied
# make cluster runs `up` when PODNET_CLUSTER_DNS=1; down.sh needs nothing
# (the whole cluster goes).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || cluster_die "cluster DNS: needs root"
(($# == 1)) || cluster_die "usage: $0 up|wait|down"
rendered=$CLUSTER_DIR/dns/coredns.yaml

render() {
  mkdir -p "$CLUSTER_DIR/dns"
  sed -e "s#__DNS_IP__#$CLUSTER_DNS_IP#g" -e "s#__DNS_DOMAIN__#$CLUSTER_DOMAIN#g" \
    -e "s#__DNS_IMAGE__#$COREDNS_IMAGE#g" "$REPO_ROOT/deploy/addons/coredns.yaml" >"$rendered"
}

case $1 in
  up)
    [[ -f $KUBECONFIG_ADMIN ]] || cluster_die "cluster DNS up: no cluster ($KUBECONFIG_ADMIN missing; run make cluster)"
    bash "$REPO_ROOT/scripts/harness/build.sh" --quiet coredns
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    install -m 0755 "$(harness_component_dir coredns "$COREDNS_VERSION")/bin/coredns" "$rootfs/coredns"
    mkdir -p "$rootfs/etc" "$rootfs/tmp"
    printf 'root:x:0:0:root:/:/coredns\n' >"$rootfs/etc/passwd"
    bash "$CLUSTER_SCRIPTS/oci-image.sh" "$CLUSTER_DIR/images/coredns.tar" "$COREDNS_IMAGE" "$rootfs" '["/coredns"]'
    ctr_k8s images import "$CLUSTER_DIR/images/coredns.tar" >>"$LOGS/images.log" 2>&1 ||
      cluster_die "import CoreDNS image: failed, see $LOGS/images.log"
    render
    kubectl_admin apply -f "$rendered" >>"$LOGS/dns.log" 2>&1 ||
      cluster_die "apply cluster DNS: kubectl apply -f $rendered failed, see $LOGS/dns.log"
    ;;
  wait)
    kubectl_admin -n kube-system rollout status deployment/coredns --timeout=180s >>"$LOGS/dns.log" 2>&1 ||
      cluster_die "cluster DNS: coredns not available after 180 s, see $LOGS/dns.log and kubectl -n kube-system logs deploy/coredns"
    ;;
  down)
    [[ -f $rendered ]] || render
    kubectl_admin delete --ignore-not-found -f "$rendered" >>"$LOGS/dns.log" 2>&1 ||
      cluster_die "delete cluster DNS: failed, see $LOGS/dns.log"
    ;;
  *) cluster_die "usage: $0 up|wait|down" ;;
esac
