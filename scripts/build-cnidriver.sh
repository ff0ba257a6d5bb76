#!/usr/bin/env bash
# Builds test/e2e/tools/cnidriver against Debian's libcni, fully offline.
# Usage: scripts/build-cnidriver.sh [OUT]   (default: build/cnidriver)
#
# GOPATH mode on purpose: module mode would try to resolve
# github.com/containernetworking/cni through a proxy, while GOPATH mode finds
# the sources golang-github-appc-cni-dev installs under /usr/share/gocode.
# The build is skipped when OUT is newer than every source file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$root/test/e2e/tools/cnidriver"
out=${1:-"$root/build/cnidriver"}
case "$out" in
  /*) ;;
  *) out="$PWD/$out" ;;
esac

if [[ -x "$out" ]] && [[ -z $(find "$src" "${BASH_SOURCE[0]}" -newer "$out" -print -quit) ]]; then
  exit 0
fi

"$root/scripts/ensure-debs.sh" golang-go golang-github-appc-cni-dev

gocode=/usr/share/gocode
if [[ ! -d "$gocode/src/github.com/containernetworking/cni/libcni" ]]; then
  echo "build-cnidriver: libcni sources not found under $gocode" >&2
  exit 1
fi

build="$root/build"
mkdir -p "$build/go-cache" "$build/gopath" "$(dirname "$out")"

# A temporary name in the same directory makes the final rename atomic, so
# two tests building at once never exec a half-written binary.
tmp=$(mktemp "$(dirname "$out")/.cnidriver.XXXXXX")
trap 'rm -f "$tmp"' EXIT

(
  cd "$src"
  env -u GOFLAGS \
    GO111MODULE=off \
    GOPATH="$build/gopath:$gocode" \
    GOCACHE="$build/go-cache" \
    GOPROXY=off \
    GOENV=off \
    GOTOOLCHAIN=local \
    CGO_ENABLED=0 \
    go build -trimpath -o "$tmp" .
)
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "build-cnidriver: built $out" >&2
