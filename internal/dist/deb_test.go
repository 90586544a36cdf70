package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestDebianPackage builds the package with `make deb`, checks it with
// lintian (no error), installs it with dpkg on this machine, runs the
// installed commands, and purges it. It restores what it changed: an
// /etc/nsrel that existed before is moved aside and put back.
func TestDebianPackage(t *testing.T) {
	nstest.RequireRoot(t)
	dpkg := nstest.RequireCmd(t, "dpkg")
	dpkgDeb := nstest.RequireCmd(t, "dpkg-deb")
	lintian := nstest.RequireCmd(t, "lintian")
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "nsrel").Output(); strings.Contains(string(out), "installed") {
		t.Fatalf("the nsrel package is installed on this machine (%s): the test would remove it", out)
	}
	for _, f := range []string{"/usr/bin/lsuserns", "/usr/bin/lspidns", "/usr/sbin/nsrel-hook", "/usr/sbin/nsrel-containerd"} {
		if _, err := os.Lstat(f); err == nil {
			t.Fatalf("%s exists and belongs to no package: the test would replace it", f)
		}
	}
	if _, err := os.Lstat("/etc/nsrel"); err == nil {
		aside := "/etc/nsrel.before-nsrel-package-test"
		if err := os.Rename("/etc/nsrel", aside); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			os.RemoveAll("/etc/nsrel")
			if err := os.Rename(aside, "/etc/nsrel"); err != nil {
				t.Errorf("restoring /etc/nsrel: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "nsrel").Output(); strings.Contains(string(out), "installed") || strings.Contains(string(out), "config-files") {
			if out, err := exec.Command(dpkg, "--purge", "nsrel").CombinedOutput(); err != nil {
				t.Errorf("dpkg --purge: %v\n%s", err, out)
			}
		}
	})

	bin := filepath.Join(t.TempDir(), "bin")
	out := run(t, "", nstest.RequireCmd(t, "make"), "--no-print-directory", "deb", "BIN="+bin)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	deb := lines[len(lines)-1]
	if !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("make deb printed %q", out)
	}

	lint := exec.Command(lintian, "--tag-display-limit", "0", deb)
	// lintian leaves files in TMPDIR (mldbm-elf-*): give it the test's.
	lint.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	lintOut, _ := lint.CombinedOutput()
	for _, l := range strings.Split(string(lintOut), "\n") {
		if strings.HasPrefix(l, "E: ") {
			t.Errorf("lintian: %s", l)
		}
	}

	// No maintainer scripts: nothing runs on install, upgrade or purge,
	// so no container runtime is restarted or reconfigured.
	ctl := run(t, "", dpkgDeb, "--info", deb)
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm", "config"} {
		if strings.Contains(ctl, " "+s+" ") || strings.Contains(ctl, " "+s+"\n") {
			t.Errorf("the package has a %s script:\n%s", s, ctl)
		}
	}

	// What the package suggests: Graphviz for --format svg and html (dot),
	// rsyslog-relp and logrotate for the example configs it ships.
	suggests := strings.TrimSpace(run(t, "", dpkgDeb, "--field", deb, "Suggests"))
	for _, want := range []string{"graphviz", "rsyslog-relp", "logrotate"} {
		if !slices.Contains(strings.FieldsFunc(suggests, func(r rune) bool { return r == ',' || r == '|' || r == ' ' }), want) {
			t.Errorf("Suggests: %s lacks %s", suggests, want)
		}
	}

	run(t, "", dpkg, "-i", deb)
	for _, args := range [][]string{
		{"/usr/bin/lsuserns", "--version"},
		{"/usr/bin/lspidns", "--no-containers"},
		{"/usr/sbin/nsrel-hook", "policy", "check", "/etc/nsrel/hook.json"},
		{"/usr/sbin/nsrel-hook", "policy", "check", "/etc/nsrel/hook-enforce.json"},
		{"/usr/sbin/nsrel-containerd", "--version"},
	} {
		run(t, "", args...)
	}
	if help := run(t, "", "/usr/sbin/nsrel-hook", "--help"); !strings.Contains(help, `"path": "/usr/sbin/nsrel-hook"`) {
		t.Errorf("the packaged hook's help does not name /usr/sbin/nsrel-hook:\n%s", help)
	}
	if m := strings.TrimSpace(run(t, "", nstest.RequireCmd(t, "man"), "-w", "lsuserns")); m != "/usr/share/man/man1/lsuserns.1.gz" {
		t.Errorf("man -w lsuserns: %s", m)
	}
	for _, f := range []string{"/lib/systemd/system/nsrel-watch.service", "/usr/share/nsrel/hooks.d/nsrel-createRuntime.json",
		"/usr/share/doc/nsrel/containerd.md", "/usr/share/bash-completion/completions/lsuserns", "/etc/nsrel/containerd-base-spec.json"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("installed package: %v", err)
		}
	}
	// zsh finds the completions (Debian's place for a package's).
	const zshComp = "/usr/share/zsh/vendor-completions/_lsuserns"
	if _, err := os.Stat(zshComp); err != nil {
		t.Errorf("installed package: %v", err)
	}
	if fpath := zshFpath(t, nstest.RequireCmd(t, "zsh")); !contains(fpath, filepath.Dir(zshComp)) {
		t.Errorf("%s is not on zsh's $fpath %q", filepath.Dir(zshComp), fpath)
	}
	// Nothing is switched on: no hook file where podman or CRI-O read them.
	for _, dir := range []string{"/etc/containers/oci/hooks.d", "/usr/share/containers/oci/hooks.d"} {
		if m, _ := filepath.Glob(filepath.Join(dir, "nsrel*")); len(m) > 0 {
			t.Errorf("the package activated hooks: %v", m)
		}
	}

	run(t, "", dpkg, "--purge", "nsrel")
	for _, f := range []string{"/usr/bin/lsuserns", "/usr/sbin/nsrel-hook", "/etc/nsrel/hook.json", "/usr/share/nsrel"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s is still there after the purge", f)
		}
	}
}
