#!/usr/bin/env bash
# Builds the podnet agent image as an OCI image archive, without a container
# engine, from Debian and npm packages.
# Usage: scripts/image/build-agent-image.sh OUT.tar [NAME]
#   NAME defaults to podnet.local/podnet-agent:<version from package.json>.
# Needs root (debootstrap) and a checkout after `make build` (`make image`
# does both).
#
# Two layers, like deploy/Dockerfile (which builds the same image with Docker):
#   1. base: Debian 12 minbase plus scripts/image/packages.txt, made with
#      debootstrap and cached outside the checkout under
#      ${PODNET_IMAGE_CACHE:-${XDG_CACHE_HOME:-/var/cache}/podnet/image},
#      keyed by the package list, suite, architecture and mirror;
#   2. podnet: the files scripts/image/stage.sh lays out (node from the
#      installed nodejs package, the agent bundle, production node_modules,
#      bpf/ sources, the CNI entry point and conflist).
# Layers are tarred in name order with fixed times, so the same inputs give
# the same digests. `ctr images import OUT.tar` takes the archive as is.
#
# Environment: PODNET_DEBIAN_MIRROR (default: the first Debian mirror in
# apt's sources), PODNET_IMAGE_CACHE, PODNET_IMAGE_REBUILD=1 to ignore caches.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 OUT.tar [NAME]" >&2
  exit 2
