#!/usr/bin/env bash
# Build the upstream e2e network tests (scripts/harness/e2e/e2e_test.go,
# `go test -c`, bin/e2e-network.test), agnhost, the e2e tests' server image
# binary (k8s.io/kubernetes/test/images/agnhost), and the ginkgo CLI that
# runs the test binary in parallel processes (github.com/onsi/ginkgo/v2 at
# the version Kubernetes requires), from the same Kubernetes module as the
# cluster. Not part of the default build.sh run.
#
# Like kubernetes.sh, a wrapper module generated in the cache requires
# k8s.io/kubernetes at the tag and replaces every staging module named in
# the tag's go.mod with its published v0.<minor>.<patch>.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

src=$HARNESS_DIR/e2e
version=$KUBERNETES_VERSION
dir=$(harness_component_dir e2e "$version")
# The test main is part of the recipe: an edit rebuilds it.
recipe="e2e $version recipe 2 $(cat "$src"/*.go | sha256sum | cut -d' ' -f1)"

harness_start "$dir" "$recipe" e2e "$version"
mkdir -p "$dir/bin" "$dir/module"

harness_kubernetes_module "$dir/module" "$version" e2e
for f in "$src"/*.go; do
  harness_write_if_changed "$dir/module/$(basename "$f")" <"$f"
done

# Stamped like the cluster's binaries, so the e2e log reports v1.34.N.
ldflags="$HARNESS_LDFLAGS$stamp"

cd "$dir/module"
CGO_ENABLED=0 harness_run "$log" go test -c -vet=off -ldflags "$ldflags" -o "$dir/bin/e2e-network.test" .
CGO_ENABLED=0 harness_run "$log" go build -ldflags "$ldflags" -o "$dir/bin/agnhost" k8s.io/kubernetes/test/images/agnhost
CGO_ENABLED=0 harness_run "$log" go build -ldflags "$HARNESS_LDFLAGS" -o "$dir/bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo

harness_mark_built "$dir" "$recipe"
harness_timed e2e "$version" $((SECONDS - start))
