#!/bin/sh
# Start-up of lsuserns and lspidns, before and after a change, in one run:
#
#   bench/startup/run.sh [ROUNDS]     (default 200)
#
# BASELINE (a git revision, default 24c7aec: the tree before the
# re-packaging of issue 9) is built next to the working tree, and
# bench/startup times an empty Go program (the floor), `lsuserns --help`,
# `lsuserns --no-containers` and `lspidns --no-containers` of both builds
# in random order each round.
# Run it as root on an idle host: --no-containers scans every process.
set -eu
# The binaries as make build makes them: static.
export CGO_ENABLED=0
ROUNDS=${1:-200}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}
BASELINE=${BASELINE:-24c7aec}
WORK=$(mktemp -d /tmp/nsrel-startup-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
cd "$REPO"
mkdir "$WORK/old-src" "$WORK/old" "$WORK/new"
git archive "$BASELINE" | tar -x -C "$WORK/old-src"
(cd "$WORK/old-src" && $GO build -o "$WORK/old/" ./cmd/lsuserns ./cmd/lspidns)
$GO build -o "$WORK/new/" ./cmd/lsuserns ./cmd/lspidns
# The floor: an empty static Go program, the same program in both builds.
$GO build -o "$WORK/old/go-noop" ./bench/noop
$GO build -o "$WORK/new/go-noop" ./bench/noop
# Every binary timed, written the same way (bench/rewrite.sh).
"$REPO/bench/rewrite.sh" "$WORK"/old/* "$WORK"/new/*
$GO build -o "$WORK/startup" ./bench/startup
echo "baseline $BASELINE, working tree $(git describe --always --dirty), $ROUNDS rounds, $(nproc) CPUs, $(ls /proc | grep -c '^[0-9]') processes"
for b in old new; do
	printf '%s: %s package inits, %s bytes\n' "$b" \
		"$(GODEBUG=inittrace=1 "$WORK/$b/lsuserns" --help 2>&1 >/dev/null | grep -c '^init ')" \
		"$(stat -c %s "$WORK/$b/lsuserns")"
done
"$WORK/startup" -old "$WORK/old" -new "$WORK/new" -rounds "$ROUNDS"
