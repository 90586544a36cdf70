#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian packages (runc,
# crun, podman, containerd 1.6, busybox-static, util-linux tools, uidmap,
# rsyslog and rsyslog-relp for the shipping tests, logrotate, hyperfine and GNU time for the
# benchmarks, systemd-analyze, graphviz, chromium, lintian,
# libnss-extrausers, zsh, fish, man-db, prometheus for promtool,
# systemd-journal-remote) and
# containerd v2, crictl, kustomize and staticcheck built from the Go module proxy into a cache
# directory that survives between runs ($NSREL_TOOLS, default
# ~/.cache/nsrel/tools). Safe to run again: it only installs what is absent.
# With --demo, only what `make demo` needs: runc and busybox-static.
set -euo pipefail

demo_only=false
case ${1:-} in
--demo) demo_only=true ;;
"") ;;
*) echo "deps: unknown argument ${1} (use --demo or nothing)" >&2; exit 2 ;;
esac

NSREL_TOOLS=${NSREL_TOOLS:-$HOME/.cache/nsrel/tools}
CONTAINERD2_VERSION=v2.4.2
CRICTL_VERSION=v1.37.0

need_apt=()
# A bare name is looked up on PATH; never test it as a relative path: run
# from the repository, "containerd" is the containerd/ directory, which
# [ -x ] accepts, and Debian's containerd was then never installed.
have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
have runc || need_apt+=(runc)
installed busybox-static || need_apt+=(busybox-static)
if ! $demo_only; then
have crun || need_apt+=(crun)
have podman || need_apt+=(podman)
# The tests start Debian's containerd 1.6 as /usr/bin/containerd.
installed containerd && [ -x /usr/bin/containerd ] || need_apt+=(containerd)
have unshare || need_apt+=(util-linux)
have lsns || need_apt+=(util-linux)
have newuidmap || need_apt+=(uidmap)
have hyperfine || need_apt+=(hyperfine)
# strace injects system call failures (a failing fdatasync) into the hook.
have strace || need_apt+=(strace)
# A C program churns its threads (one at a time, its main thread exited)
# at the hook's inspection: Go's runtime keeps threads of its own.
have gcc || need_apt+=(gcc)
installed libc6-dev || need_apt+=(libc6-dev)
# iptables and ip drop a checkpoint's packets in a private network
# namespace (TestSendTCPRefusedSender). In /usr/sbin: ask dpkg.
installed iptables || need_apt+=(iptables)
installed iproute2 || need_apt+=(iproute2)
[ -x /usr/bin/time ] || need_apt+=(time)
# systemd: systemd-analyze verifies the shipped units; systemd-journald
# and journalctl run in the journald tests (TestShippedRsyslogJournald);
# systemd itself boots as PID 1 of private namespaces, driven by
# systemctl, to run the shipped units (TestShippedUnitsUnderSystemd).
have systemd-analyze && [ -x /lib/systemd/systemd-journald ] && have journalctl &&
	[ -x /lib/systemd/systemd ] && have systemctl || need_apt+=(systemd)
# The shipping tests start private rsyslogd daemons (internal/rsyslogtest):
# they need the binary and its modules, not a system logger. rsyslogd is
# in /usr/sbin, which a user's PATH may lack: ask dpkg.
installed rsyslog || need_apt+=(rsyslog)
# The shipped logrotate config is run by its test.
have logrotate || need_apt+=(logrotate)
# ... and its RELP modules (with TLS): the shipped configs forward over
# RELP (docs/observability.md, "Shipping records and checkpoints").
installed rsyslog-relp || need_apt+=(rsyslog-relp)
# The pictures are rendered for real: Graphviz's dot, and headless
# Chromium for the HTML report (fonts-dejavu-core so text has glyphs).
have dot || need_apt+=(graphviz)
have chromium || need_apt+=(chromium)
installed fonts-dejavu-core || need_apt+=(fonts-dejavu-core)
# The Debian package is checked with lintian; user names through NSS are
# tested with the extrausers module.
have lintian || need_apt+=(lintian)
have dpkg-deb || need_apt+=(dpkg)
installed libnss-extrausers || need_apt+=(libnss-extrausers)
# The generated completions are checked by the shells they are for, the
# man pages by man(1).
have zsh || need_apt+=(zsh)
have fish || need_apt+=(fish)
have man || need_apt+=(man-db)
# The metrics are checked with promtool (Debian's prometheus package);
# the journal encoder against systemd-journal-remote.
have promtool || need_apt+=(prometheus)
[ -x /lib/systemd/systemd-journal-remote ] || need_apt+=(systemd-journal-remote)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing ${need_apt[*]}; run as root (or: sudo apt-get install ${need_apt[*]})" >&2
		exit 1
	fi
	echo "deps: installing ${need_apt[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
	# On a systemd machine rsyslog's postinst enables and starts
	# rsyslog.service. That daemon does not take /dev/log (journald holds
	# it; rsyslog reads the journal's syslog.socket), but it is a system
	# logger nobody asked for, copying the machine's messages into
	# /var/log: stop and disable it (only when this run installed it).
	# Without systemd, Debian 12's package has no init script and starts
	# nothing, so nothing of it holds /dev/log either.
	# Debian's prometheus package enables and starts a Prometheus server
	# on a systemd machine; the tests need promtool only.
	if [[ " ${need_apt[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
		systemctl disable --now prometheus.service >/dev/null 2>&1 ||
			echo "deps: could not stop and disable prometheus.service; the tests need only promtool" >&2
	fi
	if [[ " ${need_apt[*]} " == *" rsyslog "* ]] && [ -d /run/systemd/system ]; then
		systemctl disable --now rsyslog.service >/dev/null 2>&1 &&
			systemctl stop syslog.socket >/dev/null 2>&1 ||
			echo "deps: could not stop and disable the system rsyslog.service; the tests do not need it" >&2
	fi
fi

$demo_only && exit 0

# gotool DIR WHY PACKAGE@VERSION...: go install the packages into DIR
# unless every one's binary (the last path element, a /vN suffix left
# out) is there already.
gotool() {
	local dir=$1 why=$2 pkg bin missing=
	shift 2
	for pkg in "$@"; do
		bin=${pkg%@*}
		[[ ${bin##*/} =~ ^v[0-9]+$ ]] && bin=${bin%/*}
		[ -x "$dir/${bin##*/}" ] || missing=1
	done
	[ -n "$missing" ] || return 0
	echo "deps: building $why into $dir" >&2
	mkdir -p "$dir"
	(cd / && GOBIN="$dir" GOFLAGS=-mod=mod go install "$@")
}
ctrd2="$NSREL_TOOLS/containerd-$CONTAINERD2_VERSION"
gotool "$ctrd2" "containerd $CONTAINERD2_VERSION (a few minutes, once)" \
	"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD2_VERSION" \
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD2_VERSION" \
	"github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD2_VERSION"
crictl="$NSREL_TOOLS/crictl-$CRICTL_VERSION"
gotool "$crictl" "crictl $CRICTL_VERSION (a few minutes, once)" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
# kustomize renders deploy/kubernetes in the manifest tests
# (internal/kubetest); keep the version there in step.
KUSTOMIZE_VERSION=v5.8.1
kz="$NSREL_TOOLS/kustomize-$KUSTOMIZE_VERSION"
gotool "$kz" "kustomize $KUSTOMIZE_VERSION" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
STATICCHECK_VERSION=v0.8.2
sc="$NSREL_TOOLS/staticcheck-$STATICCHECK_VERSION"
gotool "$sc" "staticcheck $STATICCHECK_VERSION" "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
