package logging

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestFileOpenedAtFirstEntry: the diagnostics file (and its directory)
// appear with the first entry, not before; a path that is a FIFO is
// refused once on stderr without blocking, and its entries are dropped.
func TestFileOpenedAtFirstEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	path := filepath.Join(dir, "hook.log")
	var stderr bytes.Buffer
	l, closeLog := File(path, "nsrel-hook", &stderr)
	l.Debug("below the level")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the diagnostics directory exists before any entry: %v", err)
	}
	l.WithField("container", "c1").Warn("first")
	l.Warn("second")
	closeLog()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), "\n") != 2 || !strings.Contains(string(data), "container=c1") {
		t.Errorf("diagnostics file:\n%s", data)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, st.Mode().Perm(), want, err)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %q", stderr.String())
	}

	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	l, closeLog = File(fifo, "nsrel-hook", &stderr)
	l.Warn("one")
	l.Warn("two")
	closeLog()
	if s := stderr.String(); strings.Count(s, "\n") != 1 || !strings.HasPrefix(s, "nsrel-hook: diagnostics log: ") || !strings.Contains(s, "FIFO") {
		t.Errorf("stderr for a FIFO: %q", s)
	}
}

// TestFileInUntrustedDir: the hook writes its diagnostics as root, with
// text from containers in them: in a directory someone else may write or
// swap (Ubuntu's /var/log is its group's) nothing is written, and stderr
// says why once.
func TestFileInUntrustedDir(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	varlog := filepath.Join(dir, "varlog")
	target := filepath.Join(dir, "target")
	nstest.Mkdirs(t, 0o700, varlog, target)
	os.Chmod(varlog, 0o775)
	// What a member of the group does: its own symlink where the log's
	// directory was.
	link := filepath.Join(varlog, "nsrel")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, 65534, 65534)
	var stderr bytes.Buffer
	l, closeLog := File(filepath.Join(link, "hook.log"), "nsrel-hook", &stderr)
	l.Warn("one")
	l.Warn("two")
	closeLog()
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("written behind the symlink: %v", entries)
	}
	if s := stderr.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "not trusted") {
		t.Errorf("stderr: %q", s)
	}
}

// TestTargetInUntrustedDir: a log_file (or --log-to) socket in a
// directory another user owns is refused as a file there is: the user
// who binds it there received root's diagnostics, text from containers
// in them. Nothing is sent; stderr says why, and the entries follow
// there.
func TestTargetInUntrustedDir(t *testing.T) {
	nstest.RequireRoot(t)
	for _, scheme := range []string{"unix://", "journald://"} {
		c, sock := nstest.TheirSocket(t, t.TempDir())
		var stderr bytes.Buffer
		l, closeLog := File(scheme+sock, "nsrel-hook", &stderr)
		l.WithField("container", "victim").Error("container refused")
		closeLog()
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := c.ReadFrom(make([]byte, 65536)); err == nil {
			t.Errorf("%s: %d bytes sent to a socket in a directory of uid 65534's", scheme, n)
		}
		if s := stderr.String(); !strings.Contains(s, "not trusted") || !strings.Contains(s, "container=victim") {
			t.Errorf("%s: stderr %q; want why, and the entry", scheme, s)
		}
	}
}
