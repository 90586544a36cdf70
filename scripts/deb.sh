#!/usr/bin/env bash
# Builds the nsrel Debian package with dpkg-deb (no debhelper, no source
# package): `make install` into a staging root with PREFIX=/usr, plus the
# control files. The package ships the units and the hooks.d files
# without enabling anything; installing, upgrading or purging it never
# restarts or reconfigures a container runtime. Its two maintainer
# scripts: prerm, on removal, warns when a runtime's config still names
# the hook or the base spec (scripts/in-use.sh; the removal goes on) and
# stops nsrel's units; postinst, on upgrade, has systemd reread the units
# and restarts those that run. Purging keeps the audit log
# (/var/log/nsrel, /var/lib/nsrel): it is evidence.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
VERSION=${VERSION:-0.1.0}
GO=${GO:-go}
arch=$(dpkg --print-architecture)
work=$(realpath -m "$BIN/deb")
root="$work/nsrel_${VERSION}_$arch"
rm -rf "$work"
mkdir -p "$root/DEBIAN"
# Stripped (-s -w), as Debian ships binaries; not PIE (lintian warns
# hardening-no-pie): the hook's start-up on every container start is
# measured without it (docs/BENCHMARKS.md).
make --no-print-directory install BIN="$work/build" GO="$GO" VERSION="$VERSION" DESTDIR="$root" EXTRA_LDFLAGS="-s -w" \
	PREFIX=/usr SYSTEMDUNITDIR=/lib/systemd/system ZSHCOMPDIR=/usr/share/zsh/vendor-completions >/dev/null
doc="$root/usr/share/doc/nsrel"
# Debian wants compressed man pages and changelog, and the licence terms.
gzip -9n "$root"/usr/share/man/man*/*
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: nsrel
Source: https://github.com/nsrel/nsrel

Files: *
Copyright: 2026 The nsrel authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can
 be found in the file /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
printf 'nsrel (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- nsrel maintainers <nsrel@users.noreply.github.com>  %s\n' \
	"$VERSION" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo a tarball)" "$date" | gzip -9n >"$doc/changelog.gz"
# The docs are in the package for the units' Documentation= links; the
# README and the pages are Markdown.
chmod -R u+rwX,go+rX,go-w "$root"
# Go binaries are static on purpose (make build: CGO_ENABLED=0; the hook
# starts 0.9 ms faster at every container start without the dynamic
# loader); lintian asks for an override when that is intended.
mkdir -p "$root/usr/share/lintian/overrides"
cat >"$root/usr/share/lintian/overrides/nsrel" <<OVERRIDES
# Static Go binaries: no dynamic loader at each container start.
nsrel: statically-linked-binary [usr/bin/lspidns]
nsrel: statically-linked-binary [usr/bin/lsuserns]
nsrel: statically-linked-binary [usr/sbin/nsrel-containerd]
nsrel: statically-linked-binary [usr/sbin/nsrel-hook]
OVERRIDES
# The admin's config: dpkg keeps local changes on upgrade.
printf '%s\n' /etc/nsrel/hook.json /etc/nsrel/hook-enforce.json /etc/nsrel/hook-enforce-cri.json /etc/nsrel/containerd-base-spec.json >"$root/DEBIAN/conffiles"
# Maintainer scripts. Nothing runs against systemd in a root dpkg was
# pointed at (DPKG_ROOT) or on a system without systemd.
units="nsrel-watch.service nsrel-nri.service nsrel-checkpoint.timer"
{
	cat <<PRERM
#!/bin/sh
# nsrel prerm: on removal, warn when a container runtime still names the
# hook or containerd's base spec (every container it applies to would
# fail to start), and stop nsrel's units. The removal goes on regardless.
set -e
if [ "\$1" = remove ]; then
	NSREL_ROOT="\${DPKG_ROOT:-}" sh -s /usr/sbin/nsrel-hook /etc/nsrel/containerd-base-spec.json <<'INUSE' || true
PRERM
	sed 1d scripts/in-use.sh
	cat <<PRERM
INUSE
	if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		deb-systemd-invoke stop $units >/dev/null || true
	fi
fi
exit 0
PRERM
} >"$root/DEBIAN/prerm"
cat >"$root/DEBIAN/postinst" <<POSTINST
#!/bin/sh
# nsrel postinst: on upgrade, systemd rereads the units and those that
# run restart with the new binaries; a first install enables and starts
# nothing.
set -e
if [ "\$1" = configure ] && [ -n "\$2" ] && [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
	deb-systemd-invoke try-restart $units >/dev/null || true
fi
exit 0
POSTINST
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
glibc=$(objdump -T "$root"/usr/bin/lsuserns "$root"/usr/sbin/nsrel-* 2>/dev/null |
	grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1 || true)
# The binaries are static (make build): no Depends unless one links libc.
# Suggests: the runtimes the hook serves; graphviz for lsuserns and
# lspidns --format svg and html (they run dot); rsyslog-relp and
# logrotate for the example configs in /usr/share/nsrel/rsyslog and
# logrotate.
depends=
[ -n "$glibc" ] && depends="Depends: libc6 (>= $glibc)"
cat >"$root/DEBIAN/control" <<CONTROL
Package: nsrel
Version: $VERSION
Architecture: $arch
Maintainer: nsrel maintainers <nsrel@users.noreply.github.com>
Installed-Size: $size
${depends:+$depends
}Suggests: runc | crun, podman, containerd, graphviz, rsyslog-relp, logrotate
Section: admin
Priority: optional
Homepage: https://github.com/nsrel/nsrel
Description: Linux namespace relationships, visible and auditable
 nsrel asks the kernel (ioctl_ns(2)) which user namespace owns a
 namespace, what its parent is and which UID created it, and shows the
 user and PID namespace hierarchies of the host as trees with the
 containers on them (lsuserns, lspidns).
 .
 nsrel-hook, an OCI runtime hook for runc, crun, podman, CRI-O and
 containerd, records each container's namespace ancestry in a
 tamper-evident audit log and can refuse containers that break a policy.
 nsrel-containerd records what containerd starts without the hook and
 checks Kubernetes containers through NRI. Nothing is enabled on
 install: see /usr/share/doc/nsrel/README.md.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/"*
chmod 0755 "$root/DEBIAN/prerm" "$root/DEBIAN/postinst"
dpkg-deb --root-owner-group -Zxz --build "$root" "$BIN/" >/dev/null
echo "$BIN/nsrel_${VERSION}_$arch.deb"
