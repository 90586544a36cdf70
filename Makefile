# nsrel: see README.md. Targets: build, test, bench, demo, deps, lint,
# doc, install, uninstall, deb, pictures, image.
GO      ?= go
BIN     ?= bin
VERSION ?= 0.1.0

# Install directories (GNU conventions; DESTDIR is prepended to all).
# SYSCONFDIR (the config's /etc, whatever the prefix) goes into the
# runtimes' hook entries and the binaries' default config path.
PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
SBINDIR        ?= $(PREFIX)/sbin
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/nsrel
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR    ?= $(DATADIR)/bash-completion/completions
# zsh's built-in $fpath has /usr/local/share/zsh/site-functions and, on
# Debian and Ubuntu, /usr/share/zsh/vendor-completions (not
# /usr/share/zsh/site-functions): the Debian package uses the latter too.
ifeq ($(PREFIX),/usr)
ZSHCOMPDIR     ?= $(DATADIR)/zsh/vendor-completions
else
ZSHCOMPDIR     ?= $(DATADIR)/zsh/site-functions
endif
FISHCOMPDIR    ?= $(DATADIR)/fish/vendor_completions.d
DESTDIR        ?=

# The hook's path and the version are built in; -trimpath and no build ID
# make the binaries reproducible.
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS = -X github.com/nsrel/nsrel/internal/vocab.Version=$(VERSION) \
	-X github.com/nsrel/nsrel/internal/vocab.Commit=$(COMMIT) \
	-X github.com/nsrel/nsrel/internal/vocab.DefaultHookPath=$(SBINDIR)/nsrel-hook \
	-X github.com/nsrel/nsrel/internal/vocab.DefaultHookConfig=$(SYSCONFDIR)/nsrel/hook.json -buildid= $(EXTRA_LDFLAGS)
# Static binaries (CGO_ENABLED=0: the net package would otherwise link
# libc through its cgo resolver): nsrel-hook starts 0.9 ms faster at each
# stage without the dynamic loader (docs/BENCHMARKS.md).
GOBUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
# The man pages' date: the last commit's, so a rebuild gives the same bytes.
DOCDATE ?= $(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)
export NSREL_TOOLS ?= $(HOME)/.cache/nsrel/tools
TESTFLAGS ?= -count=1 -timeout 40m

.PHONY: all build image doc install uninstall deb test bench bench-ls bench-hook bench-containerd bench-runtimes bench-startup reliability demo deps lint pictures clean

all: build

build:
	$(GOBUILD) -o $(BIN)/ ./cmd/...

# The node-agent image (docs/kubernetes.md): an OCI image layout tar with
# static nsrel-containerd and nsrel-hook and the shipped configs, written
# without a container engine or registry. Load it on each node with
# `ctr -n k8s.io images import $(BIN)/nsrel-node-agent.tar`. Also the
# agent's optional Localhost seccomp profile, for the same architecture
# (deploy/kubernetes/seccomp).
IMAGE ?= docker.io/nsrel/node-agent:$(VERSION)
image:
	$(GOBUILD) -o $(BIN)/image/ ./cmd/nsrel-containerd ./cmd/nsrel-hook
	$(GO) run ./internal/ociimage/cmd/mkimage -bin $(BIN)/image -repo . -name $(IMAGE) \
		-version $(VERSION) -revision $(COMMIT) -o $(BIN)/nsrel-node-agent.tar
	$(GO) run ./internal/seccompprofile/cmd/mkseccomp -o $(BIN)/nsrel-node-agent-seccomp.json

# Man pages and bash, zsh and fish completions, generated from the
# binaries' --help (internal/clidoc), into $(BIN)/doc.
doc: build
	$(GO) run ./internal/clidoc/cmd/clidoc -bin $(BIN) -out $(BIN)/doc -version $(VERSION) -date $(DOCDATE)

# The shipped files name the default install paths (/usr/local/sbin,
# /usr/local/share/doc/nsrel, /etc/nsrel); they are rewritten for the
# chosen directories on the way in.
SUBST = sed -e 's\#/usr/local/sbin/\#$(SBINDIR)/\#g' -e 's\#/usr/local/bin/\#$(BINDIR)/\#g' \
	-e 's\#/usr/local/share/doc/nsrel/\#$(DOCDIR)/\#g' -e 's\#/usr/local/share/nsrel/\#$(DATADIR)/nsrel/\#g' \
	-e 's\#/etc/nsrel/\#$(SYSCONFDIR)/nsrel/\#g'
SHIPPED = hook.json hook-enforce.json hook-enforce-cri.json runc/hooks.json \
	hooks.d/nsrel-createRuntime.json hooks.d/nsrel-poststop.json \
	poststart/nsrel-poststart.json poststart/runc-hooks.json \
	containerd/base-runtime-spec.json containerd/config-v1.toml containerd/config-v2.toml \
	rsyslog/nsrel-node.conf rsyslog/nsrel-collector.conf logrotate/nsrel

