#!/usr/bin/env bash
# Benchmark lsuserns and lspidns against lsns(8) and the /proc floor on a
# host-like load, in one run per size. Needs root, Go, hyperfine and
# util-linux (lsns, unshare).
#
#   bench/ls/run.sh                 # 2000, 5000, 10000 and 20000 processes
#   bench/ls/run.sh 2000            # one size
#   RUNS=50 bench/ls/run.sh 5000    # more runs per command
#   ROUNDS=10 bench/ls/run.sh        # spread the runs over more alternating rounds
#
# lsuserns and lspidns are timed with every discovery source on (threads,
# fds, bind mounts) and --no-containers, since the container lookup is not
# discovery; one more row shows lsuserns as it runs by default, with the
# container sources main.go wires in, and one lsuserns without reading the
# processes' namespaces of other types for their owners (--no-other-types).
#
# For each size it starts bench/ls/load (SIZE processes, 150 user
# namespaces in chains up to 8 deep, every third chain with PID
# namespaces, 4 namespaces held only by bind mounts, 4 only by fds, 1000
# threads in processes of 50), times
# the commands with hyperfine, measures peak RSS with bench/ls/rss, prints
# a table of medians and stops the load (all its processes and mounts).
set -euo pipefail
# The binaries as make build makes them: static.
export CGO_ENABLED=0

cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(2000 5000 10000 20000)
runs=${RUNS:-30}
rounds=${ROUNDS:-5}
userns=${USERNS:-150}

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (the load makes bind mounts)" >&2; exit 2; }
for c in hyperfine lsns unshare; do
	command -v "$c" >/dev/null || { echo "run.sh: needs $c" >&2; exit 2; }
done

work=$(mktemp -d /tmp/nsrel-bench.XXXXXX)
load_pid=
stop_load() {
	if [ -n "$load_pid" ]; then
		kill -TERM "$load_pid" 2>/dev/null || true
		wait "$load_pid" 2>/dev/null || true
		load_pid=
	fi
}
trap 'stop_load; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

go build -o "$work/" ./cmd/lsuserns ./cmd/lspidns ./bench/ls/floor ./bench/ls/load ./bench/ls/rss ./bench/ls/summary
bin=$work

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r), $(nproc) CPUs, $(lsns --version), hyperfine $(hyperfine --version | cut -d' ' -f2), $runs runs in $rounds rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for n in "${sizes[@]}"; do
	before=$(ls /proc | grep -c '^[0-9]')
	add=$((n - before))
	[ "$add" -gt 0 ] || add=0
	started=$(date +%s.%N)
	"$bin/load" -procs "$add" -userns "$userns" -dir "$work" >"$work/load.out" 2>&1 &
	load_pid=$!
	for _ in $(seq 6000); do # up to 10 minutes: 20k processes start slowly on a loaded VM
		grep -q '^ready' "$work/load.out" && break
		kill -0 "$load_pid" 2>/dev/null || { cat "$work/load.out" >&2; exit 1; }
		sleep 0.1
	done
	grep -q '^ready' "$work/load.out" || { echo "run.sh: load not ready" >&2; exit 1; }
	procs=$(ls /proc | grep -c '^[0-9]')
	tasks=$({ ls -d /proc/[0-9]*/task/[0-9]* 2>/dev/null || true; } | wc -l) # ls fails on a process that exits meanwhile
	echo "# $n: $procs processes, $tasks tasks, load ready after $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; $(grep MemAvailable /proc/meminfo | tr -s ' '); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	"$bin/lsuserns" >"$work/user.txt" 2>"$work/user.err" || { echo "run.sh: lsuserns failed:" >&2; cat "$work/user.err" >&2; exit 1; }
	"$bin/lspidns" >"$work/pid.txt" 2>"$work/pid.err" || { echo "run.sh: lspidns failed:" >&2; cat "$work/pid.err" >&2; exit 1; }
	nuser=$(wc -l <"$work/user.txt")
	npid=$(wc -l <"$work/pid.txt")

	# Alternating rounds: load from elsewhere drifts, so every command
	# gets runs in every round; medians are taken over all rounds.
	per=$(( (runs + rounds - 1) / rounds ))
	for r in $(seq "$rounds"); do
		# -i: a run that fails (a command racing with processes that
		# come and go) is counted by summary, not fatal for the table.
		hyperfine -N -i --style none --warmup 1 --runs "$per" --export-json "$work/$n.$r.json" \
			-n lsuserns "$bin/lsuserns --no-containers" \
			-n "lsuserns --no-other-types" "$bin/lsuserns --no-containers --no-other-types" \
			-n lspidns "$bin/lspidns --no-containers" \
			-n "lsuserns (with container lookup)" "$bin/lsuserns" \
			-n "lsns --tree=owner -t user" "lsns --tree=owner -t user" \
			-n "lsns --tree=parent -t pid" "lsns --tree=parent -t pid" \
			-n floor "$bin/floor" >"$work/hyperfine.log" 2>&1 ||
			{ echo "run.sh: hyperfine failed:" >&2; cat "$work/hyperfine.log" >&2; exit 1; }
	done

	rss() { # peak RSS in KiB, max of 3 runs
		local m=0 r
		for _ in 1 2 3; do
			r=$("$bin/rss" "$@" 2>/dev/null | tail -1) || r=0
			[ "${r:-0}" -gt "$m" ] && m=$r
		done
		echo "$m"
	}
	ru=$(rss "$bin/lsuserns" --no-containers); rp=$(rss "$bin/lspidns" --no-containers)
	rl=$(rss lsns --tree=owner -t user)
	echo "# $n: timed; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	stop_load

	"$bin/summary" -procs "$procs" -userns "$nuser" -pidns "$npid" \
		-rss-user "$ru" -rss-pid "$rp" -rss-lsns "$rl" "$work/$n".*.json
done
