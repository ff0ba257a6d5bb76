#!/usr/bin/env bash
# Start a one-node Kubernetes cluster on this machine (root).
#
# The control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) runs in the network namespace $CLUSTER_NETNS, reached from
# the root namespace through one veth on $CLUSTER_LINK_CIDR; the node is the
# root namespace itself (containerd 2.x with its CRI plugin, kubelet). All
# state is under build/cluster; scripts/cluster/down.sh removes it all.
# Builds what is missing first (scripts/harness/build.sh).
#
# Then it runs podnet: the agent image built from the checkout and
# imported, deploy/ applied with the cluster's knobs (lib.sh, podnet_render),
# and it returns once the Node is Ready and the DaemonSet pod is ready.
# PODNET_CLUSTER_DEPLOY=0 leaves podnet out: the Node registers, gets
# spec.podCIDR from the controller-manager and stays NotReady until a
# network plugin writes a conflist into build/cluster/cni/net.d.
#
# Running it while the cluster is up changes nothing; after a crash (some
# recorded process gone) it tears the rest down and starts again.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || cluster_die "start cluster: needs root"

# PODNET_CLUSTER_DEPLOY=0 starts the cluster without podnet (no network
# plugin: the Node stays NotReady).
PODNET_DEPLOY=${PODNET_CLUSTER_DEPLOY:-1}

control_plane=(etcd kube-apiserver kube-controller-manager kube-scheduler)
node=(containerd kubelet)

summary() {
  local cidr
  cidr=$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
  cat <<INFO
cluster: up ($KUBERNETES_VERSION), node $NODE_NAME podCIDR ${cidr:-<none yet>}
  export KUBECONFIG=$KUBECONFIG_ADMIN
  $CLUSTER_DIR/bin/kubectl get nodes
  logs: $LOGS/
INFO
}

all_alive() {
  local p
  for p in "${control_plane[@]}" "${node[@]}"; do
    proc_alive "$p" || return 1
  done
}

if all_alive && kubectl_admin get --raw /readyz >/dev/null 2>&1; then
  if [[ $PODNET_DEPLOY == 1 ]]; then
    podnet_apply
    podnet_wait
  fi
  summary
  exit 0
fi
if compgen -G "$RUN/*.pid" >/dev/null || [[ -f $RUN/netns.owner ]]; then
  cluster_log "found a partly running cluster: tearing it down first"
  bash "$CLUSTER_SCRIPTS/down.sh"
fi
# The names and ranges are fixed: one cluster per machine.
if ip netns list | grep -qw "$CLUSTER_NETNS"; then
  cluster_die "start cluster: netns $CLUSTER_NETNS exists but was not made from this checkout; stop that cluster first (make cluster-down in its checkout)"
fi