# Installs the binaries, man pages, completions, the example configs
# (under $(DATADIR)/nsrel), the systemd units (not enabled) and the docs;
# the configs in /etc/nsrel (hook.json in audit mode, hook-enforce.json,
# hook-enforce-cri.json, containerd-base-spec.json) only where there are
# none (an admin's config is never overwritten, nor the mode of an
# existing SYSCONFDIR/nsrel; the enforcing configs and
# the base spec do nothing until a hook entry or containerd names them). Runtimes are not reconfigured: see README.
install: doc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)
	[ -d $(DESTDIR)$(SYSCONFDIR)/nsrel ] || install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/nsrel
	install -m 0755 $(BIN)/lsuserns $(BIN)/lspidns $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BIN)/nsrel-hook $(BIN)/nsrel-containerd $(DESTDIR)$(SBINDIR)/
	install -m 0644 $(BIN)/doc/man/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BIN)/doc/man/man8/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(BIN)/doc/bash/* $(DESTDIR)$(BASHCOMPDIR)/
	install -m 0644 $(BIN)/doc/zsh/* $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 0644 $(BIN)/doc/fish/* $(DESTDIR)$(FISHCOMPDIR)/
	# Rendered in $(BIN) (a file there removed first), then installed:
	# install replaces a symlink someone put at the destination (a
	# staging tree others could write), where a redirection and chmod
	# wrote through it.
	for f in $(SHIPPED); do mkdir -p $(BIN)/shipped/$$(dirname $$f) && rm -f $(BIN)/shipped/$$f && $(SUBST) config/$$f > $(BIN)/shipped/$$f && \
		install -d $(DESTDIR)$(DATADIR)/nsrel/$$(dirname $$f) && \
		install -m 0644 $(BIN)/shipped/$$f $(DESTDIR)$(DATADIR)/nsrel/$$f || exit 1; done
	for f in containerd/nsrel-watch.service containerd/nsrel-nri.service systemd/nsrel-checkpoint.service systemd/nsrel-checkpoint.timer; do \
		u=$$(basename $$f) && mkdir -p $(BIN)/shipped/units && \
		rm -f $(BIN)/shipped/units/$$u && $(SUBST) config/$$f > $(BIN)/shipped/units/$$u && \
		install -m 0644 $(BIN)/shipped/units/$$u $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; done
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(DOCDIR)/pictures && install -m 0644 docs/pictures/*.png $(DESTDIR)$(DOCDIR)/pictures/
	for f in hook.json hook-enforce.json hook-enforce-cri.json; do [ -e $(DESTDIR)$(SYSCONFDIR)/nsrel/$$f ] || \
		install -m 0644 $(DESTDIR)$(DATADIR)/nsrel/$$f $(DESTDIR)$(SYSCONFDIR)/nsrel/$$f || exit 1; done
	[ -e $(DESTDIR)$(SYSCONFDIR)/nsrel/containerd-base-spec.json ] || \
		install -m 0644 $(DESTDIR)$(DATADIR)/nsrel/containerd/base-runtime-spec.json $(DESTDIR)$(SYSCONFDIR)/nsrel/containerd-base-spec.json

# Removes what install put there, except /etc/nsrel (config) and the
# audit log (evidence); first warns when a runtime's config still names
# the hook or the base spec (scripts/in-use.sh: the runtime would fail to
# start containers), and removes anyway; but removes nothing while the
# installed nsrel-containerd runs (its NRI plugin would go on injecting
# the removed hook, and the runtime refuse every new container).
uninstall:
	@NSREL_ROOT='$(DESTDIR)' sh scripts/in-use.sh $(SBINDIR)/nsrel-hook $(SYSCONFDIR)/nsrel/containerd-base-spec.json \
		$(SBINDIR)/nsrel-containerd
	rm -f $(DESTDIR)$(BINDIR)/lsuserns $(DESTDIR)$(BINDIR)/lspidns \
		$(DESTDIR)$(SBINDIR)/nsrel-hook $(DESTDIR)$(SBINDIR)/nsrel-containerd \
		$(DESTDIR)$(MANDIR)/man1/lsuserns.1 $(DESTDIR)$(MANDIR)/man1/lspidns.1 \
		$(DESTDIR)$(MANDIR)/man8/nsrel-hook.8 $(DESTDIR)$(MANDIR)/man8/nsrel-containerd.8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/nsrel-watch.service $(DESTDIR)$(SYSTEMDUNITDIR)/nsrel-nri.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/nsrel-checkpoint.service $(DESTDIR)$(SYSTEMDUNITDIR)/nsrel-checkpoint.timer
	for n in lsuserns lspidns nsrel-hook nsrel-containerd; do \
		rm -f $(DESTDIR)$(BASHCOMPDIR)/$$n $(DESTDIR)$(ZSHCOMPDIR)/_$$n $(DESTDIR)$(FISHCOMPDIR)/$$n.fish; done
	rm -rf $(DESTDIR)$(DATADIR)/nsrel $(DESTDIR)$(DOCDIR)

# A Debian package (dpkg-deb, no debhelper) in $(BIN)/: installs with
# PREFIX=/usr; its maintainer scripts never restart or reconfigure a
# container runtime (prerm warns on removal and stops nsrel's units,
# postinst restarts those that run on upgrade: scripts/deb.sh).
deb:
	BIN=$(BIN) VERSION=$(VERSION) GO=$(GO) ./scripts/deb.sh

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

bench-runtimes: deps
	bench/runtimes/run.sh

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
# Needs root; installs runc and busybox-static first when missing.
# The demo's nsrel-hook and lsuserns are built as make build builds them
# (version and commit in), not by the script.
demo:
	./scripts/deps.sh --demo
	mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/ ./cmd/nsrel-hook ./cmd/lsuserns
	BIN=$(BIN) DEMO_BUILT=1 ./scripts/demo.sh

clean:
	rm -rf $(BIN)
