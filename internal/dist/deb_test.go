package dist

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestDebianPackage builds the package with `make deb`, checks it with
// lintian (no error), installs it with dpkg on this machine, runs the
// installed commands, and purges it. It restores what it changed: an
// /etc/nsrel that existed before is moved aside and put back. Runs of
// the suite at the same time take turns (a lock); a run killed while the
// package was installed left it, and every later run failed until it was
// purged by hand: a marker says the test installed it, and the next run
// purges it and puts /etc/nsrel back.
func TestDebianPackage(t *testing.T) {
	nstest.RequireRoot(t)
	dpkg := nstest.RequireCmd(t, "dpkg")
	dpkgDeb := nstest.RequireCmd(t, "dpkg-deb")
	lintian := nstest.RequireCmd(t, "lintian")
	const (
		marker = "/var/tmp/nsrel-package-test.installed"
		aside  = "/etc/nsrel.before-nsrel-package-test"
	)
	lock, err := os.OpenFile("/run/nsrel-package-test.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // last: the lock is held until the package is purged
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// present reports whether dpkg has the package in any state but
	// not-installed (unpacked, half-configured and config-files too:
	// a run killed between unpack and configure, a postinst that
	// failed), and its status.
	present := func() (bool, string) {
		out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "nsrel").Output()
		f := strings.Fields(string(out))
		return len(f) == 3 && f[2] != "not-installed", string(out)
	}
	if _, err := os.Stat(marker); err == nil {
		// A run killed with the package installed.
		if ok, _ := present(); ok {
			// Its dpkg may still run (killed with the test, it goes on):
			// the purge waits for dpkg's lock, a minute at most.
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
				out, err := exec.Command(dpkg, "--purge", "nsrel").CombinedOutput()
				if err == nil {
					break
				}
				if !bytes.Contains(out, []byte("lock was locked by another process")) || time.Now().After(deadline) {
					t.Fatalf("purging the package a killed run left: %v\n%s", err, out)
				}
			}
		}
		if _, err := os.Lstat(aside); err == nil {
			os.RemoveAll("/etc/nsrel")
			if err := os.Rename(aside, "/etc/nsrel"); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(marker); err != nil {
			t.Fatal(err)
		}
	}
	if ok, st := present(); ok {
		t.Fatalf("the nsrel package is on this machine (%s): the test would remove it", st)
	}
	for _, f := range []string{"/usr/bin/lsuserns", "/usr/bin/lspidns", "/usr/sbin/nsrel-hook", "/usr/sbin/nsrel-containerd"} {
		if _, err := os.Lstat(f); err == nil {
			t.Fatalf("%s exists and belongs to no package: the test would replace it", f)
		}
	}
	if _, err := os.Lstat("/etc/nsrel"); err == nil {
		if err := os.WriteFile(marker, []byte("TestDebianPackage moved /etc/nsrel aside, or installed the nsrel package\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename("/etc/nsrel", aside); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			os.RemoveAll("/etc/nsrel")
			if err := os.Rename(aside, "/etc/nsrel"); err != nil {
				t.Errorf("restoring /etc/nsrel: %v", err)
				return
			}
			if ok, _ := present(); !ok {
				os.Remove(marker)
			}
		})
	}
	t.Cleanup(func() {
		if ok, _ := present(); ok {
			if out, err := exec.Command(dpkg, "--purge", "nsrel").CombinedOutput(); err != nil {
				t.Errorf("dpkg --purge: %v\n%s", err, out)
				return // the marker stays: the next run purges it
			}
		}
		if _, err := os.Lstat(aside); err != nil {
			os.Remove(marker) // else after /etc/nsrel is put back
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

	// The maintainer scripts: prerm and postinst only (nothing runs
	// before install or after removal), valid sh, doing what they say
	// (checkMaintainerScripts).
	control := t.TempDir()
	run(t, "", dpkgDeb, "--control", deb, control)
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm", "config"} {
		_, err := os.Stat(filepath.Join(control, s))
		if want := s == "prerm" || s == "postinst"; (err == nil) != want {
			t.Errorf("the package has a %s script: %v, want %v", s, err == nil, want)
		}
	}
	checkMaintainerScripts(t, deb, control)

	// What the package suggests: Graphviz for --format svg and html (dot),
	// rsyslog-relp and logrotate for the example configs it ships.
	suggests := strings.TrimSpace(run(t, "", dpkgDeb, "--field", deb, "Suggests"))
	for _, want := range []string{"graphviz", "rsyslog-relp", "logrotate"} {
		if !slices.Contains(strings.FieldsFunc(suggests, func(r rune) bool { return r == ',' || r == '|' || r == ' ' }), want) {
			t.Errorf("Suggests: %s lacks %s", suggests, want)
		}
	}

	if err := os.WriteFile(marker, []byte("TestDebianPackage installed the nsrel package\n"), 0o644); err != nil {
		t.Fatal(err)
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
	for _, f := range []string{"/lib/systemd/system/nsrel-watch.service", "/lib/systemd/system/nsrel-checkpoint.timer", "/usr/share/nsrel/hooks.d/nsrel-createRuntime.json",
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

// checkMaintainerScripts runs the package's prerm and postinst (in the
// directory control) as dpkg would, against the package's files unpacked
// into a root of their own (DPKG_ROOT) and, for what they ask systemd,
// in a mount namespace whose /run says systemd runs, with deb-systemd-
// invoke and systemctl first on PATH logging their arguments.
func checkMaintainerScripts(t *testing.T, deb, control string) {
	t.Helper()
	sh := nstest.RequireCmd(t, "sh")
	prerm, postinst := filepath.Join(control, "prerm"), filepath.Join(control, "postinst")
	for _, f := range []string{prerm, postinst} {
		run(t, "", sh, "-n", f)
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, want mode 0755", f, fi.Mode())
		}
	}
	script := func(env []string, args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(sh, args...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}

	// Removing with a runtime that still names the hook or the base
	// spec: loud warnings naming the files, and exit 0.
	root := t.TempDir()
	run(t, "", nstest.RequireCmd(t, "dpkg-deb"), "--extract", deb, root)
	enable := map[string]string{
		"etc/containers/oci/hooks.d/nsrel-createRuntime.json":  "usr/share/nsrel/hooks.d/nsrel-createRuntime.json",
		"usr/share/containers/oci/hooks.d/nsrel-poststop.json": "usr/share/nsrel/hooks.d/nsrel-poststop.json",
		"etc/containerd/config.toml":                           "usr/share/nsrel/containerd/config-v2.toml",
		"etc/containerd/conf.d/nsrel.toml":                     "usr/share/nsrel/containerd/config-v2.toml",
		"etc/containers/oci/hooks.d/other.json":                "", // another hook: not named
		// The hook at /sbin (merged /usr), slashes escaped, and the spec
		// named in a comment only (as the shipped fragments' comments do).
		"etc/containers/oci/hooks.d/escaped.json": `{"version": "1.0.0", "hook": {"path": "\/sbin\/nsrel-hook"}}`,
		"etc/containerd/conf.d/commented.toml":    "# base_runtime_spec = \"/etc/nsrel/containerd-base-spec.json\"\n  # /usr/sbin/nsrel-hook\n",
	}
	for dst, src := range enable {
		data := []byte(`{"version": "1.0.0", "hook": {"path": "/usr/bin/other-hook"}}`)
		if strings.HasPrefix(src, "{") || strings.HasPrefix(src, "#") {
			data = []byte(src)
		} else if src != "" {
			var err error
			if data, err = os.ReadFile(filepath.Join(root, src)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut := script([]string{"DPKG_ROOT=" + root}, prerm, "remove")
	for _, want := range []string{"WARNING: these container runtime configs still name /usr/sbin/nsrel-hook",
		"  /etc/containers/oci/hooks.d/nsrel-createRuntime.json\n", "  /usr/share/containers/oci/hooks.d/nsrel-poststop.json\n",
		"WARNING: containerd's config still names the base runtime spec\n/etc/nsrel/containerd-base-spec.json",
		"  /etc/containerd/config.toml\n", "  /etc/containerd/conf.d/nsrel.toml\n", "  /etc/containers/oci/hooks.d/escaped.json\n",
		"FAIL TO START", "FAILS TO LOAD", "Removing nsrel"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("prerm remove with the hook enabled: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if out != "" || strings.Contains(errOut, "other.json") || strings.Contains(errOut, "commented.toml") || strings.Contains(errOut, root) {
		t.Errorf("prerm remove: stdout %q; stderr names another hook's file or the root:\n%s", out, errOut)
	}
	// Not on upgrade (the hook stays), and not where nothing names it.
	if out, errOut := script([]string{"DPKG_ROOT=" + root}, prerm, "upgrade", "0.1.1"); out+errOut != "" {
		t.Errorf("prerm upgrade said %q", out+errOut)
	}
	if out, errOut := script([]string{"DPKG_ROOT=" + t.TempDir()}, prerm, "remove"); out+errOut != "" {
		t.Errorf("prerm remove with no runtime config said %q", out+errOut)
	}

	// systemd: the units stop on removal, and restart (if they run) on
	// upgrade after a daemon-reload; a first install touches nothing.
	unshare := nstest.RequireCmd(t, "unshare")
	bin := t.TempDir()
	log := filepath.Join(t.TempDir(), "log")
	for _, c := range []string{"deb-systemd-invoke", "systemctl"} {
		if err := os.WriteFile(filepath.Join(bin, c), []byte("#!/bin/sh\necho \""+c+" $*\" >>"+log+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{prerm, "remove"}, "deb-systemd-invoke stop nsrel-watch.service nsrel-nri.service nsrel-checkpoint.timer\n"},
		{[]string{prerm, "upgrade", "0.1.1"}, ""},
		{[]string{postinst, "configure", "0.0.9"}, "systemctl --system daemon-reload\ndeb-systemd-invoke try-restart nsrel-watch.service nsrel-nri.service nsrel-checkpoint.timer\n"},
		{[]string{postinst, "configure", ""}, ""},
	} {
		os.Remove(log)
		args := append([]string{"--mount", "--propagation", "private", sh, "-c",
			`mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"`, "sh", sh}, tc.args...)
		cmd := exec.Command(unshare, args...)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DPKG_ROOT=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s under systemd: %v\n%s", strings.Join(tc.args, " "), err, out)
		}
		got, _ := os.ReadFile(log)
		if string(got) != tc.want {
			t.Errorf("%s under systemd ran %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
