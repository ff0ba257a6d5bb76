#!/usr/bin/env bash
# Installs the given Debian packages when they are not installed yet.
# Usage: scripts/ensure-debs.sh PACKAGE...
# Runs apt-get only when something is missing, so it is cheap to call from
# every build script.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 PACKAGE..." >&2
  exit 2
fi

missing=()
for pkg in "$@"; do
  # dpkg -s also succeeds for removed packages whose config files remain,
  # so require the "install ok installed" status.
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$'; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "ensure-debs: missing packages ${missing[*]}: run as root to install them" >&2
  exit 1
fi

echo "ensure-debs: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
