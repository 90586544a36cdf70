package safefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/safefile"
)

// TestTrust checks the trust rule on directories and files made for each
// case below a private, trusted temporary directory.
func TestTrust(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, dir string) string // returns the file's path
		secret bool
		ok     bool
	}{
		{"trusted", func(t *testing.T, dir string) string { return file(t, dir, "f", 0o600) }, true, true},
		{"group writable file", func(t *testing.T, dir string) string { return file(t, dir, "f", 0o620) }, false, false},
		{"others may read a secret", func(t *testing.T, dir string) string { return file(t, dir, "f", 0o644) }, true, false},
		{"others may read a file", func(t *testing.T, dir string) string { return file(t, dir, "f", 0o644) }, false, true},
		{"owned by another user", func(t *testing.T, dir string) string {
			p := file(t, dir, "f", 0o600)
			os.Chown(p, 65534, 65534)
			return p
		}, false, false},
		{"in a directory others may write", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "open")
			os.Mkdir(d, 0o777)
			os.Chmod(d, 0o777)
			return file(t, d, "f", 0o600)
		}, false, false},
		{"in a sticky directory of root's", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			os.Mkdir(d, 0o777)
			os.Chmod(d, os.ModeSticky|0o777)
			return file(t, d, "f", 0o600)
		}, false, true},
		{"below another user's directory in a sticky one", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			os.Mkdir(d, 0o777)
			os.Chmod(d, os.ModeSticky|0o777)
			u := filepath.Join(d, "user")
			os.Mkdir(u, 0o755)
			os.Chown(u, 65534, 65534)
			return file(t, u, "f", 0o600)
		}, false, false},
		{"through another user's symlink", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "real")
			os.Mkdir(real, 0o700)
			l := filepath.Join(dir, "link")
			os.Symlink(real, l)
			os.Lchown(l, 65534, 65534)
			file(t, real, "f", 0o600)
			return filepath.Join(l, "f")
		}, false, false},
		{"through root's symlink to an open directory", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "open")
			os.Mkdir(real, 0o777)
			os.Chmod(real, 0o777)
			l := filepath.Join(dir, "link")
			os.Symlink(real, l)
			file(t, real, "f", 0o600)
			return filepath.Join(l, "f")
		}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tc.setup(t, dir)
			f, err := safefile.OpenTrusted(p, unix.O_RDONLY, tc.secret)
			if err == nil {
				f.Close()
			}
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, safefile.ErrUntrusted)) {
				t.Errorf("OpenTrusted(%s): %v; want ok %v", p, err, tc.ok)
			}
		})
	}
}

func file(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

// TestOpenRegular refuses everything but a regular file, without
// blocking on a FIFO.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(file(t, dir, "f", 0o600), link)
	for _, p := range []string{fifo, link, dir, "/dev/null"} {
		f, err := safefile.OpenRegular(p, unix.O_RDONLY)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("OpenRegular(%s): %v; want ErrNotRegular", p, err)
		}
	}
}
