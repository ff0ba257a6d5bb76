#!/usr/bin/env bash
# Lays out podnet's own files of the agent image under DEST. Both image
# builds call it: scripts/image/build-agent-image.sh (no container engine)
# and deploy/Dockerfile, so the two images hold the same files at the same
# paths by construction.
#
# Usage: scripts/image/stage.sh --src CHECKOUT --modules NODE_MODULES --node NODE_BIN DEST
#   CHECKOUT      a checkout after `make build` (build/podnet.{cjs,mjs}, build/podnet-chunks, build/cni/podnet)
#   NODE_MODULES  production dependencies (npm ci --omit=dev)
#   NODE_BIN      the node binary (Node >= 20) to ship as /usr/bin/node
#
# Layout (the agent finds bpf/ by walking up from its bundle; the same files
# `make install` puts under $(PREFIX)/lib/podnet):
#   /usr/bin/node
#   /usr/lib/podnet/{package.json,bin/{podnet,package.json},build/{podnet.cjs,podnet.mjs,podnet-chunks/},bpf/,node_modules/}
#   /usr/lib/podnet/cni/{podnet,10-podnet.conflist}   what the init container installs
#   /usr/local/bin/podnet -> /usr/lib/podnet/bin/podnet
#   /usr/local/bin/podnet-install-cni                 init container: install the CNI files on the host
#   /usr/local/bin/podnet-mount-bpffs                 init container: mount the host's bpffs if missing
set -euo pipefail

usage() {
  echo "usage: $0 --src CHECKOUT --modules NODE_MODULES --node NODE_BIN DEST" >&2
  exit 2
}
src= modules= node=
while [[ $# -gt 1 ]]; do
  case $1 in
    --src) src=$2; shift 2 ;;
    --modules) modules=$2; shift 2 ;;
    --node) node=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ $# -eq 1 && -n $src && -n $modules && -n $node ]] || usage
dest=$1

fail() {
  echo "stage: $*" >&2
  exit 1
}

# The CNI entry point is one self-contained executable: hosts need no node.
cni=$src/build/cni/podnet
for f in build/cni/podnet build/podnet.cjs build/podnet.mjs bin/podnet bin/package.json package.json bpf/pod.bpf.c bpf/cflags deploy/10-podnet.conflist scripts/image/install-cni.sh scripts/image/mount-bpffs.sh; do
  [[ -f $src/$f ]] || fail "missing $src/$f (run make build)"
done
[[ -d $src/build/podnet-chunks ]] || fail "missing $src/build/podnet-chunks (run make build)"
[[ -d $modules/koffi ]] || fail "$modules holds no koffi: not a production node_modules"
major=$("$node" -p 'process.versions.node.split(".")[0]') || fail "run $node: cannot print its version"
[[ $major -ge 20 ]] || fail "$node is Node $major; the agent needs Node >= 20"

lib=$dest/usr/lib/podnet
install -d -m 0755 "$dest/usr/bin" "$dest/usr/local/bin" "$lib/bin" "$lib/build" "$lib/cni"
install -m 0755 "$node" "$dest/usr/bin/node"
install -m 0644 "$src/package.json" "$lib/package.json"
install -m 0755 "$src/bin/podnet" "$lib/bin/podnet"
install -m 0644 "$src/bin/package.json" "$lib/bin/package.json"
for f in podnet.cjs podnet.mjs podnet.cjs.map podnet.mjs.map; do
  [[ -f $src/build/$f ]] && install -m 0644 "$src/build/$f" "$lib/build/$f"
done
cp -r "$src/build/podnet-chunks" "$lib/build/podnet-chunks"
# Sources only: the agent compiles them itself (clang is in the image).
(cd "$src" && find bpf -type f \( -name '*.c' -o -name '*.h' -o -name cflags \) -print0) |
  while IFS= read -r -d '' f; do install -D -m 0644 "$src/$f" "$lib/$f"; done
cp -a "$modules" "$lib/node_modules"
install -m 0755 "$cni" "$lib/cni/podnet"
install -m 0644 "$src/deploy/10-podnet.conflist" "$lib/cni/10-podnet.conflist"
install -m 0755 "$src/scripts/image/install-cni.sh" "$dest/usr/local/bin/podnet-install-cni"
install -m 0755 "$src/scripts/image/mount-bpffs.sh" "$dest/usr/local/bin/podnet-mount-bpffs"
ln -sfn ../../lib/podnet/bin/podnet "$dest/usr/local/bin/podnet"