fi
out=$1
case "$out" in
  /*) ;;
  *) out="$PWD/$out" ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { printf 'build-agent-image: %s\n' "$*" >&2; }
fail() { log "$*"; exit 1; }

version=$(node -p "require('$root/package.json').version")
name=${2:-podnet.local/podnet-agent:$version}
suite=bookworm

[[ $(id -u) -eq 0 ]] || fail "needs root (debootstrap makes a Debian root filesystem)"
"$root/scripts/ensure-debs.sh" debootstrap tar coreutils

case $(dpkg --print-architecture) in
  amd64) arch=amd64 variant= ;;
  arm64) arch=arm64 variant=v8 ;;
  *) fail "unsupported architecture $(dpkg --print-architecture) (amd64 and arm64 are)" ;;
esac
debarch=$(dpkg --print-architecture)
platform="\"architecture\":\"$arch\",\"os\":\"linux\""
if [[ -n $variant ]]; then
  platform="$platform,\"variant\":\"$variant\""
fi

# The mirror apt already uses for the main archive (deb822 or one-line format).
default_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    if [[ -n $uri ]]; then echo "$uri"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f")
    if [[ -n $uri ]]; then echo "$uri"; return; fi
  done
}
mirror=${PODNET_DEBIAN_MIRROR:-$(default_mirror)}
[[ -n $mirror ]] || fail "no Debian mirror in apt's sources; set PODNET_DEBIAN_MIRROR"

for f in build/podnet.mjs package-lock.json; do
  [[ -f $root/$f ]] || fail "missing $root/$f (run make build)"
done

cache=${PODNET_IMAGE_CACHE:-${XDG_CACHE_HOME:-/var/cache}/podnet/image}
mkdir -p "$cache"
packages=$(grep -v -E '^\s*(#|$)' "$here/packages.txt" | sort -u)

work=$(mktemp -d)
cleanup() {
  # debootstrap may leave proc/sys mounted inside a failed rootfs.
  if [[ -d $work/rootfs ]]; then
    awk -v r="$work/rootfs" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Fixed order, numeric owners and times make a layer's digest depend on content only.
deterministic_tar() {
  tar --format=gnu --sort=name --numeric-owner --mtime=@0 -C "$1" -cf "$2" .
}

# blob FILE -> prints "DIGEST SIZE" after moving FILE into the blob store.
blobs=$work/layout/blobs/sha256
mkdir -p "$blobs"
blob() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$blobs/$digest"
  echo "$digest $size"
}

# --- layer 1: the Debian base, cached -------------------------------------
# Bump recipe when the way the base is made changes, so caches are rebuilt.
recipe=1
key=$(printf 'recipe=%s\nsuite=%s\narch=%s\nmirror=%s\n%s\n' "$recipe" "$suite" "$debarch" "$mirror" "$packages" | sha256sum | cut -c1-16)
base=$cache/base-$key.tar
if [[ ${PODNET_IMAGE_REBUILD:-} == 1 || ! -f $base ]]; then
  log "making the Debian base (debootstrap $suite, $(echo "$packages" | wc -l) packages and their dependencies; minutes)"
  rootfs=$work/rootfs
  include=$(echo "$packages" | paste -sd,)
  if ! debootstrap --variant=minbase --arch="$debarch" --include="$include" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    fail "debootstrap $suite from $mirror failed (log above)"
  fi
  # What only the build machine needs, or what differs per build: package
  # caches and lists, logs, docs (copyright files stay), the host's DNS.
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
    "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/dev/* \
    "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname "$rootfs"/debootstrap
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  : >"$rootfs/etc/machine-id"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$rootfs/etc/hosts"
  chroot "$rootfs" dpkg-query -W -f='${Package} ${Version}\n' >"$work/base.packages"
  deterministic_tar "$rootfs" "$work/base.tar"
  mv "$work/base.packages" "$cache/base-$key.packages"
  mv -f "$work/base.tar" "$base"
  log "cached the Debian base in $base"
else
  log "Debian base from cache: $base"
fi
cp "$base" "$work/base.tar"
read -r base_digest base_size < <(blob "$work/base.tar")

# --- layer 2: podnet -------------------------------------------------------
# Production dependencies, cached by the lock file. Install scripts stay off:
# koffi's native module comes prebuilt in its platform package, and the
# optional ffi-napi packages (benchmarks only) are not shipped.
lock=$(sha256sum "$root/package-lock.json" | cut -c1-16)
modules=$cache/npm-$lock/node_modules
if [[ ${PODNET_IMAGE_REBUILD:-} == 1 || ! -d $modules ]]; then
  log "installing production npm dependencies (npm ci --omit=dev)"
  npmdir=$work/npm
  mkdir -p "$npmdir"
  cp "$root/package.json" "$root/package-lock.json" "$npmdir/"
  (cd "$npmdir" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  rm -rf "$npmdir/node_modules/@2060.io" "$npmdir/node_modules/.package-lock.json"
  (cd "$npmdir" && node --input-type=module -e "import k from 'koffi'; k.load('libc.so.6');") ||
    fail "the production node_modules cannot load koffi's native module"
  rm -rf "$cache/npm-$lock"
  mkdir -p "$cache/npm-$lock"
  mv "$npmdir/node_modules" "$modules"
fi

nodebin=$(dpkg -L nodejs 2>/dev/null | grep -x '/usr/bin/node' || true)
[[ -n $nodebin ]] || fail "no /usr/bin/node from the nodejs package (install nodejs >= 20)"
podnet=$work/podnet
bash "$here/stage.sh" --src "$root" --modules "$modules" --node "$nodebin" "$podnet"
# Which Debian packages the base holds, for whoever audits the image.
install -m 0644 "$cache/base-$key.packages" "$podnet/usr/lib/podnet/debian-packages.txt"
deterministic_tar "$podnet" "$work/podnet.tar"
read -r podnet_digest podnet_size < <(blob "$work/podnet.tar")

# --- config, manifest, index -----------------------------------------------
# Entrypoint and Cmd are those of deploy/Dockerfile (a unit test compares them).
entrypoint='["/usr/local/bin/podnet"]'
cmd='["agent"]'
env='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
printf '{"created":"1970-01-01T00:00:00Z",%s,"config":{"Env":%s,"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"podnet-agent","org.opencontainers.image.version":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"debootstrap --variant=minbase %s + scripts/image/packages.txt"},{"created":"1970-01-01T00:00:00Z","created_by":"scripts/image/stage.sh"}]}' \
  "$platform" "$env" "$entrypoint" "$cmd" "$version" "$base_digest" "$podnet_digest" "$suite" >"$work/config.json"
read -r config_digest config_size < <(blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config_digest" "$config_size" "$base_digest" "$base_size" "$podnet_digest" "$podnet_size" >"$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")

tag=${name##*:}
if [[ $tag == "$name" || $tag == */* ]]; then
  tag=latest
fi
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{%s},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$platform" "$name" "$tag" >"$work/layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"

mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.agent-image.XXXXXX")
tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/layout" -cf "$tmp" .
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
log "wrote $out ($name, manifest sha256:$manifest_digest, $((($(stat -c %s "$out") + 524288) / 1048576)) MiB)"
