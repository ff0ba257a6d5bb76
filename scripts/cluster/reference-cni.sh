#!/usr/bin/env bash
# The reference network for the conformance run's reference column: on a
# cluster started without podnet (PODNET_CLUSTER_DEPLOY=0), the CNI
# reference plugins ptp (a routed veth per pod, so every packet between
# pods crosses the node's IP stack, where kube-proxy's rules are) with
# host-local IPAM over the Node's podCIDR, and portmap for hostPort.
# Usage: scripts/cluster/reference-cni.sh up|down
#   up    write the conflist into containerd's CNI conf dir (the Node turns Ready)
#   down  remove it and portmap's top-level iptables chains; the pods'
#         veths go with their sandboxes (make cluster-down)
#
# The Service range's guard changes for the reference run: up.sh's
# blackhole route drops a packet in the routing decision, before the
# filter table's FORWARD and OUTPUT chains where kube-proxy rejects
# connections to Services without endpoints. A route to a dummy device
# (which discards whatever it is given) drops untranslated packets as
# surely, after those chains. `down` puts the blackhole route back.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || cluster_die "reference CNI: needs root"
conflist=$CLUSTER_DIR/cni/net.d/10-reference.conflist
chains=(CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ)
guard=pn-svc-guard

case ${1:-} in
  up)
    [[ ! -f $RUN/podnet.owner ]] || cluster_die "reference CNI: podnet runs on this cluster; start it with PODNET_CLUSTER_DEPLOY=0"
    cidr=$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}')
    [[ -n $cidr ]] || cluster_die "reference CNI: node $NODE_NAME has no podCIDR yet"
    if [[ ! -f $RUN/reference-cni.iptables.before ]]; then
      for c in "${chains[@]}"; do
        if iptables -w -t nat -S "$c" >/dev/null 2>&1; then echo "$c"; fi
      done >"$RUN/reference-cni.iptables.before"
      echo "net.ipv4.ip_forward=$(sysctl -n net.ipv4.ip_forward)" >"$RUN/reference-cni.sysctl.saved"
    fi
    mkdir -p "$CLUSTER_DIR/cni/ipam"
    cat >"$conflist.tmp" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "reference",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{"subnet": "$cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
    mv -f "$conflist.tmp" "$conflist"
    if [[ ! -f $RUN/reference-cni.guard ]]; then
      touch "$RUN/reference-cni.guard"
      ip link add "$guard" type dummy
      ip link set "$guard" up
      ip route replace "$CLUSTER_SERVICE_CIDR" dev "$guard"
    fi
    kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null ||
      cluster_die "reference CNI: node $NODE_NAME not Ready 120 s after the conflist was written, see $LOGS/kubelet.log"
    ;;
  down)
    rm -f "$conflist"
    if [[ -f $RUN/reference-cni.guard ]]; then
      [[ -f $RUN/netns.owner ]] && ip route replace blackhole "$CLUSTER_SERVICE_CIDR"
      ip link delete "$guard" 2>/dev/null || true
      rm -f "$RUN/reference-cni.guard"
    fi
    if [[ -f $RUN/reference-cni.iptables.before ]]; then
      for c in "${chains[@]}"; do
        grep -qx "$c" "$RUN/reference-cni.iptables.before" && continue
        iptables -w -t nat -S "$c" >/dev/null 2>&1 || continue
        for builtin in PREROUTING OUTPUT POSTROUTING; do
          while iptables -w -t nat -D "$builtin" -j "$c" 2>/dev/null; do :; done
          while iptables -w -t nat -D "$builtin" -m addrtype --dst-type LOCAL -j "$c" 2>/dev/null; do :; done
        done
        iptables -w -t nat -F "$c" 2>/dev/null || true
      done
      for c in "${chains[@]}"; do
        grep -qx "$c" "$RUN/reference-cni.iptables.before" && continue
        iptables -w -t nat -X "$c" 2>/dev/null || true
      done
      rm -f "$RUN/reference-cni.iptables.before"
    fi
    if [[ -f $RUN/reference-cni.sysctl.saved ]]; then
      sysctl -q -w "$(cat "$RUN/reference-cni.sysctl.saved")" >/dev/null || cluster_log "restore sysctl: failed"
      rm -f "$RUN/reference-cni.sysctl.saved"
    fi
    ;;
  *) cluster_die "usage: $0 up|down" ;;
esac
