#!/bin/sh
# nsrel demo (the README's main job). Run as root from anywhere:
#
#   scripts/demo.sh            (make demo)
#
# It builds nsrel-hook and lsuserns into $BIN (default ./bin), makes a
# busybox bundle, installs nsrel-hook in it through the shipped runc hooks
# snippet with the shipped example enforcing policy, then
#   0. turns on forward-secure sealing (audit seal-init: the verification
#      key is printed once);
#   1. runs a container in its own user namespace: allowed and recorded;
#   2. tries one without a user namespace: refused by the policy;
#   3. prints the user namespace tree with the container on it;
#   4. stops the container, shows the audit history and verifies the chain
#      with the key and the checkpoints;
#   5. forges the log as root on the node could (the refusal turned into an
#      allow, every hash recomputed): the chain alone passes, the key and
#      the checkpoints catch it.
# Everything it creates (containers, runc state, bundles, the audit log)
# lives in one temporary directory and is removed on exit, even on
# failure or Ctrl-C. KEEP=1 keeps that directory for a look afterwards.
# No daemon is needed: plain runc.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$REPO/bin}
GO=${GO:-go}
# Static binaries, as make build makes them.
export CGO_ENABLED=0
case $BIN in /*) ;; *) BIN=$REPO/$BIN ;; esac

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (runc creates namespaces; the hook inspects them)" >&2
	exit 1
fi
RUNC=$(command -v runc || true)
[ -n "$RUNC" ] || { echo "demo: needs runc (make deps)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "demo: needs /bin/busybox (apt install busybox-static; make deps)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/nsrel-demo.XXXXXX)
chmod 711 "$WORK" # the container's mapped root must reach its rootfs
OK=nsrel-demo-ok-$$
BAD=nsrel-demo-refused-$$
cleanup() {
	status=$?
	for id in "$OK" "$BAD"; do
		"$RUNC" --root "$WORK/state" delete --force "$id" >/dev/null 2>&1 || true
	done
	if [ "${KEEP:-}" = 1 ]; then
		echo "demo: kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then
	step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	step() { printf '\n== %s\n' "$*"; }
fi
run() { printf '$ %s\n' "$*"; "$@"; }

step "Build"
cd "$REPO"
mkdir -p "$BIN"
HAVE_LSUSERNS=
if [ "${DEMO_BUILT:-}" = 1 ]; then
	# make demo built them as make build does (version and commit in).
	echo "(make built $BIN/nsrel-hook and $BIN/lsuserns)"
	[ -x "$BIN/lsuserns" ] && HAVE_LSUSERNS=1
else
	run $GO build -o "$BIN/" ./cmd/nsrel-hook
	if [ -d cmd/lsuserns ]; then
		run $GO build -o "$BIN/" ./cmd/lsuserns && HAVE_LSUSERNS=1
	fi
fi
run $GO build -o "$WORK/mkbundle" ./internal/bundle/cmd/mkbundle
run $GO build -o "$WORK/forge" ./internal/forge/cmd/forge

step "Install nsrel-hook with the example enforcing policy (config/hook-enforce.json)"
# The shipped files name the install paths /usr/local/sbin/nsrel-hook
# and /etc/nsrel/hook.json; the demo points them at $BIN and $WORK instead.
# Everything the config writes goes to $WORK; checkpoints to a file only,
# after every record (the shipped config: every 100 records or 5 minutes).
sed -e "s#/var/log/nsrel/#$WORK/#g" -e "s#/var/lib/nsrel/#$WORK/#g" -e 's#"unix:///dev/log"##' \
	-e 's#"every_records": 100#"every_records": 1#' \
	config/hook-enforce.json >"$WORK/hook.json"
sed -e "s#/usr/local/sbin/nsrel-hook#$BIN/nsrel-hook#" -e "s#/etc/nsrel/hook.json#$WORK/hook.json#" \
	config/runc/hooks.json >"$WORK/hooks.json"
run "$BIN/nsrel-hook" policy check "$WORK/hook.json"

step "0. Forward-secure sealing: the key on the node evolves with every record"
run "$BIN/nsrel-hook" --config "$WORK/hook.json" audit seal-init | (umask 077 && tee "$WORK/seal-init.out")
# On a real node the key goes off the node at once; the demo keeps it here,
# readable by root only (verify warns of a key file others can read).
(umask 077 && grep '^nsrel-seal-v1:' "$WORK/seal-init.out" >"$WORK/verify.key")

step "1. A container in its own user namespace: allowed and recorded"
"$WORK/mkbundle" --userns --hooks "$WORK/hooks.json" "$WORK/ok" sleep 600 >/dev/null
# Detached runc needs stdio that outlives it: /dev/null, not a pipe.
run "$RUNC" --root "$WORK/state" run --detach --bundle "$WORK/ok" "$OK" </dev/null >/dev/null
PID=$("$RUNC" --root "$WORK/state" state "$OK" | sed -n 's/^ *"pid": *\([0-9]*\),*$/\1/p')
echo "container $OK runs as host PID $PID in $(readlink /proc/"$PID"/ns/user) (uid_map: $(tr -s ' ' <"/proc/$PID/uid_map" | sed 's/^ //'))"

step "2. A container without a user namespace: refused by the policy"
"$WORK/mkbundle" --rootfs "$WORK/ok/rootfs" --hooks "$WORK/hooks.json" "$WORK/bad" sleep 600 >/dev/null
printf '$ %s\n' "$RUNC --root $WORK/state run --detach --bundle $WORK/bad $BAD"
if "$RUNC" --root "$WORK/state" run --detach --bundle "$WORK/bad" "$BAD" </dev/null >/dev/null 2>"$WORK/bad.err"; then
	echo "demo: the container without a user namespace was NOT refused" >&2
	exit 1
fi
echo "refused; runc said:"
sed 's/^/  /' "$WORK/bad.err"
if "$RUNC" --root "$WORK/state" state "$BAD" >/dev/null 2>&1; then
	echo "demo: the refused container still exists" >&2
	exit 1
fi
echo "no container $BAD is left"

step "3. The user namespace tree, with the container on it"
if [ -n "$HAVE_LSUSERNS" ]; then
	run env NSREL_RUNTIME_ROOTS="runc=$WORK/state" "$BIN/lsuserns" --container "$OK"
else
	echo "(cmd/lsuserns is not in this checkout yet; skipped)"
fi

step "4. Stop the container, show the audit history, verify the chain, the seals and the checkpoints"
run "$RUNC" --root "$WORK/state" delete --force "$OK"
run "$BIN/nsrel-hook" audit show "$WORK/audit.jsonl"
run "$BIN/nsrel-hook" audit verify --key @"$WORK/verify.key" --checkpoints "$WORK/checkpoints.jsonl" "$WORK/audit.jsonl"

step "5. Root on the node rewrites the log: the refusal becomes an allow, every hash recomputed"
cp "$WORK/audit.jsonl" "$WORK/forged.jsonl"
run "$WORK/forge" "$WORK/forged.jsonl" '"verdict":"deny"' '"verdict":"allow"'
echo "-- the hash chain alone cannot tell:"
run "$BIN/nsrel-hook" audit verify "$WORK/forged.jsonl"
echo "-- the verification key, kept off the node, can:"
if "$BIN/nsrel-hook" audit verify --key @"$WORK/verify.key" "$WORK/forged.jsonl"; then
	echo "demo: the forged log passed with the key" >&2
	exit 1
fi
echo "-- and so can the checkpoints that left the node:"
if "$BIN/nsrel-hook" audit verify --checkpoints "$WORK/checkpoints.jsonl" "$WORK/forged.jsonl"; then
	echo "demo: the forged log passed the checkpoints" >&2
	exit 1
fi

echo
echo "demo: done (the audit log was $WORK/audit.jsonl; KEEP=1 keeps it)"
