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
NODE_TEST = $(TSX) --test --test-concurrency=1 --test-timeout=$(TEST_TIMEOUT) --test-reporter=spec

.PHONY: setup build bpf ts cni gen gen-check typecheck test test-unit test-bpf test-integration test-e2e demo bench install install-cni clean

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

cni: build/cni/podnet.cjs

build/cni/podnet.cjs: $(TS_SRCS) cni/build.mjs
	$(NODE) cni/build.mjs

gen:
	$(NODE) scripts/gen-drop-reasons.mjs

gen-check:
	@$(NODE) scripts/gen-drop-reasons.mjs --check

typecheck:
	npx tsc -p tsconfig.json --noEmit

build/cnidriver: $(wildcard test/e2e/tools/cnidriver/*.go) scripts/build-cnidriver.sh
	bash scripts/build-cnidriver.sh build/cnidriver

## test: every tier (unit, bpf, integration, e2e) in one run; needs root
test: setup gen-check typecheck build build/cnidriver
	$(NODE_TEST) $(UNIT_TESTS) $(BPF_TESTS) $(INTEGRATION_TESTS) $(E2E_TESTS)

test-unit: build
	$(NODE_TEST) $(UNIT_TESTS)

test-bpf: build
	$(NODE_TEST) $(BPF_TESTS)

test-integration: build build/cnidriver
	$(NODE_TEST) $(INTEGRATION_TESTS)

test-e2e: build build/cnidriver
	$(NODE_TEST) $(E2E_TESTS)

## demo: a simulated node on this machine (root; cleans up after itself)
demo: setup build
	bash scripts/demo.sh

## bench: benchmarks under test/bench (not part of `make test`)
bench: setup build build/cnidriver
	bash scripts/bench.sh

## install: the CNI entry point + conflist, and the CLI/agent under $(PREFIX)
install: build install-cni
	install -d $(DESTDIR)$(PREFIX)/lib/podnet/build
	cp -r build/podnet.mjs build/podnet.mjs.map build/bpf $(DESTDIR)$(PREFIX)/lib/podnet/build/
	cp -r bpf package.json package-lock.json node_modules $(DESTDIR)$(PREFIX)/lib/podnet/
	install -D -m 0755 bin/podnet $(DESTDIR)$(PREFIX)/lib/podnet/bin/podnet
	install -d $(DESTDIR)$(PREFIX)/bin
	ln -sf $(PREFIX)/lib/podnet/bin/podnet $(DESTDIR)$(PREFIX)/bin/podnet

install-cni: cni
	install -D -m 0755 build/cni/podnet.cjs $(DESTDIR)$(CNI_BIN_DIR)/podnet
	install -D -m 0644 deploy/10-podnet.conflist $(DESTDIR)$(CNI_CONF_DIR)/10-podnet.conflist

clean:
	rm -rf build dist

## harness: build the test harness's Kubernetes, etcd, containerd, CNI plugins
## and libcni driver from Go modules into the version-keyed cache
.PHONY: harness cluster cluster-down
harness:
	@bash scripts/harness/build.sh

## cluster: a one-node Kubernetes cluster on this machine (root); see docs/cluster.md
cluster:
	@bash scripts/cluster/up.sh

## cluster-down: stop the cluster and remove everything it made
cluster-down:
	@bash scripts/cluster/down.sh

## test-cluster: the cluster tier (test/cluster; root; brings the cluster up
## and always down; the first run builds the harness)
CLUSTER_TESTS = $(wildcard test/cluster/*.test.ts)
.PHONY: test-cluster
test-cluster: build
	$(NODE_TEST) $(CLUSTER_TESTS)
