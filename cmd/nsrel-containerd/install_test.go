package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// TestInstallHook installs a hook and a config into a directory, twice
// (the second run replaces both), and refuses a config that does not
// parse without touching what is installed.
func TestInstallHook(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "dest")
	os.Mkdir(dest, 0o755)
	hook := filepath.Join(dir, "nsrel-hook")
	cfg := filepath.Join(dir, "hook.json")
	for i, content := range []string{"#!/bin/true first\n", "#!/bin/true second\n"} {
		os.WriteFile(hook, []byte(content), 0o700)
		policy := `{"version": 1, "audit_log": "/var/log/nsrel/audit.jsonl", "default": {"name": "d` + content[11:len(content)-1] + `", "mode": "audit"}}`
		os.WriteFile(cfg, []byte(policy), 0o600)
		var out, errb bytes.Buffer
		if code := run([]string{"install-hook", "--dest", dest, "--hook", hook, "--config", cfg}, &out, &errb); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, errb.String())
		}
		for name, want := range map[string]string{"nsrel-hook": content, "hook.json": policy} {
			p := filepath.Join(dest, name)
			got, err := os.ReadFile(p)
			if err != nil || string(got) != want {
				t.Errorf("run %d: %s = %q, %v; want %q", i, name, got, err, want)
			}
			st, _ := os.Stat(p)
			if wantMode := map[string]os.FileMode{"nsrel-hook": 0o755, "hook.json": 0o644}[name]; st.Mode().Perm() != wantMode {
				t.Errorf("run %d: %s mode %v, want %v", i, name, st.Mode().Perm(), wantMode)
			}
		}
	}
	os.WriteFile(cfg, []byte(`{"version": 1, "polices": []}`), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"install-hook", "--dest", dest, "--hook", hook, "--config", cfg}, &out, &errb); code != 1 || strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
		t.Errorf("bad config: exit %d, stderr %q; want 1 and one line", code, errb.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "hook.json")); !strings.Contains(string(got), "second") {
		t.Errorf("a refused config replaced the installed one: %s", got)
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 2 {
		t.Errorf("%d files in the destination, want 2 (no temporary files left)", len(entries))
	}
	// The hook is installed first: when it cannot be, the config stays
	// the one the installed hook reads (a new config may use keys an
	// old hook refuses).
	os.WriteFile(cfg, []byte(`{"version": 1, "audit_log": "/var/log/nsrel/audit.jsonl", "default": {"name": "third", "mode": "audit"}}`), 0o600)
	saved := filepath.Join(t.TempDir(), "saved")
	os.Rename(filepath.Join(dest, "nsrel-hook"), saved)
	os.MkdirAll(filepath.Join(dest, "nsrel-hook", "busy"), 0o755) // no rename over a non-empty directory
	if code := run([]string{"install-hook", "--dest", dest, "--hook", hook, "--config", cfg}, &out, &errb); code != 1 {
		t.Errorf("hook not installable: exit %d; want 1", code)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "hook.json")); !strings.Contains(string(got), "second") {
		t.Errorf("the config was replaced although the hook was not: %s", got)
	}
	os.RemoveAll(filepath.Join(dest, "nsrel-hook"))
	os.Rename(saved, filepath.Join(dest, "nsrel-hook"))
	// What no runtime can run (an empty file, a config given as the
	// hook) is refused, nothing installed: every container the hook
	// applies to failed with ENOEXEC.
	for _, content := range []string{"", `{"version": 1}`} {
		notProg := filepath.Join(dir, "not-a-program")
		os.WriteFile(notProg, []byte(content), 0o755)
		errb.Reset()
		if code := run([]string{"install-hook", "--dest", dest, "--hook", notProg, "--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not a program") {
			t.Errorf("--hook of %q: exit %d, stderr %q; want 1, refused", content, code, errb.String())
		}
		if got, _ := os.ReadFile(filepath.Join(dest, "nsrel-hook")); string(got) != "#!/bin/true second\n" {
			t.Errorf("--hook of %q replaced the installed hook: %q", content, got)
		}
	}
	ready := filepath.Join(dir, "ready")
	os.WriteFile(ready, nil, 0o644)
	if code := run([]string{"ready", ready}, &out, &errb); code != 0 {
		t.Errorf("ready with the file present: exit %d", code)
	}
}

