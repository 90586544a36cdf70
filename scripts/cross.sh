#!/usr/bin/env bash
# Portability check (part of `make lint`): nsrel builds and vets for every
# Linux architecture container hosts run on, and a build for another
# system stops with one clear message (internal/linuxonly) instead of a
# cascade of undefined names. The first run for an architecture compiles
# the whole dependency graph for it (about a minute each); later runs are
# cached.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
status=0
for arch in amd64 arm64 386 arm riscv64 ppc64le s390x; do
	if ! out=$(GOOS=linux GOARCH=$arch $GO vet ./... 2>&1); then
		echo "cross: GOOS=linux GOARCH=$arch go vet ./... failed:" >&2
		echo "$out" >&2
		status=1
	fi
done
want='nsrel builds only for Linux (GOOS=linux)'
for os in darwin windows freebsd; do
	if out=$(GOOS=$os GOARCH=amd64 $GO build ./... 2>&1); then
		echo "cross: GOOS=$os go build ./... succeeded; it must stop with: $want" >&2
		status=1
		continue
	fi
	# Only the package header and the one message, nothing else.
	other=$(echo "$out" | grep -v '^# github.com/nsrel/nsrel/internal/linuxonly$' | grep -v '^go: downloading ' | grep -vF "$want" || true)
	if [ -n "$other" ] || ! echo "$out" | grep -qF "$want"; then
		echo "cross: GOOS=$os go build ./... must fail with only \"$want\"; it said:" >&2
		echo "$out" >&2
		status=1
	fi
done
exit $status
