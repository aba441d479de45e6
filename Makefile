# lab's build, test and CI entry points. `make help` lists them.

GO        ?= go
BIN       ?= bin
TOOLS     ?= $(CURDIR)/.cache/tools
LAB       := $(BIN)/lab
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
export LAB_TOOLS_DIR := $(TOOLS)

# The platforms lab itself runs on. Its nodes are Linux (amd64, arm64)
# whatever runs lab; `lab image build` and docker nodes' host sysctls are
# Linux-only and say so at run time elsewhere.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64
# What make test-all cross-compiles and archives: one platform of each
# system lab runs on.
CI_PLATFORMS ?= linux/amd64 darwin/arm64 windows/amd64
DIST      ?= dist
# Archive entries are dated by the last commit, so the same commit makes
# the same archives.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: help deps nodebin build cross dist test test-all test-cilium lint generate check-generate tools dockerd node-image demo clean fuzz bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# lab embeds the lab-node datapath for every node architecture, so the
# lab-node builds come first (gzipped into provision/nodebin/bin).
nodebin: ## build lab-node (linux amd64 + arm64) into provision/nodebin/bin for lab to embed
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/lab-node-linux-$$arch ./cmd/lab-node || exit 1; \
		gzip -9 -n -c $(BIN)/lab-node-linux-$$arch > provision/nodebin/bin/lab-node-linux-$$arch.gz || exit 1; \
	done

build: nodebin ## build bin/lab with the lab-node datapath (linux amd64 + arm64) embedded
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(LAB) ./cmd/lab

# Compiling is the check: a Linux-only symbol in code lab runs fails here,
# not on a user's Mac. Whether lab-node is embedded does not matter to it.
cross: ## cross-compile lab for every platform in PLATFORMS
	for p in $(PLATFORMS); do \
		echo "cross: $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -o /dev/null ./cmd/lab || exit 1; \
	done

# One archive per platform (tar.gz, zip for Windows) holding lab, and
# SHA256SUMS. The archives are reproducible: entries sorted, owned by 0,
# dated SOURCE_DATE_EPOCH, gzip without a name or time. Needs GNU tar and zip.
dist: nodebin ## release archives of lab for every platform, with SHA256SUMS, in dist/
	rm -rf $(DIST)
	mkdir -p $(DIST)
	set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=lab-$(VERSION)-$$os-$$arch; exe=lab; \
		if [ $$os = windows ]; then exe=lab.exe; fi; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$name/$$exe ./cmd/lab; \
		chmod 0755 $(DIST)/$$name/$$exe; \
		touch -d @$(SOURCE_DATE_EPOCH) $(DIST)/$$name/$$exe; \
		if [ $$os = windows ]; then \
			(cd $(DIST)/$$name && TZ=UTC zip -q -X -9 ../$$name.zip $$exe); \
		else \
			tar -C $(DIST)/$$name --sort=name --owner=0 --group=0 --numeric-owner \
				--mtime=@$(SOURCE_DATE_EPOCH) -cf - $$exe | gzip -9 -n > $(DIST)/$$name.tar.gz; \
		fi; \
		rm -r $(DIST)/$$name; \
	done
	cd $(DIST) && sha256sum lab-$(VERSION)-* > SHA256SUMS && sha256sum --quiet -c SHA256SUMS
	@cat $(DIST)/SHA256SUMS

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

# The whole suite: lab cross-compiled and archived for one platform of
# each system (CI_PLATFORMS: each platform is two minutes of compiling,
# cold, and another architecture of the same system checks little more),
# unit tests, real-tool judges, SSH against real sshd, eBPF in the real
# kernel, and end-to-end tests on container nodes, the Cilium labs
# included. Needs root and the packages .ci/run
# installs. LAB_REQUIRE_TOOLS=1 turns every "tool missing"
# skip into a failure, so nothing is silently left out.
# The end-to-end tests run last and alone: they measure failover times and
# assert that a VIP never moves without cause, which other test packages
# saturating the CPUs beside them would disturb.
test-all: deps lint check-generate tools dockerd build ## everything, as CI runs it (root)
	$(MAKE) dist PLATFORMS="$(CI_PLATFORMS)"
	DOCKER_HOST=$$(bash .ci/dockerd.sh) LAB_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 30m -p 2 ./...
	DOCKER_HOST=$$(bash .ci/dockerd.sh) LAB_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 80m -p 1 -tags e2e ./provision/e2e/...

# The Cilium labs alone (labs/cilium-ci.yaml and labs/cilium-ha-ci.yaml on
# container nodes, Cilium built from source here, no kube-proxy); test-all
# runs them too.
test-cilium: deps tools dockerd build ## the Cilium labs on container nodes, Cilium built from source (root)
	DOCKER_HOST=$$(bash .ci/dockerd.sh) LAB_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 60m -tags e2e -run TestCiliumLab -v ./provision/e2e/cluster

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
	rm -rf $(BIN) _out $(DIST)
