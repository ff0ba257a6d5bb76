#!/usr/bin/env bash
# Pack a root filesystem directory into a single-layer OCI image archive
# that `ctr images import` takes (no registry, no Docker engine).
# Usage: scripts/cluster/oci-image.sh OUT.tar NAME ROOTFS ENTRYPOINT_JSON [CONFIG_JSON]
#   e.g. oci-image.sh pause.tar registry.k8s.io/pause:3.10 rootfs '["/pause"]'
#   CONFIG_JSON: more members of the image config, e.g. '"Cmd":["pause"],"Env":["PATH=/bin"]'
# Same inputs, same bytes: fixed owners, order and times.
set -euo pipefail

if (($# != 4 && $# != 5)); then
  echo "usage: $0 OUT.tar NAME ROOTFS ENTRYPOINT_JSON [CONFIG_JSON]" >&2
  exit 2
fi
out=$1 name=$2 rootfs=$3 entrypoint=$4 extra=${5:+,$5}
[[ -d $rootfs ]] || { echo "oci-image: read $rootfs: not a directory" >&2; exit 1; }

case $(dpkg --print-architecture) in
  amd64) platform='"architecture":"amd64","os":"linux"' ;;
  arm64) platform='"architecture":"arm64","os":"linux","variant":"v8"' ;;
  *) echo "oci-image: unsupported architecture $(dpkg --print-architecture)" >&2; exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
blobs=$work/layout/blobs/sha256
mkdir -p "$blobs"

pack() {
  tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf "$2" .
}
# blob FILE: move FILE into the blob store, print "DIGEST SIZE".
blob() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$blobs/$digest"
  echo "$digest $size"
}

pack "$rootfs" "$work/layer.tar"
read -r layer size_layer < <(blob "$work/layer.tar")
printf '{"created":"1970-01-01T00:00:00Z",%s,"config":{"Entrypoint":%s%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$platform" "$entrypoint" "$extra" "$layer" >"$work/config.json"
read -r config size_config < <(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config" "$size_config" "$layer" "$size_layer" >"$work/manifest.json"
read -r manifest size_manifest < <(blob "$work/manifest.json")
tag=${name##*:}
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{%s},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest" "$size_manifest" "$platform" "$name" "$tag" >"$work/layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"

mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.oci-image.XXXXXX")
pack "$work/layout" "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
