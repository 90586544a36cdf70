# nsrel: see README.md. Targets: build, test, bench, demo, deps, lint, pictures.
GO      ?= go
BIN     ?= bin
export NSREL_TOOLS ?= $(HOME)/.cache/nsrel/tools
TESTFLAGS ?= -count=1 -timeout 40m

.PHONY: all build test bench bench-ls bench-hook bench-containerd bench-startup reliability demo deps lint pictures clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

deps:
	./scripts/deps.sh

# Every test, against the real kernel, runc, crun, podman and containerd.
# Needs root; installs what is missing first.
test: deps
	$(GO) test $(TESTFLAGS) ./...

lint: deps
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(NSREL_TOOLS)/staticcheck-v0.8.2/staticcheck ./...
	./scripts/cross.sh

# Go benchmarks of every package (quick); the bench-* targets run the
# scripted comparisons recorded in docs/BENCHMARKS.md (minutes each).
bench: build deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-ls: build deps
	bench/ls/run.sh

bench-hook: deps
	bench/hook/run.sh

bench-containerd: deps
	bench/containerd/run.sh

bench-startup:
	bench/startup/run.sh

# The reliability campaign recorded in docs/RELIABILITY.md (root, a minute
# or two): tampering, forgery, kill -9, a full disk, concurrent starts and
# bad input against the audit log; exits 1 if a record is lost or a case
# that must be caught is not.
reliability:
	$(GO) run ./bench/reliability -go '$(GO)'

# The pictures of docs/pictures.md (root, Graphviz, Chromium, runc): the
# real scenario of TestPicturesOfARealScenario drawn by dot and shown by
# headless Chromium, into docs/pictures/.
pictures: deps
	mkdir -p docs/pictures
	CI=true NSREL_PICTURES=$(CURDIR)/docs/pictures $(GO) test -count=1 -run '^TestPicturesOfARealScenario$$' ./internal/lstool/

# The main job: runc + busybox containers with nsrel-hook, audit log, tree.
demo: deps
	BIN=$(BIN) ./scripts/demo.sh

clean:
	rm -rf $(BIN)
