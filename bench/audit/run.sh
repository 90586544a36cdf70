#!/bin/sh
# Readers never block writers, and read in bounded memory:
#
#   bench/audit/run.sh [MIB]        (default 300)
#
# It writes an audit log of MIB MiB (bench/audit/genlog), then
#   - measures the peak RSS of `nsrel-hook audit verify` and `audit show`
#     (and --json) on it with GNU time;
#   - times nsrel-hook createRuntime appends to it alone and while an
#     `audit verify` of it runs (bench/audit/latency, random order).
# Run as root (the hook inspects a process).
set -eu
# The binaries as make build makes them: static.
export CGO_ENABLED=0
MIB=${1:-300}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}
WORK=$(mktemp -d /tmp/nsrel-audit-bench.XXXXXX)
SLEEPER=
cleanup() {
	[ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
cd "$REPO"
$GO build -o "$WORK/" ./cmd/nsrel-hook ./bench/audit/genlog ./bench/audit/latency
"$WORK/genlog" -mb "$MIB" "$WORK/audit.jsonl"
printf '{"version":1,"audit_log":"%s","rotate_bytes":0,"default":{"mode":"audit","rules":{"require_user_namespace":true}}}\n' "$WORK/audit.jsonl" >"$WORK/hook.json"
echo "log: $(stat -c %s "$WORK/audit.jsonl") bytes, $(wc -l <"$WORK/audit.jsonl") records; $(nproc) CPUs; $(date -u +%FT%TZ)"
for args in "audit verify" "audit show" "audit show --json"; do
	/usr/bin/time -f "%M KiB peak RSS, %e s: nsrel-hook $args" "$WORK/nsrel-hook" --config "$WORK/hook.json" $args >/dev/null
done
sleep 600 &
SLEEPER=$!
"$WORK/latency" -hook "$WORK/nsrel-hook" -config "$WORK/hook.json" -pid "$SLEEPER" -rounds "${ROUNDS:-10}" -block "${BLOCK:-10}"
