#!/bin/sh
# in-use.sh HOOK BASESPEC: before nsrel is removed (the Debian package's
# prerm, make uninstall), warns on stderr when a container runtime's
# config still names the hook at HOOK or containerd's base spec at
# BASESPEC: the runtime would run a hook that is gone and fail to start
# every container it names it for. It reads containerd's config.toml and
# its conf.d drop-ins and the OCI hooks.d directories of podman and CRI-O,
# below $NSREL_ROOT (default /: a DESTDIR or dpkg's DPKG_ROOT). It only
# warns: it exits 0 whatever it finds, and never stops the removal.
hook=$1
spec=$2
root=${NSREL_ROOT:-}
root=${root%/}

# naming STRING FILE...: the FILEs (without $root) that contain STRING.
naming() {
	s=$1
	shift
	for f; do
		if [ -f "$f" ] && grep -qF -e "$s" "$f" 2>/dev/null; then
			printf '  %s\n' "${f#"$root"}"
		fi
	done
}

containerd="$root/etc/containerd/config.toml $root/etc/containerd/conf.d/*.toml"
hooksd="$root/etc/containers/oci/hooks.d/*.json $root/usr/share/containers/oci/hooks.d/*.json"
# shellcheck disable=SC2086 # the globs are meant to expand
hooks=$(naming "$hook" $hooksd $containerd)
# shellcheck disable=SC2086
specs=$(naming "$spec" $containerd)

if [ -n "$hooks" ]; then
	cat >&2 <<EOF
nsrel: WARNING: these container runtime configs still name $hook,
which is being removed:
$hooks
nsrel: every container these hook entries apply to will FAIL TO START
until you take nsrel's hook out of them (README: "Removing nsrel").
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
exit 0
