#!/bin/sh
# Installs podnet's CNI entry point and conflist from the agent image onto the
# host: the DaemonSet's init container runs it with the host's CNI bin and
# conf dirs mounted (default /host/opt/cni/bin and /host/etc/cni/net.d).
#
# Each file is copied beside its target and renamed over it, so the runtime
# never execs a half-written binary or reads a half-written conflist, and an
# upgrade replaces both in place.
set -eu

src=${PODNET_CNI_SRC:-/usr/lib/podnet/cni}
bin_dir=${CNI_BIN_DIR:-/host/opt/cni/bin}
conf_dir=${CNI_CONF_DIR:-/host/etc/cni/net.d}

tmp=
trap 'if [ -n "$tmp" ]; then rm -f "$tmp"; fi' EXIT

put() { # put SRC DIR NAME MODE
  [ -d "$2" ] || { echo "install-cni: $2 is not a directory (mount the host's CNI dir there)" >&2; exit 1; }
  tmp="$2/.$3.podnet-tmp"
  cp "$1" "$tmp"
  chmod "$4" "$tmp"
  mv -f "$tmp" "$2/$3"
  tmp=
  echo "install-cni: installed $2/$3"
}

put "$src/podnet" "$bin_dir" podnet 0755
put "$src/10-podnet.conflist" "$conf_dir" 10-podnet.conflist 0644
