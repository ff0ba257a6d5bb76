# podnet — build, test, demo, benchmark and install.
# `make demo` and `make test` work on a fresh Debian 12 machine as root:
# both run `make setup` first, which installs what is missing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

PREFIX       ?= /usr/local
DESTDIR      ?=
CNI_BIN_DIR  ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d
PODNET_LIB    = $(PREFIX)/lib/podnet

NODE     := node
TSX      := $(NODE) --import tsx
MULTIARCH := $(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
BPF_CFLAGS = $(shell cat bpf/cflags) -I/usr/include/$(MULTIARCH)
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_HDRS := $(shell find bpf -name '*.h') bpf/cflags
BPF_OBJS := $(patsubst bpf/%.bpf.c,build/bpf/%.bpf.o,$(BPF_SRCS))
TS_SRCS  := $(shell find agent/src cni/src -name '*.ts' 2>/dev/null)

TEST_TIMEOUT ?= 600000
UNIT_TESTS        = $(wildcard test/unit/*.test.ts)
BPF_TESTS         = $(wildcard test/bpf/*.test.ts)
INTEGRATION_TESTS = $(wildcard test/integration/*.test.ts)
E2E_TESTS         = $(wildcard test/e2e/*.test.ts)
# Brings the one-node cluster up (building the harness on the first run) and always down.
CLUSTER_TESTS     = $(wildcard test/cluster/*.test.ts)
NODE_TEST = $(TSX) --test --test-concurrency=1 --test-timeout=$(TEST_TIMEOUT) --test-reporter=spec

.PHONY: setup build bpf ts cni gen gen-check typecheck test test-unit test-bpf test-integration test-e2e demo bench install install-cni clean

## setup: install missing Debian packages, mount bpffs, npm ci (idempotent)
setup:
	@bash scripts/setup.sh

## build: the BPF objects, the agent/CLI bundle and the CNI entry point
build: bpf ts cni

bpf: $(BPF_OBJS)

build/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS)
	@mkdir -p $(@D)
	clang $(BPF_CFLAGS) -c $< -o $@

ts: build/podnet.mjs

build/podnet.mjs: $(TS_SRCS) package-lock.json
	@mkdir -p $(@D)
	$(NODE) scripts/bundle-agent.mjs

# One self-contained executable (bun build --compile): no node needed on the node.
cni: build/cni/podnet

build/cni/podnet: $(TS_SRCS) cni/build.mjs package-lock.json
	$(NODE) cni/build.mjs

## gen: regenerate the files derived from bpf/ (drop reasons)
gen:
	$(NODE) scripts/gen-enums.mjs
	$(NODE) scripts/gen-settings.mjs

## gen-check: fail when a generated file differs from what bpf/ gives
gen-check:
	@$(NODE) scripts/gen-enums.mjs --check
	@$(NODE) scripts/gen-settings.mjs --check

## typecheck: tsc over the agent, the entry point and the tests
typecheck:
	npx tsc -p tsconfig.json --noEmit

# The libcni driver (module mode, libcni at the version versions.env pins),
# built into the harness cache and copied here.
build/cnidriver: $(wildcard test/cluster/tools/cnidriver-mod/*.go) scripts/harness/cnidriver.sh scripts/harness/versions.env
	bash scripts/harness/cnidriver.sh build/cnidriver

# Cached outside the checkout; a no-op when built. Needs Go >= 1.24 in /usr/local/go.
## test-harness: build the CNI reference plugins and Prometheus the tests use from Go modules when missing
.PHONY: test-harness
test-harness:
	@bash scripts/harness/build.sh --quiet cni-plugins prometheus

## test: every tier (unit, bpf, integration, e2e, cluster) in one run; needs root
test: setup gen-check typecheck build build/cnidriver test-harness
	$(NODE_TEST) $(UNIT_TESTS) $(BPF_TESTS) $(INTEGRATION_TESTS) $(E2E_TESTS) $(CLUSTER_TESTS)

## test-unit: the unit tier (no privileges)
test-unit: build
	$(NODE_TEST) $(UNIT_TESTS)

## test-bpf: the BPF tier (packets through BPF_PROG_TEST_RUN; root)
test-bpf: build
	$(NODE_TEST) $(BPF_TESTS)

## test-integration: the integration tier (real netns, veth, tc; root)
test-integration: build build/cnidriver test-harness
	$(NODE_TEST) $(INTEGRATION_TESTS)

## test-e2e: the end-to-end tier (containerd, libcni, Prometheus; root)
test-e2e: build build/cnidriver test-harness
	$(NODE_TEST) $(E2E_TESTS)

## demo: a simulated node on this machine (root; cleans up); DEMO_POD_CIDR=, DEMO_METRICS_PORT= override
demo: setup build
	bash scripts/demo.sh

## bench: benchmarks under test/bench (not part of `make test`)
bench: setup build build/cnidriver test-harness
	bash scripts/bench.sh

# install: the production dependencies come from package-lock.json through npm
# (from npm's cache when it has them) without install scripts: koffi's prebuilt
# binary is a package of its own, and nothing else needs a script.
## install: agent/CLI under $(PREFIX)/lib/podnet with production dependencies only, `podnet` on the PATH, and install-cni
install: build install-cni
	rm -rf '$(DESTDIR)$(PODNET_LIB)'
	install -d '$(DESTDIR)$(PODNET_LIB)/build' '$(DESTDIR)$(PODNET_LIB)/bin' '$(DESTDIR)$(PREFIX)/bin'
	install -m 0644 -t '$(DESTDIR)$(PODNET_LIB)/build' build/podnet.cjs build/podnet.cjs.map build/podnet.mjs build/podnet.mjs.map
	cp -r build/podnet-chunks '$(DESTDIR)$(PODNET_LIB)/build/podnet-chunks'
	install -m 0644 -t '$(DESTDIR)$(PODNET_LIB)' package.json package-lock.json
	cp -r bpf '$(DESTDIR)$(PODNET_LIB)/bpf'
	install -m 0755 bin/podnet '$(DESTDIR)$(PODNET_LIB)/bin/podnet'
	install -m 0644 bin/package.json '$(DESTDIR)$(PODNET_LIB)/bin/package.json'
	cd '$(DESTDIR)$(PODNET_LIB)' && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error
	ln -sfn '$(PODNET_LIB)/bin/podnet' '$(DESTDIR)$(PREFIX)/bin/podnet'

install-cni: cni
	install -D -m 0755 build/cni/podnet $(DESTDIR)$(CNI_BIN_DIR)/podnet
	install -D -m 0644 deploy/10-podnet.conflist $(DESTDIR)$(CNI_CONF_DIR)/10-podnet.conflist

## clean: remove build outputs
clean:
	rm -rf build dist

.PHONY: help uninstall uninstall-cni

## help: list these targets
help:
	@sed -n 's/^## \([a-z][-a-z0-9]*\): \(.*\)/\1\t\2/p' $(MAKEFILE_LIST) | awk -F'\t' '{ printf "  %-18s %s\n", $$1, $$2 }'

## uninstall: remove exactly what install put in place (same DESTDIR, PREFIX, CNI_BIN_DIR, CNI_CONF_DIR)
uninstall: uninstall-cni
	@# Only our symlink: a podnet on the PATH that install did not make stays.
	if [ "$$(readlink '$(DESTDIR)$(PREFIX)/bin/podnet' 2>/dev/null)" = '$(PODNET_LIB)/bin/podnet' ]; then rm -f '$(DESTDIR)$(PREFIX)/bin/podnet'; fi
	rm -rf '$(DESTDIR)$(PODNET_LIB)'

## install-cni: the CNI entry point into $(CNI_BIN_DIR) and the conflist into $(CNI_CONF_DIR)
## uninstall-cni: remove what install-cni put there
uninstall-cni:
	rm -f '$(DESTDIR)$(CNI_BIN_DIR)/podnet' '$(DESTDIR)$(CNI_CONF_DIR)/10-podnet.conflist'

# The Debian base is cached under $${XDG_CACHE_HOME:-/var/cache}/podnet/image;
# `ctr -n k8s.io images import build/agent-image.tar` puts it where kubelet finds it.
## image: the agent image as an OCI archive (build/agent-image.tar), without a container engine
AGENT_IMAGE ?= podnet.local/podnet-agent:$(shell $(NODE) -p "require('./package.json').version")
.PHONY: image
image: build
	bash scripts/image/build-agent-image.sh build/agent-image.tar $(AGENT_IMAGE)

## harness: build Kubernetes, etcd, containerd, the CNI plugins and the libcni driver from Go modules (cached)
.PHONY: harness cluster cluster-down
harness:
	@bash scripts/harness/build.sh

## cluster: a one-node Kubernetes cluster running podnet from deploy/ (root); see docs/cluster.md
cluster:
	@bash scripts/cluster/up.sh

## cluster-down: stop the cluster and remove everything it made
cluster-down:
	@bash scripts/cluster/down.sh

# The first run builds the harness; the tier brings the cluster up and always down.
## test-cluster: the cluster tier (test/cluster; root)
.PHONY: test-cluster
test-cluster: build test-harness
	$(NODE_TEST) $(CLUSTER_TESTS)

## conformance: the upstream Services conformance set on a fresh cluster with podnet and no kube-proxy (root); see docs/conformance.md
.PHONY: conformance
conformance: build
	$(NODE_TEST) test/cluster/conformance.test.ts