# Unix socket paths hold at most 107 bytes; kubelet's plugin sockets are the
# longest, about 60 bytes below build/cluster.
((${#CLUSTER_DIR} <= 45)) || cluster_die "start cluster: checkout path $CLUSTER_DIR is too long for unix sockets (at most 45 characters)"

"$REPO_ROOT/scripts/ensure-debs.sh" runc openssl iproute2 iptables busybox-static python3
bash "$REPO_ROOT/scripts/harness/build.sh" --quiet pause etcd containerd cni-plugins kubernetes

# Refuse ranges the machine already uses: a clash would route cluster
# traffic somewhere else.
python3 - "$CLUSTER_LINK_CIDR" "$CLUSTER_POD_CIDR" "$CLUSTER_SERVICE_CIDR" <<'PY' || cluster_die "check address ranges: in use on this machine (see above)"
import ipaddress, json, subprocess, sys
ours = [ipaddress.ip_network(c) for c in sys.argv[1:]]
used = []
for a in json.loads(subprocess.check_output(["ip", "-j", "-4", "addr"])):
    for i in a.get("addr_info", []):
        used.append((ipaddress.ip_network(f"{i['local']}/{i['prefixlen']}", strict=False), f"address {i['local']} on {a['ifname']}"))
for r in json.loads(subprocess.check_output(["ip", "-j", "-4", "route", "show", "table", "all"])):
    d = r.get("dst", "")
    if d in ("default", "") or r.get("table") == "local":
        continue
    used.append((ipaddress.ip_network(d if "/" in d else d + "/32", strict=False), f"route {d} dev {r.get('dev', r.get('type', '?'))}"))
bad = [(o, what) for o in ours for (n, what) in used if o.overlaps(n) and n.prefixlen > 0]
for o, what in bad:
    print(f"cluster: {o} overlaps {what}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# The previous run's logs move aside; each run's logs start empty.
if compgen -G "$LOGS/*.log" >/dev/null; then
  rm -rf "$LOGS/previous"
  mkdir -p "$LOGS/previous"
  mv "$LOGS"/*.log "$LOGS/previous/"
fi
mkdir -p "$CLUSTER_DIR"/{bin,conf,logs,run,images,etcd,pod-logs,cni/bin,cni/net.d,containerd,kubelet}
chmod 0700 "$CLUSTER_DIR/etcd"
# podnet's agent image from this checkout (cached Debian base; seconds when warm).
if [[ $PODNET_DEPLOY == 1 ]]; then
  make -C "$REPO_ROOT" --no-print-directory image >"$LOGS/podnet-image.log" 2>&1 ||
    cluster_die "build podnet image: failed, see $LOGS/podnet-image.log"
fi
install -m 0755 "$K8S_BIN/kubectl" "$CLUSTER_DIR/bin/kubectl"
bash "$CLUSTER_SCRIPTS/pki.sh"
# The node's own plugins (containerd's CRI runs loopback in every sandbox);
# a network plugin adds its binary and conflist beside them.
install -m 0755 "$CNI_PLUGINS_BIN"/* "$CLUSTER_DIR/cni/bin/"

if [[ ! -f $RUN/sysctl.saved ]]; then
  for s in "${KUBELET_SYSCTLS[@]}"; do
    echo "$s=$(sysctl -n "$s")"
  done >"$RUN/sysctl.saved"
fi

# A kubepods cgroup tree that exists already is not ours: down.sh then
# leaves the processes in it alone.
if [[ ! -f $RUN/kubepods.checked ]]; then
  if compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null || [[ -d /sys/fs/cgroup/kubepods ]]; then
    touch "$RUN/kubepods.before"
  fi
  touch "$RUN/kubepods.checked"
fi

# kubelet's iptables chains that exist already are not down.sh's to remove.
if [[ ! -f $RUN/iptables.before ]]; then
  for ipt in iptables ip6tables; do
    command -v $ipt >/dev/null || continue
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        if $ipt -w -t $table -S $chain >/dev/null 2>&1; then echo "$ipt $table $chain"; fi
      done
    done
  done >"$RUN/iptables.before"
fi

# --- network: the control plane's namespace and its link -----------------
touch "$RUN/netns.owner"
ip netns add "$CLUSTER_NETNS"
ip link add "$CLUSTER_VETH_NODE" type veth peer name "$CLUSTER_VETH_CP" netns "$CLUSTER_NETNS"
ip addr add "$CLUSTER_NODE_IP/$CLUSTER_LINK_PREFIX" dev "$CLUSTER_VETH_NODE"
ip link set "$CLUSTER_VETH_NODE" up
ip -n "$CLUSTER_NETNS" link set lo up
ip -n "$CLUSTER_NETNS" addr add "$CLUSTER_APISERVER_IP/$CLUSTER_LINK_PREFIX" dev "$CLUSTER_VETH_CP"
ip -n "$CLUSTER_NETNS" link set "$CLUSTER_VETH_CP" up
# Replies to pods go back through the node; there is no default route, so
# nothing in the control plane can reach beyond this machine.
ip -n "$CLUSTER_NETNS" route add "$CLUSTER_POD_CIDR" via "$CLUSTER_NODE_IP"
# Guard: without a datapath, packets to Service or unassigned pod addresses
# would follow the default route off the machine. More specific routes (a
# network plugin's) win over these.
ip route add blackhole "$CLUSTER_SERVICE_CIDR"
ip route add blackhole "$CLUSTER_POD_CIDR"

# --- control plane ----------------------------------------------------------
start_proc etcd "$CLUSTER_NETNS" "$ETCD_BIN/etcd" \
  --name=podnet-cp --data-dir="$CLUSTER_DIR/etcd" \
  --listen-client-urls=https://127.0.0.1:2379 --advertise-client-urls=https://127.0.0.1:2379 \
  --listen-peer-urls=https://127.0.0.1:2380 --initial-advertise-peer-urls=https://127.0.0.1:2380 \
  --initial-cluster=podnet-cp=https://127.0.0.1:2380 --initial-cluster-state=new \
  --cert-file="$PKI/etcd.crt" --key-file="$PKI/etcd.key" \
  --client-cert-auth --trusted-ca-file="$PKI/etcd-ca.crt" \
  --peer-cert-file="$PKI/etcd.crt" --peer-key-file="$PKI/etcd.key" \
  --peer-client-cert-auth --peer-trusted-ca-file="$PKI/etcd-ca.crt" \
  --log-outputs=stderr
etcd_healthy() {
  ip netns exec "$CLUSTER_NETNS" "$ETCD_BIN/etcdctl" --endpoints=https://127.0.0.1:2379 \
    --cacert="$PKI/etcd-ca.crt" --cert="$PKI/apiserver-etcd-client.crt" --key="$PKI/apiserver-etcd-client.key" \
    endpoint health
}
wait_for 60 etcd etcd_healthy || cluster_die "start etcd: not healthy after 60 s, see $LOGS/etcd.log"

start_proc kube-apiserver "$CLUSTER_NETNS" "$K8S_BIN/kube-apiserver" \
  --advertise-address="$CLUSTER_APISERVER_IP" --bind-address=0.0.0.0 --secure-port="$CLUSTER_APISERVER_PORT" \
  --etcd-servers=https://127.0.0.1:2379 --etcd-cafile="$PKI/etcd-ca.crt" \
  --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" --anonymous-auth=false \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$CLUSTER_SERVICE_CIDR" \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --profiling=false --v=1
wait_for 180 kube-apiserver kubectl_admin get --raw /readyz ||
  cluster_die "start kube-apiserver: not ready after 180 s, see $LOGS/kube-apiserver.log"

# The API server's kubelet client may use the kubelet API (exec, logs,
# port-forward), as kubeadm and local-up-cluster grant it.
kubectl_admin apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: podnet:apiserver-kubelet-client
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:kubelet-api-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}
YAML

start_proc kube-controller-manager "$CLUSTER_NETNS" "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$CONF/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CONF/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CONF/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --allocate-node-cidrs --cluster-cidr="$CLUSTER_POD_CIDR" --node-cidr-mask-size="$CLUSTER_NODE_CIDR_MASK" \
  --service-cluster-ip-range="$CLUSTER_SERVICE_CIDR" \
  --use-service-account-credentials --root-ca-file="$PKI/ca.crt" \
  --service-account-private-key-file="$PKI/sa.key" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" --v=1
start_proc kube-scheduler "$CLUSTER_NETNS" "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$CONF/scheduler.kubeconfig" \
  --authentication-kubeconfig="$CONF/scheduler.kubeconfig" \
  --authorization-kubeconfig="$CONF/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --v=1

# --- node: containerd ---------------------------------------------------------
cat >"$CONF/containerd.toml" <<TOML
# Generated by scripts/cluster/up.sh.
version = 3
root = "$CLUSTER_DIR/containerd/root"
state = "$CLUSTER_DIR/containerd/state"

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$CLUSTER_DIR/containerd/opt"
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "$PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.runtime']
    netns_mounts_under_state_dir = true
    # This machine's root lacks CAP_SYS_RESOURCE (not in the bounding set),
    # so no process may lower its oom_score_adj: the pause container's
    # -998 made runc fail with "can't get final child's PID from pipe: EOF".
    # Clamp every container's score to containerd's own instead.
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$(command -v runc)"
          Root = "$CLUSTER_DIR/containerd/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["$CLUSTER_DIR/cni/bin"]
      conf_dir = "$CLUSTER_DIR/cni/net.d"
TOML
# The shim is found through PATH: ours before Debian's (containerd 1.6's).
start_proc containerd - env PATH="$CONTAINERD_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  "$CONTAINERD_BIN/containerd" --config "$CONF/containerd.toml"
wait_for 60 containerd ctr_k8s version || cluster_die "start containerd: no answer after 60 s, see $LOGS/containerd.log"

# --- images: built here, never pulled ------------------------------------------
rootfs=$(mktemp -d)
install -m 0755 "$PAUSE_BIN/pause" "$rootfs/pause"
bash "$CLUSTER_SCRIPTS/oci-image.sh" "$CLUSTER_DIR/images/pause.tar" "$PAUSE_IMAGE" "$rootfs" '["/pause"]'
rm -rf "$rootfs"
bash "$REPO_ROOT/scripts/busybox-image.sh" "$CLUSTER_DIR/images/busybox.tar" "$BUSYBOX_IMAGE" 2>/dev/null
for img in pause busybox; do
  ctr_k8s images import "$CLUSTER_DIR/images/$img.tar" >>"$LOGS/images.log" 2>&1 ||
    cluster_die "import $img image: failed, see $LOGS/images.log"
done
if [[ $PODNET_DEPLOY == 1 ]]; then
  ctr_k8s images import "$PODNET_IMAGE_TAR" >>"$LOGS/images.log" 2>&1 ||
    cluster_die "import podnet image $PODNET_IMAGE_TAR: failed, see $LOGS/images.log"
fi

# Mount propagation as a systemd host has it. The DaemonSet mounts bpffs
# Bidirectional (mount-bpffs) and HostToContainer (agent), which containerd
# accepts only from a shared mount; without systemd every mount here is
# private. The sandbox netns directory becomes a shared mount of its own so
# the netns files containerd makes after the agent started reach it.
if [[ $PODNET_DEPLOY == 1 ]]; then
  podnet_share_mounts
fi

# --- node: kubelet ------------------------------------------------------------
cat >"$CONF/kubelet.yaml" <<YAML
# Generated by scripts/cluster/up.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $CLUSTER_NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
rotateCertificates: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failSwapOn: false
# Never collect images: every image is imported by hand and cannot be pulled again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# A shared test machine's disk fills with other work: evict only when nearly full.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: /etc/resolv.conf
podLogsDir: $CLUSTER_DIR/pod-logs
registerNode: true
YAML
start_proc kubelet - env PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  "$K8S_BIN/kubelet" --config="$CONF/kubelet.yaml" --kubeconfig="$CONF/kubelet.kubeconfig" \
  --root-dir="$CLUSTER_DIR/kubelet" --node-ip="$CLUSTER_NODE_IP" --hostname-override="$NODE_NAME" --v=1

node_has_cidr() {
  [[ -n $(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}') ]]
}
wait_for 120 node kubectl_admin get node "$NODE_NAME" ||
  cluster_die "register node $NODE_NAME: not registered after 120 s, see $LOGS/kubelet.log"
wait_for 60 podcidr node_has_cidr ||
  cluster_die "allocate podCIDR for $NODE_NAME: none after 60 s, see $LOGS/kube-controller-manager.log"

# --- podnet: deploy/ with the cluster's two knobs -------------------------------
if [[ $PODNET_DEPLOY == 1 ]]; then
  podnet_apply
  podnet_wait
fi
# Cluster DNS on request (PODNET_CLUSTER_DNS=1): CoreDNS behind kube-dns.
if [[ ${PODNET_CLUSTER_DNS:-0} == 1 ]]; then
  bash "$CLUSTER_SCRIPTS/dns.sh" up
fi
summary
