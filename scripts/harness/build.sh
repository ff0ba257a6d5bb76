#!/usr/bin/env bash
# Build every harness component that is missing from the cache and print
# where each binary is. A component that gets built says so on stderr.
# Usage: scripts/harness/build.sh [--quiet] [component...]
#   components: kubernetes etcd containerd cni-plugins cnidriver pause
#   (the default set), coredns, prometheus and e2e (only when named). --quiet prints
#   nothing on success.
# The cache is $PODNET_HARNESS_CACHE, else $XDG_CACHE_HOME/podnet/harness,
# else /var/cache/podnet/harness; build logs are in its logs/ folder.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
. "$here/lib.sh"

all=(pause etcd containerd cni-plugins cnidriver kubernetes)
quiet=false
if [[ ${1:-} == --quiet ]]; then
  quiet=true
  shift
fi
if (($# == 0)); then
  set -- "${all[@]}"
fi

version_of() {
  case $1 in
    kubernetes) echo "$KUBERNETES_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    containerd) echo "$CONTAINERD_VERSION" ;;
    cni-plugins) echo "$CNI_PLUGINS_VERSION" ;;
    cnidriver) echo "$LIBCNI_VERSION" ;;
    pause) echo "$PAUSE_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    prometheus) echo "$PROMETHEUS_VERSION" ;;
    e2e) echo "$KUBERNETES_VERSION" ;;
    *) harness_die "build $1: unknown component (known: ${all[*]} coredns prometheus e2e)" ;;
  esac
}

for c in "$@"; do
  version_of "$c" >/dev/null
done
for c in "$@"; do
  dir=$(harness_component_dir "$c" "$(version_of "$c")")
  bash "$here/$c.sh"
  $quiet || harness_print_bins "$dir"
done