// TestInstallHookToFullDisk: install-hook whose "installed" lines
// cannot be written (a full disk) installs both files and says the
// write error, exit 1; it exited 0.
func TestInstallHookToFullDisk(t *testing.T) {
	_, hook, cfg := installFiles(t)
	dest := t.TempDir()
	code, stderr := nstest.ToFullDisk(t, nstest.Tool(t, "nsrel-containerd"), "install-hook", "--dest", dest, "--hook", hook, "--config", cfg)
	if code != 1 || stderr != "nsrel-containerd install-hook: write error: no space left on device\n" {
		t.Errorf("exit %d, stderr %q; want 1 and a write error", code, stderr)
	}
	for _, name := range []string{"nsrel-hook", "hook.json"} {
		if _, err := os.Stat(filepath.Join(dest, name)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
}

// TestContainersPartial: `containers` with one containerd namespace that
// does not answer (its shim stopped) prints the other namespaces'
// containers, names the failed one on stderr and exits 1. It printed
// nothing.
func TestContainersPartial(t *testing.T) {
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	ok := ctrdtest.Uniq("answers")
	d.Run(t, c, "aaa", ok, nil)
	stuck := ctrdtest.Uniq("stuck")
	_, first := d.Run(t, c, "zzz", stuck, nil)
	_, second := d.Run(t, c, "yyy", ctrdtest.Uniq("stuck-later"), nil)
	ctrdtest.StopShim(t, int(first))
	var out, errb bytes.Buffer
	code := run([]string{"containers", "--address", d.Socket, "--timeout", "1s"}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), `"id":"`+ok+`"`) || strings.Contains(out.String(), `"id":"`+stuck+`"`) ||
		!strings.HasPrefix(errb.String(), "nsrel-containerd containers: ") || !strings.Contains(errb.String(), `namespace "zzz"`) || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, the answering namespace's container, one line naming the other", code, out.String(), errb.String())
	}
	// The trees' helper source takes the list and the error alike.
	// (A shim stopped anew: containerd may answer without one that
	// timed out before; which namespace fails then varies.)
	src := &containers.HelperSource{Address: d.Socket, Helper: nstest.Tool(t, "nsrel-containerd"), Timeout: time.Second}
	ctrdtest.StopShim(t, int(second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := src.List(ctx)
	// containerd may answer a namespace whose shim stopped after all
	// (then nothing is partial), never with nothing for the others.
	var pe *containers.PartialError
	switch {
	case !slices.ContainsFunc(cs, func(c discover.Container) bool { return c.ID == ok }):
		t.Errorf("helper source: %v, %v; want the answering namespace's container", cs, err)
	case err == nil:
		t.Logf("containerd answered every namespace this time: %v", cs)
	case !errors.As(err, &pe) || !strings.Contains(err.Error(), `namespace "`) || strings.HasPrefix(err.Error(), "nsrel-containerd"):
		t.Errorf("helper source: %v; want a partial answer naming the namespace", err)
	}
}

// TestWriteReady: the ready file is written under a new name and
// renamed onto its path: a symlink, a hard link to a file of root's or a
// FIFO someone put there is replaced, its target untouched and nothing
// blocking. os.WriteFile followed the link and truncated its target; a
// check of the link count after the open could be raced (the link
// removed in between).
func TestWriteReady(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	for range 2 {
		if err := writeReady(ready); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(ready); err != nil || string(b) != "registered\n" {
			t.Errorf("ready file %q, %v", b, err)
		}
	}
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, put := range []func(string) error{
		func(p string) error { return os.Symlink(target, p) },
		func(p string) error { return os.Link(target, p) },
		func(p string) error { return unix.Mkfifo(p, 0o600) },
	} {
		os.Remove(ready)
		if err := put(ready); err != nil {
			t.Fatal(err)
		}
		if err := writeReady(ready); err != nil {
			t.Errorf("writeReady: %v", err)
		}
		if b, _ := os.ReadFile(target); string(b) != "keep" {
			t.Fatalf("the file someone linked at the ready path now holds %q", b)
		}
		if st, err := os.Lstat(ready); err != nil || !st.Mode().IsRegular() {
			t.Errorf("ready path: %v, %v; want a regular file", st, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d entries in the directory; want the ready file and the target, no temporary left", len(ents))
	}
}

// TestReadyFileDir: the ready file's directory must be reached through
// trusted directories. A symlink another user put in /tmp, leading to a
// directory of root's, made nri remove the file of that name there at
// its start (and replace it once registered), although it then failed
// to connect: nri refuses it now, at once, and the file stays. A
// directory others may write (a Kubernetes emptyDir is 0777) of root's
// is taken, one of another user's is not.
func TestReadyFileDir(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, _ := ctrdtest.HookConfig(t)
	tmp := t.TempDir()
	if err := os.Chmod(tmp, os.ModeSticky|0o777); err != nil { // as /tmp
		t.Fatal(err)
	}
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "ready"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(tmp, "rd")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "nri", "--config", cfgPath, "--metrics-address", "", "--inject-hook", "none",
		"--socket", filepath.Join(t.TempDir(), "none.sock"), "--ready-file", filepath.Join(link, "ready"))
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "nsrel-containerd nri: --ready-file: ") || !strings.Contains(string(out), "not trusted") {
		t.Errorf("ready file through another user's symlink: exit %d (%v), output %q; want 1 and the refusal", code, err, out)
	}
	if b, err := os.ReadFile(filepath.Join(victim, "ready")); string(b) != "keep" {
		t.Errorf("the file behind the symlink: %q, %v; want it kept", b, err)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkReadyDir(filepath.Join(open, "ready")); err != nil {
		t.Errorf("a directory of root's others may write: %v", err)
	}
	if err := os.Chown(open, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := checkReadyDir(filepath.Join(open, "ready")); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("a directory of uid 65534's: %v; want it refused", err)
	}
	// A directory not there yet, in a sticky one: another user could
	// make it, or a symlink there, before the file is written.
	if err := checkReadyDir(filepath.Join(tmp, "later", "ready")); err == nil || !strings.Contains(err.Error(), "no such directory") {
		t.Errorf("a directory that does not exist: %v; want it refused", err)
	}
}

// TestEmptyConfig: an empty --config is a usage error naming the
// option; it was taken for the working directory ("refusing a
// directory").
func TestEmptyConfig(t *testing.T) {
	for _, args := range [][]string{
		{"watch", "--config", ""},
		{"nri", "--config="},
		{"install-hook", "--dest", t.TempDir(), "--hook", "/bin/true", "--config", ""},
	} {
		var out, errb bytes.Buffer
		want := "nsrel-containerd " + args[0] + ": option --config needs a file, not an empty string (see --help)\n"
		if code := run(args, &out, &errb); code != 2 || errb.String() != want {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", args, code, errb.String(), want)
		}
	}
}

// TestInstallHookBadDest: a --dest that is missing, or is no directory,
// or cannot be written is named with its option, or its directory; the
// error named the random temporary file it could not create
// ("open /missing/dir/.nsrel-hook.3654905804: no such file or directory").
func TestInstallHookBadDest(t *testing.T) {
	dir, hook, cfg := installFiles(t)
	missing := filepath.Join(dir, "missing", "dir")
	for dest, want := range map[string]string{
		missing: "nsrel-containerd install-hook: --dest " + missing + ": no such file or directory\n",
		cfg:     "nsrel-containerd install-hook: --dest " + cfg + ": not a directory\n",
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"install-hook", "--dest", dest, "--hook", hook, "--config", cfg}, &out, &errb); code != 1 || errb.String() != want {
			t.Errorf("--dest %s: exit %d, stderr %q; want 1 and %q", dest, code, errb.String(), want)
		}
	}
	if err := replaceFile(filepath.Join(missing, "x"), nil, 0o644); err == nil || err.Error() != "install "+missing+"/x: cannot create a file in "+missing+": no such file or directory" {
		t.Errorf("replaceFile into a missing directory: %v", err)
	}
	// The runtime runs the hook installed as root: a directory others
	// may write (where anyone could replace it) is refused, nothing
	// installed. It took any directory.
	for _, mode := range []os.FileMode{0o777, 0o777 | os.ModeSticky, 0o775} {
		open := filepath.Join(dir, "open")
		if err := os.Mkdir(open, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, mode); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run([]string{"install-hook", "--dest", open, "--hook", hook, "--config", cfg}, &out, &errb)
		entries, _ := os.ReadDir(open)
		if code != 1 || !strings.HasPrefix(errb.String(), "nsrel-containerd install-hook: --dest: "+open+": writable by ") || len(entries) != 0 {
			t.Errorf("--dest of mode %v: exit %d, stderr %q, %d files in it; want 1, the directory refused, nothing installed", mode, code, errb.String(), len(entries))
		}
		os.Remove(open)
	}
}

// TestContainersToFullDisk: `containers` whose list cannot be written (a
// full disk) says so, exit 1, the empty list too; that one was not
// checked, exit 0.
func TestContainersToFullDisk(t *testing.T) {
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	code, stderr := nstest.ToFullDisk(t, nstest.Tool(t, "nsrel-containerd"), "containers", "--address", d.Socket, "--timeout", "5s")
	if code != 1 || stderr != "nsrel-containerd containers: write error: no space left on device\n" {
		t.Errorf("containers (none) to /dev/full: exit %d, stderr %q; want 1 and a write error", code, stderr)
	}
	c := d.Client(t)
	d.Run(t, c, "aaa", ctrdtest.Uniq("listed"), nil)
	code, stderr = nstest.ToFullDisk(t, nstest.Tool(t, "nsrel-containerd"), "containers", "--address", d.Socket, "--timeout", "5s")
	if code != 1 || stderr != "nsrel-containerd containers: write error: no space left on device\n" {
		t.Errorf("containers (one) to /dev/full: exit %d, stderr %q; want 1 and a write error", code, stderr)
	}
}

// installFiles writes a hook (a script) and a config that loads, for
// install-hook to install, in a directory of the test's: the directory,
// the hook and the config.
func installFiles(t *testing.T) (dir, hook, cfg string) {
	t.Helper()
	dir = t.TempDir()
	hook = filepath.Join(dir, "nsrel-hook")
	cfg = filepath.Join(dir, "hook.json")
	os.WriteFile(hook, []byte("#!/bin/true\n"), 0o700)
	os.WriteFile(cfg, []byte(`{"version": 1, "audit_log": "/var/log/nsrel/audit.jsonl", "default": {"mode": "audit"}}`), 0o600)
	return dir, hook, cfg
}
