#!/usr/bin/env bash
# Run the Services conformance set (scripts/cluster/conformance.txt) of the
# upstream e2e tests against the running cluster, in parallel ginkgo
# processes, and write ginkgo's JSON and JUnit reports.
# Usage: scripts/cluster/conformance.sh [images]
#   images: only build and import the e2e images (for other cluster tests)
#   CONFORMANCE_PROCS      parallel test processes (default 3)
#   CONFORMANCE_TIMEOUT    ginkgo's bound on the whole run (default 20m)
#   CONFORMANCE_REPORT_DIR reports (default build/conformance; kept by make cluster-down)
#   CONFORMANCE_FOCUS      a regular expression that replaces the list (to run a few)
# Builds what is missing (scripts/harness/build.sh e2e), imports the e2e
# images into containerd's k8s.io namespace and needs cluster DNS
# (scripts/cluster/dns.sh up): the tests resolve Services by name. It does
# not start or stop a Service proxy: whatever serves Services on the node
# (podnet, or scripts/cluster/kube-proxy.sh for the reference run) is what
# is tested. Exits with ginkgo's status (non-zero when a test failed).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || cluster_die "conformance: needs root"
[[ -f $KUBECONFIG_ADMIN ]] && kubectl_admin get --raw /readyz >/dev/null 2>&1 ||
  cluster_die "conformance: no cluster answers ($KUBECONFIG_ADMIN; run make cluster)"
procs=${CONFORMANCE_PROCS:-3}
timeout=${CONFORMANCE_TIMEOUT:-20m}
reports=${CONFORMANCE_REPORT_DIR:-$REPO_ROOT/build/conformance}

bash "$REPO_ROOT/scripts/harness/build.sh" --quiet e2e
e2e_bin=$(harness_component_dir e2e "$KUBERNETES_VERSION")/bin
bash "$REPO_ROOT/scripts/harness/e2e-images.sh" "$CLUSTER_DIR/images"
for img in e2e-agnhost e2e-busybox e2e-pause; do
  ctr_k8s images import "$CLUSTER_DIR/images/$img.tar" >>"$LOGS/images.log" 2>&1 ||
    cluster_die "import $img image: failed, see $LOGS/images.log"
done
[[ ${1:-} == images ]] && exit 0

# One anchored alternative per listed test: exactly these run. ginkgo
# matches "<suite description> <spec full text>", so a name starts after a
# space; some upstream names end in a space.
if [[ -n ${CONFORMANCE_FOCUS:-} ]]; then
  focus=$CONFORMANCE_FOCUS
else
  focus=$(grep -v -e '^#' -e '^[[:space:]]*$' "$CLUSTER_SCRIPTS/conformance.txt" |
    sed -e 's/[][\\.^$*+?(){}|/]/\\&/g' -e 's/^/ /' -e 's/$/ *$/' | paste -sd '|')
fi

rm -rf "$reports"
mkdir -p "$reports"
cluster_log "conformance: $(grep -c -v -e '^#' -e '^[[:space:]]*$' "$CLUSTER_SCRIPTS/conformance.txt") listed tests, $procs processes, reports in $reports"
start=$SECONDS
set +e
"$e2e_bin/ginkgo" run --procs="$procs" --timeout="$timeout" --focus="$focus" \
  --no-color --output-dir="$reports" --json-report=report.json --junit-report=junit.xml \
  "$e2e_bin/e2e-network.test" -- \
  -kubeconfig="$KUBECONFIG_ADMIN" -kubectl-path="$CLUSTER_DIR/bin/kubectl" \
  -provider=skeleton -report-dir="$reports" -dump-logs-on-failure=true \
  >"$reports/e2e.log" 2>&1
rc=$?
set -e
echo "$((SECONDS - start))" >"$reports/seconds"
grep -E '^(Ran [0-9]+ of|(PASS|FAIL)!|Summarizing|  \[FAIL\])' "$reports/e2e.log" >&2 || true
cluster_log "conformance: exit $rc after $((SECONDS - start)) s, log $reports/e2e.log"
exit "$rc"
