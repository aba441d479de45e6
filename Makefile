# lab's build, test and CI entry points. `make help` lists them.

GO        ?= go
BIN       ?= bin
TOOLS     ?= $(CURDIR)/.cache/tools
LAB       := $(BIN)/lab
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
export LAB_TOOLS_DIR := $(TOOLS)

.PHONY: help deps build test test-all lint generate check-generate tools dockerd node-image demo clean fuzz bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# lab embeds the lab-node datapath for every node architecture, so the
# lab-node builds come first (gzipped into provision/nodebin/bin).
build: ## build bin/lab with the lab-node datapath (linux amd64 + arm64) embedded
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/lab-node-linux-$$arch ./cmd/lab-node || exit 1; \
		gzip -9 -n -c $(BIN)/lab-node-linux-$$arch > provision/nodebin/bin/lab-node-linux-$$arch.gz || exit 1; \
	done
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(LAB) ./cmd/lab

test: ## unit tests only (no root, no tools needed; judges that need tools skip)
	$(GO) test -count=1 ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

generate: ## regenerate the eBPF objects (bpf2go, needs clang)
	$(GO) generate ./bpf/...

check-generate: generate ## fail when committed generated files are stale
	@git diff --exit-code --stat -- bpf/ || { echo "generated files are stale: run make generate and commit"; exit 1; }

deps: ## install the Debian packages the main job and the tests need (root)
	bash .ci/deps.sh

tools: ## build the real tools the tests use as judges (kubeadm, helm + Cilium charts)
	bash .ci/build-kubeadm.sh
	bash .ci/build-helm.sh

dockerd: deps ## start a private Docker daemon for container nodes
	bash .ci/dockerd.sh >/dev/null

node-image: build dockerd ## build the container node image (debootstrap, offline afterwards)
	DOCKER_HOST=$$(bash .ci/dockerd.sh) $(LAB) image build

# The whole suite: unit tests, real-tool judges, SSH against real sshd, eBPF in
# the real kernel, and end-to-end tests on container nodes. Needs root and the
# packages .ci/run installs. LAB_REQUIRE_TOOLS=1 turns every "tool missing"
# skip into a failure, so nothing is silently left out.
# The end-to-end tests run last and alone: they measure failover times and
# assert that a VIP never moves without cause, which other test packages
# saturating the CPUs beside them would disturb.
test-all: deps lint check-generate tools dockerd build ## everything, as CI runs it (root)
	DOCKER_HOST=$$(bash .ci/dockerd.sh) LAB_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 30m -p 2 ./...
	DOCKER_HOST=$$(bash .ci/dockerd.sh) LAB_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 45m -p 1 -tags e2e ./provision/e2e/...

fuzz: ## fuzz the lab file loader for a minute
	$(GO) test ./provision/labfile -run '^$$' -fuzz FuzzParse -fuzztime 60s

bench: ## Go benchmarks (figures go to docs/performance.md)
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...

# The main job: a real highly available Kubernetes cluster on container
# nodes from a fresh machine. lab builds the node image (debootstrap) and
# Kubernetes itself from source at the lab's version (the CI lab says
# artifacts: build: container nodes have no internet), brings up 3 control
# planes behind a Keepalived + HAProxy VIP and a worker with the builtin eBPF
# pod network, shows the cluster through the VIP, and deletes it again.
DEMO_LAB ?= labs/ci.yaml
demo: deps build dockerd ## the main job: a real HA cluster from labs/ci.yaml on container nodes, then lab down
	@export DOCKER_HOST=$$(bash .ci/dockerd.sh); set -e; \
	$(LAB) image build; \
	$(LAB) validate $(DEMO_LAB); \
	$(LAB) up $(DEMO_LAB); \
	$(LAB) status $(DEMO_LAB); \
	$(LAB) ssh -f $(DEMO_LAB) cp1 -- kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide; \
	$(LAB) down $(DEMO_LAB) --yes

clean: ## remove build outputs
	rm -rf $(BIN) _out
