#!/usr/bin/env bash
# Build the pod sandbox ("pause") binary from pause.c, static, with gcc.
# scripts/cluster/ packs it into the image containerd's CRI is configured
# with as its sandbox image (PAUSE_IMAGE in versions.env).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

src=$HARNESS_DIR/pause.c
version=$PAUSE_VERSION
dir=$(harness_component_dir pause "$version")
recipe="pause $version recipe 1 $(sha256sum "$src" | cut -d' ' -f1)"
if harness_is_built "$dir" "$recipe"; then
  exit 0
fi
harness_lock "$dir"
if harness_is_built "$dir" "$recipe"; then
  exit 0
fi
command -v gcc >/dev/null || "$HARNESS_DIR/../ensure-debs.sh" gcc libc6-dev
harness_begin pause "$version"
mkdir -p "$dir/bin"
harness_run "$log" gcc -Os -static -Wall -Wextra -Werror -o "$dir/bin/pause" "$src"
harness_run "$log" strip "$dir/bin/pause"
harness_mark_built "$dir" "$recipe"
harness_timed pause "$version" $((SECONDS - start))
