#!/usr/bin/env bash
# Build the images the upstream e2e network tests run, as OCI archives that
# `ctr images import` takes, under the names the e2e framework of
# KUBERNETES_VERSION asks for (test/utils/image/manifest.go, checked here):
#   agnhost  the e2e server binary built by e2e.sh, with a shell and the
#            clients the tests exec in it (dash, busybox applets, curl and
#            OpenBSD nc from Debian with the libraries they load), like
#            upstream's Alpine-based image
#   busybox  Debian's busybox-static (scripts/busybox-image.sh)
#   pause    scripts/harness/pause.c (the pause component)
# Usage: scripts/harness/e2e-images.sh OUTDIR
#   writes OUTDIR/e2e-agnhost.tar, e2e-busybox.tar, e2e-pause.tar
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || harness_die "usage: $0 OUTDIR"
out=$(mkdir -p "$1" && cd "$1" && pwd)
root=$(cd "$HARNESS_DIR/../.." && pwd)

"$root/scripts/ensure-debs.sh" busybox-static curl netcat-openbsd coreutils tar
bash "$HARNESS_DIR/build.sh" --quiet e2e pause
e2e_bin=$(harness_component_dir e2e "$KUBERNETES_VERSION")/bin
pause_bin=$(harness_component_dir pause "$PAUSE_VERSION")/bin
k8s_src=$(cd "$(harness_component_dir e2e "$KUBERNETES_VERSION")/module" && go list -m -f '{{.Dir}}' k8s.io/kubernetes) ||
  harness_die "find the k8s.io/kubernetes@$KUBERNETES_VERSION sources: go list failed"

# The names must be those the framework uses, or kubelet would try to pull.
manifest=$k8s_src/test/utils/image/manifest.go
want() { # want IMAGE_VAR CONFIG_NAME REGISTRY
  local image=${!1} ref
  ref=$(sed -n "s/^\tconfigs\[$2\] = Config{list\.[A-Za-z0-9]*, \"\([^\"]*\)\", \"\([^\"]*\)\"}$/\1:\2/p" "$manifest")
  [[ -n $ref ]] || harness_die "read $manifest: no configs[$2] line"
  [[ $image == "$3/$ref" ]] || harness_die "check $1: versions.env has $image, the e2e framework of $KUBERNETES_VERSION uses $3/$ref"
}
want E2E_AGNHOST_IMAGE Agnhost registry.k8s.io/e2e-test-images
want E2E_BUSYBOX_IMAGE BusyBox registry.k8s.io/e2e-test-images
want E2E_PAUSE_IMAGE Pause registry.k8s.io

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# copy_with_libs ROOTFS BIN NAME: BIN as ROOTFS/usr/bin/NAME, with every
# shared library ldd names at its own path (and the dynamic loader).
copy_with_libs() {
  local rootfs=$1 bin=$2 name=$3 lib
  install -D -m 0755 "$bin" "$rootfs/usr/bin/$name"
  while read -r lib; do
    [[ -e $rootfs$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)
}

# agnhost: the layout of upstream's test/images/agnhost/Dockerfile.
r=$work/agnhost
mkdir -p "$r"/{bin,etc,tmp,uploads,root,proc,sys,dev,run}
chmod 1777 "$r/tmp"
install -m 0755 "$e2e_bin/agnhost" "$r/agnhost"
ln -s agnhost "$r/agnhost-2"
install -m 0644 "$k8s_src/test/images/agnhost/porter/localhost.crt" "$r/localhost.crt"
install -m 0644 "$k8s_src/test/images/agnhost/porter/localhost.key" "$r/localhost.key"
# The shell is dash: Debian's busybox runs its own applets before PATH
# (FEATURE_SH_STANDALONE), so its sh would run busybox nc instead of
# OpenBSD's, which the tests' flags (-v -t -u) are written for.
copy_with_libs "$r" /bin/dash dash
ln -s ../usr/bin/dash "$r/bin/sh"
install -m 0755 /bin/busybox "$r/bin/busybox"
# Every other applet, as Alpine's busybox provides them upstream (the tests
# run dd, sleep, nslookup, wget...), except the shell and nc.
for a in $(/bin/busybox --list); do
  case $a in sh | ash | nc | busybox) continue ;; esac
  ln -s busybox "$r/bin/$a"
done
copy_with_libs "$r" /usr/bin/curl curl
copy_with_libs "$r" /bin/nc.openbsd nc
printf 'root:x:0:0:root:/root:/bin/sh\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >"$r/etc/group"
printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$r/etc/hosts"
bash "$root/scripts/cluster/oci-image.sh" "$out/e2e-agnhost.tar" "$E2E_AGNHOST_IMAGE" "$r" '["/agnhost"]' \
  '"Cmd":["pause"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'

bash "$root/scripts/busybox-image.sh" "$out/e2e-busybox.tar" "$E2E_BUSYBOX_IMAGE" 2>/dev/null

r=$work/pause
mkdir -p "$r"
install -m 0755 "$pause_bin/pause" "$r/pause"
bash "$root/scripts/cluster/oci-image.sh" "$out/e2e-pause.tar" "$E2E_PAUSE_IMAGE" "$r" '["/pause"]'
