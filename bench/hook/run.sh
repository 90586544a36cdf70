#!/bin/sh
# Benchmark nsrel-hook (issue 3). Run as root from anywhere:
#
#   bench/hook/run.sh [RUNS]        (default 100 runs per command)
#
# In one hyperfine run it times a full runc lifecycle (`runc run` of a
# busybox `true` container: create, start, wait, delete) with nsrel-hook at
# createRuntime, poststart and poststop, against the same lifecycle with
# /bin/true at those stages, and prints the median ratio (target <= 1.05).
# Then it times the hook alone at createRuntime (target <= 5 ms median)
# and measures its peak RSS with GNU time (target <= 20 MiB).
set -eu

RUNS=${1:-100}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}
RUNC=${RUNC:-$(command -v runc)}
command -v hyperfine >/dev/null || { echo "bench/hook: needs hyperfine (make deps)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/hook: needs root (runc)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/nsrel-bench.XXXXXX)
chmod 711 "$WORK"
SLEEPER=
cleanup() {
	for id in bench-hook bench-true; do "$RUNC" --root "$WORK/state" delete -f "$id" >/dev/null 2>&1 || true; done
	[ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cd "$REPO"
$GO build -o "$WORK/nsrel-hook" ./cmd/nsrel-hook
$GO build -o "$WORK/mkbundle" ./internal/bundle/cmd/mkbundle

# The shipped default config (audit mode) with logs in the work directory.
sed -e "s#/var/log/nsrel/audit.jsonl#$WORK/audit.jsonl#" -e "s#/var/log/nsrel/hook.log#$WORK/hook.log#" \
	config/hook.json >"$WORK/hook.json"
# The shipped runc hooks snippet, pointed at the built hook, and the same
# with /bin/true.
sed -e "s#/usr/local/libexec/nsrel/nsrel-hook#$WORK/nsrel-hook#" -e "s#/etc/nsrel/hook.json#$WORK/hook.json#" \
	config/runc/hooks.json >"$WORK/hooks-nsrel.json"
sed -e "s#/usr/local/libexec/nsrel/nsrel-hook#/bin/true#" config/runc/hooks.json >"$WORK/hooks-true.json"

"$WORK/mkbundle" --userns --hooks "$WORK/hooks-nsrel.json" "$WORK/b-hook" true >/dev/null
"$WORK/mkbundle" --userns --rootfs "$WORK/b-hook/rootfs" --hooks "$WORK/hooks-true.json" "$WORK/b-true" true >/dev/null

echo "== runc lifecycle: nsrel-hook vs /bin/true at createRuntime, poststart, poststop ($RUNS runs each)"
hyperfine -N --warmup 5 --runs "$RUNS" --export-csv "$WORK/lifecycle.csv" \
	-n "runc lifecycle with /bin/true hooks" "$RUNC --root $WORK/state run --bundle $WORK/b-true bench-true" \
	-n "runc lifecycle with nsrel-hook hooks" "$RUNC --root $WORK/state run --bundle $WORK/b-hook bench-hook"
awk -F, 'NR==2 {t=$4} NR==3 {h=$4} END {
	printf "median /bin/true %.2f ms, nsrel-hook %.2f ms, ratio %.3f (target <= 1.05)\n", t*1000, h*1000, h/t }' "$WORK/lifecycle.csv"

# A process in its own user and PID namespaces for the hook to inspect.
unshare --user --map-root-user --pid --fork --kill-child sleep 600 </dev/null >/dev/null 2>&1 &
SLEEPER=$!
sleep 0.2
PID=$(cat "/proc/$SLEEPER/task/$SLEEPER/children" | awk '{print $1}')
printf '{"ociVersion":"1.0.2","id":"bench-alone","status":"creating","pid":%s,"bundle":"%s"}' "$PID" "$WORK/b-hook" >"$WORK/state.json"

echo
echo "== nsrel-hook alone at createRuntime (inspect + policy + locked, fsynced append)"
# hyperfine 1.15 has no --input: the state comes through a shell
# redirection, whose cost hyperfine measures and subtracts.
hyperfine --warmup 10 --runs "$RUNS" --export-csv "$WORK/alone.csv" \
	-n "nsrel-hook createRuntime" "$WORK/nsrel-hook --config $WORK/hook.json createRuntime <$WORK/state.json"
awk -F, 'NR==2 { printf "median %.2f ms (target <= 5 ms)\n", $4*1000 }' "$WORK/alone.csv"

if [ -x /usr/bin/time ]; then
	max=0
	for i in 1 2 3 4 5 6 7 8 9 10; do
		kib=$(/usr/bin/time -f %M "$WORK/nsrel-hook" --config "$WORK/hook.json" createRuntime <"$WORK/state.json" 2>&1 >/dev/null | tail -1)
		[ "$kib" -gt "$max" ] && max=$kib
	done
	echo "peak RSS $max KiB over 10 runs (target <= 20480 KiB)"
else
	echo "peak RSS: /usr/bin/time not installed (apt install time); see BenchmarkHookBinary"
fi

"$WORK/nsrel-hook" audit verify "$WORK/audit.jsonl"
