#!/bin/sh
# in-use.sh HOOK BASESPEC: before nsrel is removed (the Debian package's
# prerm, make uninstall), warns on stderr when a container runtime's
# config still names the hook at HOOK or containerd's base spec at
# BASESPEC: the runtime would run a hook that is gone and fail to start
# every container it names it for. It reads containerd's config.toml and
# its conf.d drop-ins and the OCI hooks.d directories of podman and CRI-O,
# below $NSREL_ROOT (default /: a DESTDIR or dpkg's DPKG_ROOT), leaving
# out TOML comments. It only warns about configs: it exits 0 whatever
# it finds there, and never stops the removal for them.
#
# in-use.sh HOOK BASESPEC CONTAINERD (make uninstall) also looks for
# running processes of CONTAINERD (nsrel-containerd, below $NSREL_ROOT),
# and the units nsrel-nri.service and nsrel-watch.service where systemd
# runs and $NSREL_ROOT is /: a running NRI plugin goes on injecting the
# hook into every container the runtime creates, and once the hook is
# gone the runtime refuses them all. It then says so and exits 1 (the
# caller removes nothing); stop them first. (The Debian package's prerm
# passes no CONTAINERD: it stops the units itself.)
hook=$1
spec=$2
containerd=${3:-}
root=${NSREL_ROOT:-}
root=${root%/}
# A hook entry may name the hook at another path of the same file
# (/sbin on a merged /usr) or escape its slashes (JSON's \/): its name,
# followed by the end of the JSON string, is what is looked for.
name="${hook##*/}\""

# naming STRING FILE...: the FILEs (without $root) that contain STRING
# outside comment lines (# in TOML; JSON has none).
naming() {
	s=$1
	shift
	for f; do
		if [ -f "$f" ] && grep -v '^[[:space:]]*#' "$f" 2>/dev/null | grep -qF -e "$s"; then
			printf '  %s\n' "${f#"$root"}"
		fi
	done
}

hooks=$(naming "$name" "$root"/etc/containers/oci/hooks.d/*.json "$root"/usr/share/containers/oci/hooks.d/*.json \
	"$root"/etc/containerd/config.toml "$root"/etc/containerd/conf.d/*.toml)
specs=$(naming "$spec" "$root"/etc/containerd/config.toml "$root"/etc/containerd/conf.d/*.toml)

if [ -n "$hooks" ]; then
	cat >&2 <<EOF
nsrel: WARNING: these container runtime configs still name $hook,
which is being removed:
$hooks
nsrel: every container these hook entries apply to will FAIL TO START
until you take nsrel's hook out of them (README: "Removing nsrel").
nsrel: (only these places were read: a hooks_dir set elsewhere, other
containerd imports and bundles' config.json may name it too)
EOF
fi
if [ -n "$specs" ]; then
	cat >&2 <<EOF
nsrel: WARNING: containerd's config still names the base runtime spec
$spec:
$specs
nsrel: its CRI (Kubernetes) containers run nsrel's hook and will FAIL TO
START once the hook is gone; once the spec is gone too (dpkg --purge
nsrel deletes it), containerd's CRI plugin FAILS TO LOAD at its next
start. Take base_runtime_spec out and restart containerd first (README:
"Removing nsrel").
EOF
fi
[ -n "$containerd" ] || exit 0

# The running processes whose executable is $root$containerd (the same
# file: its device and inode; or, replaced since by make install, which
# writes a new file, the one the kernel names "PATH (deleted)"), and the
# active units.
# The kernel names the deleted file by its resolved path: a directory
# on the way may be a symlink (/sbin on merged-/usr systems).
# (CDPATH unset: cd would print, and go to, a directory of its own.)
resolved=$(CDPATH='' cd -P -- "$(dirname -- "$root$containerd")" 2>/dev/null && pwd -P) || resolved=$(dirname -- "$root$containerd")
deleted="$resolved/$(basename -- "$containerd") (deleted)"
pids=
for d in /proc/[0-9]*; do
	exe=$(readlink "$d/exe")
	if [ "$d/exe" -ef "$root$containerd" ] || [ "$exe" = "$deleted" ] || [ "$exe" = "$root$containerd (deleted)" ]; then
		pids="$pids ${d#/proc/}"
	fi
done 2>/dev/null
units=
if [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	for u in nsrel-nri.service nsrel-watch.service; do
		if systemctl is-active --quiet "$u" 2>/dev/null; then
			units="$units $u"
		fi
	done
fi
if [ -z "$pids$units" ]; then
	exit 0
fi
cat >&2 <<EOF
nsrel: ERROR: nsrel-containerd still runs:${units:+ units$units}${units:+${pids:+;}}${pids:+ processes$pids of $containerd}.
nsrel: a running NRI plugin (nsrel-containerd nri) goes on injecting
$hook into every container the runtime creates: once the hook is gone,
the runtime FAILS TO START every one of them. Nothing was removed: stop
them first (systemctl disable --now nsrel-nri.service nsrel-watch.service),
then remove nsrel (README: "Removing nsrel").
EOF
exit 1
