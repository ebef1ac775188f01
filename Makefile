# istio-sidecar: a Nomad task driver that runs Istio's sidecar. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export ISTIO_SIDECAR_CACHE ?= /var/cache/istio-sidecar
# Nomad refuses a plugin whose version is not semver: a release tag (v0.1.0 → 0.1.0), else a dev version with
# the commit as build metadata.
VERSION ?= $(shell git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null | sed 's/^v//' | grep . || \
	echo "0.1.0-dev+$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
LDFLAGS := -X github.com/istio-sidecar/istio-sidecar/driver.Version=$(VERSION)

# The real pilot-agent (built from the pinned istio.io/istio module) and, unless ISTIO_SIDECAR_ENVOY points at a
# real Envoy, the stand-in Envoy. Evaluated lazily: only the targets that need them build them.
PILOT_AGENT = $(shell build/pilot-agent.sh)
ISTIO_SIDECAR_ENVOY ?= $(CURDIR)/bin/standin-envoy
# What a real Nomad agent runs in the e2e suite, the node-level benchmarks and the demo (e2e/harness reads these).
AGENT_ENV = NOMAD_BIN=$$(build/nomad.sh) ISTIO_SIDECAR_BIN=$(CURDIR)/bin/istio-sidecar \
	ISTIO_SIDECAR_PILOT_AGENT=$(PILOT_AGENT) ISTIO_SIDECAR_ENVOY=$(ISTIO_SIDECAR_ENVOY)

.PHONY: help
help: ## Show this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: demo
demo: setup build standin ## The driver and its control plane on this machine (root): a meshed app gets its identity, calls a service through the sidecar
	go build -o bin/demo ./e2e/demo
	$(AGENT_ENV) $(CONTROL_PLANE_E2E_ENV) bin/demo

.PHONY: build
build: ## Build the plugin and the controller into bin/
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/istio-sidecar ./cmd/istio-sidecar
	go build -trimpath -o bin/istio-sidecar-controller ./cmd/istio-sidecar-controller

# bin/standin-envoy is for the suites with no istiod (driver integration, e2e, demo), which can set nothing in the
# proxy's environment: built to default to STANDIN_ENVOY_CONTROL_PLANE=none, it opens 15001/15006 itself and is
# ready at once. bin/standin-envoy-xds is the stand-in as it is by default: xDS and SDS through pilot-agent, ready
# once istiod's clusters and listeners have arrived.
.PHONY: standin
standin: ## Build the stand-in Envoy used by the tests (never a plugin default)
	go build -ldflags "-X main.defaultControlPlane=none" -o bin/standin-envoy ./testdoubles/standin-envoy
	go build -o bin/standin-envoy-xds ./testdoubles/standin-envoy

.PHONY: nomad
nomad: ## Build the Nomad v1.6.3 agent from its MPL-2.0 module source into the cache (~3.5 min the first time)
	build/nomad.sh

.PHONY: pilot-agent
pilot-agent: ## Build Istio's real pilot-agent from the pinned istio.io/istio module into the cache
	build/pilot-agent.sh

.PHONY: istiod
istiod: ## Build istiod (pilot-discovery) and Istio's CRDs file from the same pinned istio.io/istio module into the cache
	build/istiod.sh

.PHONY: etcd
etcd: ## Build etcd v3.6.8 from its module source into the cache
	build/etcd.sh

.PHONY: kube-apiserver
kube-apiserver: ## Build kube-apiserver and kubectl v1.36.1 from the k8s.io/kubernetes module into the cache
	build/kube-apiserver.sh

.PHONY: setup
setup: ## Install host packages and the proxy user; build pilot-agent, Nomad v1.6.3 and the control plane (cached)
	build/host-setup.sh
	build/pilot-agent.sh >/dev/null
	build/nomad.sh >/dev/null
	build/istiod.sh >/dev/null
	build/etcd.sh >/dev/null
	build/kube-apiserver.sh >/dev/null

.PHONY: check
check: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./e2e/...

# The control plane the tests against a real istiod start (internal/controlplane reads these).
CONTROL_PLANE_ENV = ISTIO_SIDECAR_ETCD=$$(build/etcd.sh) ISTIO_SIDECAR_KUBE_APISERVER=$$(build/kube-apiserver.sh) \
	ISTIO_SIDECAR_ISTIOD=$$(build/istiod.sh)

.PHONY: unit
unit: setup build standin ## Unit and integration tests (real pilot-agent, Nomad's driver harness, real istiod, bootstrap and controller against real Nomad agents)
	$(CONTROL_PLANE_ENV) NOMAD_BIN=$$(build/nomad.sh) ISTIO_SIDECAR_PILOT_AGENT=$(PILOT_AGENT) \
	ISTIO_SIDECAR_ENVOY=$(ISTIO_SIDECAR_ENVOY) ISTIO_SIDECAR_REQUIRE_INTEGRATION=1 go test -race -count=1 -timeout 15m ./...

# The control-plane scenario (e2e/controlplane_*_test.go) runs example/control-plane.md with these.
CONTROL_PLANE_E2E_ENV = $(CONTROL_PLANE_ENV) ISTIO_SIDECAR_CONTROLLER=$(CURDIR)/bin/istio-sidecar-controller \
	ISTIO_SIDECAR_ENVOY_XDS=$(CURDIR)/bin/standin-envoy-xds

.PHONY: e2e
e2e: setup build standin ## End-to-end scenarios on a real Nomad v1.6.3 agent, the control plane's among them
	$(AGENT_ENV) $(CONTROL_PLANE_E2E_ENV) ISTIO_SIDECAR_REQUIRE_INTEGRATION=1 go test -count=1 -timeout 30m -tags e2e ./e2e/

.PHONY: test
test: check unit e2e ## Everything CI runs (as root, on a fresh Debian machine)

.PHONY: bench
bench: setup build standin ## Benchmarks, printed with ratios against a baseline measured in the same run
	ISTIO_SIDECAR_PILOT_AGENT=$(PILOT_AGENT) ISTIO_SIDECAR_ENVOY=$(ISTIO_SIDECAR_ENVOY) \
	go test -run '^$$' -bench . -benchtime 10x ./...
	@# The node-level figures (start-up split, memory, 20 groups at once) on a real agent: one run of a few minutes.
	$(AGENT_ENV) go test -count=1 -timeout 15m -tags e2e -run '^$$' -bench '^BenchmarkSidecar$$' -benchtime 1x ./e2e/
	@# The control plane of example/control-plane.md on a real agent: start-up to istiod ready, memory, CSR latency.
	$(AGENT_ENV) $(CONTROL_PLANE_E2E_ENV) go test -count=1 -timeout 20m -tags e2e -run '^$$' \
		-bench '^BenchmarkControlPlane$$' -benchtime 1x ./e2e/
	@# Registration at 200 Nomad services: the controller's full sync and re-sync, its and istiod's memory, and
	@# endpoint propagation (a new allocation's proxy ready → in another proxy's config dump) over 20 allocations.
	$(AGENT_ENV) $(CONTROL_PLANE_E2E_ENV) go test -count=1 -timeout 20m -tags e2e -run '^$$' \
		-bench '^BenchmarkRegistration$$' -benchtime 1x ./e2e/
	@# What each builder costs, warm and cold (about 15 minutes on 2 cores: every part built twice from nothing).
	build/bench.sh

.PHONY: clean
clean: ## Remove build outputs (the cache of the builders' binaries stays)
	rm -rf bin
