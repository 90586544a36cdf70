#!/bin/sh
# What nsrel costs a container's lifecycle on podman and containerd 2.4
# (issue 14). Run as root from anywhere:
#
#   bench/runtimes/run.sh [podman|ctr|cri|all]     (default all)
#
#   podman  `podman run --rm` of a busybox `true` container: no hooks, the
#           shipped config/hooks.d files, nsrel-hook at all three stages,
#           the shipped files running an empty Go program (default 100
#           rounds)
#   ctr     `ctr run --rm` on containerd 2.4 with the shipped
#           config/containerd/base-runtime-spec.json without its hooks, as
#           shipped, with nsrel-hook at all three stages and with an empty
#           Go program at the shipped stages; the Go client's lifecycle
#           without and with containerd.WithHook, and WithHook running the
#           empty Go program (default 100 rounds)
#   cri     a crictl pod lifecycle (runp, create, start, stop, rm, stopp,
#           rmp) on four containerd 2.4 daemons: without nsrel, with
#           `nsrel-containerd nri` injecting nsrel-hook, with the shipped
#           base runtime spec, and with that spec running an empty Go
#           program (default 60 rounds)
#
# Environment: ROUNDS (rounds per benchmark), BLOCK (timed runs per
# variant and round, default 3, after one uncounted warm-up run), GO.
#
# Each round runs the variants in a new random order; a variant's value
# for the round is the median of its block. The table gives per variant
# the median over the rounds, the ratio of the medians and the median of
# the per-round ratios against the same lifecycle without nsrel, and the
# target (<= 1.03). The empty Go program's rows are the floor of any hook
# written in Go (the runtime's fork and exec, Go's start-up). The hook's config is config/hook.json with its logs
# in the temporary work directory, sealing (audit seal-init) and
# checkpoints on; the hook files are read from config/ at run time. The
# benchmarks are bench/runtimes/*_test.go; every daemon, storage, runtime
# root and socket is private and below the work directory, which the
# exit trap takes down (processes, mounts, cgroups) even on Ctrl-C.
set -eu
# The binaries as make build makes them: static.
export CGO_ENABLED=0

WHAT=${1:-all}
case $WHAT in
podman) BENCH='^BenchmarkPodman$' ;;
ctr) BENCH='^BenchmarkCtr$' ;;
cri) BENCH='^BenchmarkCRI$' ;;
all) BENCH='^Benchmark(Podman|Ctr|CRI)$' ;;
*) echo "usage: bench/runtimes/run.sh [podman|ctr|cri|all]" >&2; exit 2 ;;
esac
REPO=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}
TOOLS=${NSREL_TOOLS:-$HOME/.cache/nsrel/tools}
need() { echo "bench/runtimes: needs $1 (make deps)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/runtimes: needs root" >&2; exit 1; }
command -v runc >/dev/null || need runc
[ -x /bin/busybox ] || need "/bin/busybox (busybox-static)"
case $WHAT in podman | all) command -v podman >/dev/null || need podman ;; esac
case $WHAT in ctr | cri | all)
	for f in containerd containerd-shim-runc-v2 ctr; do
		[ -x "$TOOLS/containerd-v2.4.2/$f" ] || need "containerd v2.4.2 ($TOOLS/containerd-v2.4.2/$f)"
	done ;;
esac
case $WHAT in cri | all) [ -x "$TOOLS/crictl-v1.37.0/crictl" ] || need "crictl ($TOOLS/crictl-v1.37.0/crictl)" ;; esac

WORK=$(mktemp -d /tmp/nsrel-rt.XXXXXX)
# Containers with a user namespace of their own must traverse it.
chmod 711 "$WORK"
# The benchmarks clean up after themselves; this catches what a killed
# run left: processes naming the work directory (daemons, shims, conmon,
# the NRI plugin), the processes of the cgroups below it, its mounts.
cleanup() {
	trap - EXIT INT TERM
	# One grep over every command line: the machine may run thousands of
	# processes (the tree benchmarks), too many for a fork per process.
	# The pattern, WORK/ with its dot as [.], does not match grep's own.
	find /proc -mindepth 2 -maxdepth 2 -name cmdline -path '/proc/[0-9]*' -exec grep -lsa "$(echo "$WORK" | sed 's/[.]/[.]/g')/" {} + 2>/dev/null |
		while read -r f; do f=${f#/proc/}; [ "${f%/cmdline}" = $$ ] || kill -KILL "${f%/cmdline}" 2>/dev/null || true; done
	cgroups=
	for d in "$WORK"/nc* "$WORK"/nsp*; do
		[ -e "$d" ] || continue
		for top in /sys/fs/cgroup/nsrel-*-"${d##*/}" /sys/fs/cgroup/*/nsrel-*-"${d##*/}"; do
			[ -d "$top" ] && cgroups="$cgroups $top"
		done
	done
	for top in $cgroups; do
		find "$top" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
	done
	sleep 0.5
	awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	for top in $cgroups; do find "$top" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$REPO"
$GO test -c -o "$WORK/runtimes.test" ./bench/runtimes/
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(podman --version 2>/dev/null || true); $("$TOOLS/containerd-v2.4.2/containerd" --version 2>/dev/null | cut -d' ' -f1,3 || true); $(runc --version | head -1)"
[ -n "${ROUNDS:-}" ] && export NSREL_BENCH_ROUNDS="$ROUNDS"
[ -n "${BLOCK:-}" ] && export NSREL_BENCH_BLOCK="$BLOCK"
# From the package directory, as go test runs it; every temporary
# directory (the built commands, daemons, storage) below the work directory.
cd "$REPO/bench/runtimes"
# On Ctrl-C the benchmark stops, prints the rounds it has and cleans up;
# the filter ignores the signal so that the table still gets through.
rc=0
{ NSREL_BENCH_RUNTIMES=1 TMPDIR=$WORK "$WORK/runtimes.test" -test.run '^$' -test.bench "$BENCH" -test.benchtime 1x -test.timeout 0 || echo $? >"$WORK/rc"; } |
	(trap '' INT; grep -v -e '^goos:' -e '^goarch:' -e '^pkg:' -e '^cpu:' -e '^PASS$' -e '^Benchmark[A-Za-z]*-[0-9]*[[:space:]]*1[[:space:]]')
[ -f "$WORK/rc" ] && rc=$(cat "$WORK/rc")
exit "$rc"
