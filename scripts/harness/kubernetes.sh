#!/usr/bin/env bash
# Build the Kubernetes binaries the harness needs from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
# and kube-proxy (the peer for the Services benchmarks; never started by
# make cluster).
#
# k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them to
# ./staging with replace lines that only apply when it is the main module. A
# wrapper module generated in the cache requires k8s.io/kubernetes at the tag
# and replaces every staging module with its published v0.<minor>.<patch>,
# the list computed from the tag's own go.mod.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=$KUBERNETES_VERSION
dir=$(harness_component_dir kubernetes "$version")
# Bump when the way the binaries are built changes, so caches rebuild.
recipe="kubernetes $version recipe 1"
static=(kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy)
cgo=(kubelet)

harness_start "$dir" "$recipe" kubernetes "$version"
mkdir -p "$dir/bin" "$dir/module"

harness_kubernetes_module "$dir/module" "$version" kubernetes

ldflags="$HARNESS_LDFLAGS$stamp"

cd "$dir/module"
pkgs=()
for b in "${static[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
CGO_ENABLED=0 harness_run "$log" go build -ldflags "$ldflags" -o "$dir/bin/" "${pkgs[@]}"
pkgs=()
for b in "${cgo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
CGO_ENABLED=1 harness_run "$log" go build -ldflags "$ldflags" -o "$dir/bin/" "${pkgs[@]}"

harness_mark_built "$dir" "$recipe"
harness_timed kubernetes "$version" $((SECONDS - start))
