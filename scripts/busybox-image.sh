#!/usr/bin/env bash
# Builds a single-layer OCI image archive from Debian's busybox-static.
# Usage: scripts/busybox-image.sh OUT.tar [NAME]   (NAME: podnet.local/busybox:test)
#
# No registry is reachable from the test machines, so the image is put
# together by hand: a rootfs layer (busybox plus applet links), the image
# config, a manifest, index.json and oci-layout, every blob addressed by its
# sha256 digest. `ctr images import OUT.tar` takes it as is. The archive is
# reproducible: same busybox, same bytes.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 OUT.tar [NAME]" >&2
  exit 2
fi
out=$1
name=${2:-podnet.local/busybox:test}
case "$out" in
  /*) ;;
  *) out="$PWD/$out" ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/ensure-debs.sh" busybox-static coreutils tar

busybox=/bin/busybox
if ! dpkg -L busybox-static | grep -qx "$busybox"; then
  echo "busybox-image: $busybox does not come from busybox-static" >&2
  exit 1
fi

# The applets the tests and benchmarks call; busybox picks the applet from argv[0].
applets=(sh ash cat echo env false true hostname ifconfig ip ping route nc wget
  httpd sleep ls ps kill mkdir rm grep sed awk head tail tr wc id uname date
  printf test '[' seq cut sort netstat arp)

case $(dpkg --print-architecture) in
  amd64) arch=amd64 variant= ;;
  arm64) arch=arm64 variant=v8 ;;
  armhf) arch=arm variant=v7 ;;
  i386) arch=386 variant= ;;
  ppc64el) arch=ppc64le variant= ;;
  s390x) arch=s390x variant= ;;
  riscv64) arch=riscv64 variant= ;;
  *) echo "busybox-image: unsupported architecture $(dpkg --print-architecture)" >&2; exit 1 ;;
esac
platform="\"architecture\":\"$arch\",\"os\":\"linux\""
if [[ -n $variant ]]; then
  platform="$platform,\"variant\":\"$variant\""
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
layout="$work/layout"
blobs="$layout/blobs/sha256"
mkdir -p "$rootfs" "$blobs"

mkdir -p "$rootfs"/{bin,dev,etc,proc,root,run,sys,tmp,var/www}
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
install -m 0755 "$busybox" "$rootfs/bin/busybox"
for applet in "${applets[@]}"; do
  ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$rootfs/etc/hosts"
printf 'podnet busybox test image\n' >"$rootfs/var/www/index.html"

# Fixed order, owners and times make the layer digest depend on content only.
deterministic_tar() {
  tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime=@0 -C "$1" -cf "$2" .
}

# blob FILE -> prints "DIGEST SIZE" after moving FILE into the blob store.
blob() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$blobs/$digest"
  echo "$digest $size"
}

deterministic_tar "$rootfs" "$work/layer.tar"
read -r layer_digest layer_size < <(blob "$work/layer.tar")

# The layer is uncompressed, so its diff_id equals its digest.
printf '{"created":"1970-01-01T00:00:00Z",%s,"config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/busybox-image.sh"}]}' \
  "$platform" "$layer_digest" >"$work/config.json"
read -r config_digest config_size < <(blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")

# containerd names the image from io.containerd.image.name; the OCI ref
# name annotation carries the tag for other tools.
tag=${name##*:}
if [[ $tag == "$name" || $tag == */* ]]; then
  tag=latest
fi
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{%s},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$platform" "$name" "$tag" >"$layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.busybox-image.XXXXXX")
deterministic_tar "$layout" "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
echo "busybox-image: wrote $out ($name, manifest sha256:$manifest_digest)" >&2
