#!/bin/sh
# Mounts a bpf filesystem at DIR (default /host/sys/fs/bpf) unless one is
# mounted there already. The DaemonSet's first init container runs it with
# the host's /sys/fs/bpf mounted Bidirectional, so the mount is the host's
# and pins outlive every agent pod.
set -eu
dir=${1:-/host/sys/fs/bpf}
if [ "$(stat -f -c %T "$dir")" = bpf_fs ]; then
  echo "mount-bpffs: $dir is a bpf filesystem already"
  exit 0
fi
mount -t bpf bpf "$dir"
echo "mount-bpffs: mounted a bpf filesystem at $dir"
