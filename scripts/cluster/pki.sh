#!/usr/bin/env bash
# Make the cluster's certificates and keys with openssl into build/cluster/pki
# and the kubeconfigs into build/cluster/conf (and build/cluster/kubeconfig).
# Keeps what exists: run twice, nothing changes.
#
#   ca            signs every Kubernetes certificate (client CA of the API
#                 server and kubelet; the controller-manager's CSR signer)
#   etcd-ca       signs etcd's serving/peer cert and the API server's etcd client
#   front-proxy-ca signs the API server's client for aggregated APIs
#   apiserver     serving: kubernetes.default.svc..., the Service IP, the link IP
#   apiserver-kubelet-client, apiserver-etcd-client
#   kubelet       serving (the node IP and name); kubelet-client system:node:NAME
#   admin         system:masters; controller-manager, scheduler: their users
#   sa.key/sa.pub the service-account token signing pair
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

days=365
mkdir -p "$PKI" "$CONF"
chmod 0700 "$PKI"

# ca NAME CN
ca() {
  [[ -f $PKI/$1.crt ]] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days $((days * 10)) \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt" 2>/dev/null
}

# cert NAME CA SUBJECT USAGE [SAN]: USAGE is serverAuth, clientAuth or both.
cert() {
  local name=$1 signer=$2 subj=$3 usage=$4 san=${5:-}
  [[ -f $PKI/$name.crt ]] && return 0
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } >"$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$signer.crt" -CAkey "$PKI/$signer.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$ext" "$PKI/$name.csr"
}

ca ca podnet-cluster-ca
ca etcd-ca podnet-etcd-ca
ca front-proxy-ca podnet-front-proxy-ca

svc_dns="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
cert apiserver ca "/CN=kube-apiserver" serverAuth \
  "$svc_dns,DNS:localhost,IP:$CLUSTER_KUBERNETES_SERVICE_IP,IP:$CLUSTER_APISERVER_IP,IP:127.0.0.1"
cert apiserver-kubelet-client ca "/O=podnet:apiserver-kubelet-clients/CN=kube-apiserver-kubelet-client" clientAuth
cert etcd etcd-ca "/CN=etcd" serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
cert apiserver-etcd-client etcd-ca "/CN=kube-apiserver-etcd-client" clientAuth
cert kubelet ca "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$CLUSTER_NODE_IP"
cert kubelet-client ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
cert admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
cert scheduler ca "/CN=system:kube-scheduler" clientAuth

if [[ ! -f $PKI/sa.key ]]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
chmod 0600 "$PKI"/*.key

# kubeconfig FILE USER CERT
kubeconfig() {
  local file=$1 user=$2 cert=$3
  [[ -f $file ]] && return 0
  cat >"$file.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: podnet
  cluster:
    server: https://$CLUSTER_APISERVER_IP:$CLUSTER_APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: $user@podnet
  context:
    cluster: podnet
    user: $user
current-context: $user@podnet
YAML
  chmod 0600 "$file.tmp"
  mv "$file.tmp" "$file"
}

kubeconfig "$KUBECONFIG_ADMIN" admin admin
kubeconfig "$CONF/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
kubeconfig "$CONF/scheduler.kubeconfig" system:kube-scheduler scheduler
kubeconfig "$CONF/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet-client
