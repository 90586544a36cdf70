package safefile_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
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
		{"through root's symlink to another user's symlink in a sticky directory", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "real")
			os.Mkdir(real, 0o700)
			file(t, real, "f", 0o600)
			tmp := filepath.Join(dir, "tmp")
			os.Mkdir(tmp, 0o777)
			os.Chmod(tmp, os.ModeSticky|0o777)
			theirs := filepath.Join(tmp, "theirs")
			os.Symlink(real, theirs)
			os.Lchown(theirs, 65534, 65534)
			l := filepath.Join(dir, "link")
			os.Symlink(theirs, l)
			return filepath.Join(l, "f")
		}, false, false},
		{"through root's symlinks, one relative with ..", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "a", "real")
			os.MkdirAll(real, 0o700)
			file(t, real, "f", 0o600)
			os.Symlink("../a/real", filepath.Join(dir, "a", "rel"))
			l := filepath.Join(dir, "link")
			os.Symlink(filepath.Join(dir, "a", "rel"), l)
			return filepath.Join(l, "f")
		}, false, true},
		{"through .. after a symlink to an open directory's child", func(t *testing.T, dir string) string {
			open := filepath.Join(dir, "open")
			os.MkdirAll(filepath.Join(open, "child"), 0o700)
			os.Chmod(open, 0o777)
			file(t, open, "f", 0o600)
			l := filepath.Join(dir, "link")
			os.Symlink(filepath.Join(open, "child"), l)
			// Lexically dir/f; the kernel goes to open/f.
			return l + "/../f"
		}, false, false},
		{"a symlink loop", func(t *testing.T, dir string) string {
			os.Symlink(filepath.Join(dir, "b"), filepath.Join(dir, "a"))
			os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "b"))
			return filepath.Join(dir, "a", "f")
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

// TestOpenPrivate checks the files a writer creates or appends to (the
// diagnostics log, the checkpoint file): made 0600 with their missing
// directories 0700; refused in a directory someone else may write or
// swap, also when the swap is a symlink or a directory made by someone
// else where the writer would have made it.
func TestOpenPrivate(t *testing.T) {
	nstest.RequireRoot(t)
	sticky := func(t *testing.T, dir string) string {
		d := filepath.Join(dir, "tmp")
		os.Mkdir(d, 0o777)
		os.Chmod(d, os.ModeSticky|0o777)
		return d
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the file's path
		ok    bool
	}{
		{"new, in new directories", func(t *testing.T, dir string) string { return filepath.Join(dir, "a", "b", "f") }, true},
		{"existing", func(t *testing.T, dir string) string { return file(t, dir, "f", 0o600) }, true},
		{"existing, owned by another user", func(t *testing.T, dir string) string {
			p := file(t, dir, "f", 0o600)
			os.Chown(p, 65534, 65534)
			return p
		}, false},
		{"below a directory its group may write", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "varlog")
			os.Mkdir(d, 0o775)
			os.Chmod(d, 0o775)
			os.Mkdir(filepath.Join(d, "nsrel"), 0o755)
			return filepath.Join(d, "nsrel", "f")
		}, false},
		{"in a sticky directory others may write", func(t *testing.T, dir string) string {
			return filepath.Join(sticky(t, dir), "f")
		}, false},
		{"below one, its directory swapped for another user's symlink", func(t *testing.T, dir string) string {
			target := filepath.Join(dir, "target")
			os.Mkdir(target, 0o700)
			l := filepath.Join(sticky(t, dir), "nsrel")
			os.Symlink(target, l)
			os.Lchown(l, 65534, 65534)
			return filepath.Join(l, "f")
		}, false},
		{"below one, its directory made by another user", func(t *testing.T, dir string) string {
			d := filepath.Join(sticky(t, dir), "nsrel")
			os.Mkdir(d, 0o755)
			os.Chown(d, 65534, 65534)
			return filepath.Join(d, "f")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tc.setup(t, dir)
			f, err := safefile.OpenPrivate(p, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, false)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, safefile.ErrUntrusted)) {
				t.Fatalf("OpenPrivate(%s): %v; want ok %v", p, err, tc.ok)
			}
			if err != nil {
				if _, err := os.Stat(filepath.Join(dir, "target", "f")); err == nil {
					t.Error("the file was made behind the symlink")
				}
				return
			}
			f.Close()
			if st, err := os.Stat(p); err != nil || st.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: %v, %v; want a file only its owner may read", p, st.Mode(), err)
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

// TestReadLimited reads files around the limit, one whose size fstat
// does not tell (/proc), and one read from an offset.
func TestReadLimited(t *testing.T) {
	const limit = 1000
	dir := t.TempDir()
	for _, n := range []int{0, 1, 511, 512, 513, limit - 1, limit, limit + 1, limit + 2, 5 * limit} {
		path := filepath.Join(dir, fmt.Sprint(n))
		data := bytes.Repeat([]byte("x"), n)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := safefile.ReadLimited(f, limit)
		f.Close()
		want := data[:min(n, limit+1)]
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d bytes: got %d bytes, %v; want %d", n, len(got), err, len(want))
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := safefile.ReadLimited(f, 1<<20)
	if err != nil || len(got) == 0 || got[len(got)-1] != '\n' {
		t.Errorf("/proc/self/mountinfo: %d bytes, %v", len(got), err)
	}
	path := filepath.Join(dir, "offset")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Seek(4, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := safefile.ReadLimited(g, limit); err != nil || string(got) != "456789" {
		t.Errorf("from offset 4: %q, %v", got, err)
	}
}

// TestOpenRaced: in a sticky directory another user makes the missing
// directory, or puts a symlink to a directory of root's in its place,
// between the checks and the open (a loop of mkdir and rmdir wins this
// within seconds). The open is refused: the file opened is checked again
// once open. It used to be taken, and root wrote the audit log, its
// lock, the sealing state or the diagnostics log into the other user's
// directory (or, through the symlink, anywhere).
func TestOpenRaced(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name string
		race func(t *testing.T, dir, d string)
	}{
		{"directory made", func(t *testing.T, dir, d string) {
			if err := os.Mkdir(d, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chown(d, 65534, 65534)
		}},
		{"symlink put", func(t *testing.T, dir, d string) {
			if err := os.Symlink(filepath.Join(dir, "rootonly"), d); err != nil {
				t.Fatal(err)
			}
			os.Lchown(d, 65534, 65534)
		}},
	} {
		for _, open := range []struct {
			name string
			f    func(string) (*os.File, error)
		}{
			{"OpenPrivate", func(p string) (*os.File, error) {
				return safefile.OpenPrivate(p, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, false)
			}},
			{"OpenTrusted", func(p string) (*os.File, error) { return safefile.OpenTrusted(p, unix.O_RDONLY, false) }},
		} {
			t.Run(tc.name+"/"+open.name, func(t *testing.T) {
				dir := t.TempDir()
				if err := os.Mkdir(filepath.Join(dir, "rootonly"), 0o700); err != nil {
					t.Fatal(err)
				}
				file(t, filepath.Join(dir, "rootonly"), "f", 0o600) // for the read
				tmp := filepath.Join(dir, "tmp")
				if err := os.Mkdir(tmp, 0o777); err != nil {
					t.Fatal(err)
				}
				os.Chmod(tmp, os.ModeSticky|0o777)
				d := filepath.Join(tmp, "nsrel")
				safefile.BeforeOpen(t, func() {
					tc.race(t, dir, d)
					if _, err := os.Stat(filepath.Join(d, "f")); err != nil && open.name == "OpenTrusted" {
						file(t, d, "f", 0o600) // their file, for the read
						os.Chown(filepath.Join(d, "f"), 0, 0)
					}
				})
				name := "f"
				if open.name == "OpenPrivate" {
					name = "new"
				}
				f, err := open.f(filepath.Join(d, name))
				if err == nil {
					f.Close()
					t.Fatalf("%s opened in a directory another user made or linked", filepath.Join(d, name))
				}
				if !errors.Is(err, safefile.ErrUntrusted) {
					t.Errorf("%v; want it refused as untrusted", err)
				}
				// Nothing made where their directory or link leads.
				if _, err := os.Lstat(filepath.Join(dir, "rootonly", "new")); err == nil {
					t.Error("the file was made where the symlink leads")
				}
				if _, err := os.Lstat(filepath.Join(d, "new")); err == nil && tc.name == "directory made" {
					t.Error("the file was made in their directory")
				}
			})
		}
	}
}

// TestSecretLinks: a secret with another name (a hard link someone
// made to it, or it to a file of theirs) is refused; one name is fine.
func TestSecretLinks(t *testing.T) {
	dir := t.TempDir()
	p := file(t, dir, "secret", 0o600)
	f, err := safefile.OpenTrusted(p, unix.O_RDWR, true)
	if err != nil {
		t.Fatalf("one name: %v", err)
	}
	f.Close()
	if err := os.Link(p, filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	if f, err := safefile.OpenTrusted(p, unix.O_RDWR, true); !errors.Is(err, safefile.ErrUntrusted) {
		if f != nil {
			f.Close()
		}
		t.Errorf("two names: %v; want it refused", err)
	}
	if f, err := safefile.OpenTrusted(p, unix.O_RDONLY, false); err != nil {
		t.Errorf("two names, not a secret: %v", err)
	} else {
		f.Close()
	}
}

// TestCheckSocket checks the trust rule on the sockets diagnostics and
// checkpoints are sent to (syslog, journald), made for each case below a
// private, trusted temporary directory: a socket in a directory another
// user owns or may write, or one another user bound, was sent to as it
// was, and they received what was sent.
func TestCheckSocket(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the socket's path
		ok    bool
	}{
		{"trusted", func(t *testing.T, dir string) string { return sock(t, dir, "s") }, true},
		{"mode 0666", func(t *testing.T, dir string) string {
			p := sock(t, dir, "s")
			os.Chmod(p, 0o666)
			return p
		}, true},
		{"bound by another user", func(t *testing.T, dir string) string {
			p := sock(t, dir, "s")
			os.Lchown(p, 65534, 65534)
			return p
		}, false},
		{"in another user's directory", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "user")
			os.Mkdir(d, 0o755)
			p := sock(t, d, "s")
			os.Chown(d, 65534, 65534)
			return p
		}, false},
		{"in a directory others may write", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "open")
			os.Mkdir(d, 0o777)
			os.Chmod(d, 0o777)
			return sock(t, d, "s")
		}, false},
		{"root's in a sticky directory of root's", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			os.Mkdir(d, 0o777)
			os.Chmod(d, os.ModeSticky|0o777)
			return sock(t, d, "s")
		}, true},
		{"another user's in a sticky directory of root's", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			os.Mkdir(d, 0o777)
			os.Chmod(d, os.ModeSticky|0o777)
			p := sock(t, d, "s")
			os.Lchown(p, 65534, 65534)
			return p
		}, false},
		{"through root's symlink (/dev/log)", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "run")
			os.Mkdir(real, 0o755)
			l := filepath.Join(dir, "log")
			os.Symlink(sock(t, real, "dev-log"), l)
			return l
		}, true},
		{"through root's relative symlink with ..", func(t *testing.T, dir string) string {
			os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
			sock(t, filepath.Join(dir, "a"), "s")
			l := filepath.Join(dir, "a", "b", "log")
			os.Symlink("../s", l)
			return l
		}, true},
		{"through another user's symlink", func(t *testing.T, dir string) string {
			l := filepath.Join(dir, "log")
			os.Symlink(sock(t, dir, "s"), l)
			os.Lchown(l, 65534, 65534)
			return l
		}, false},
		{"through root's symlink into another user's directory", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "user")
			os.Mkdir(d, 0o755)
			l := filepath.Join(dir, "log")
			os.Symlink(sock(t, d, "s"), l)
			os.Chown(d, 65534, 65534)
			return l
		}, false},
		{"through a directory symlink of another user's", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "run")
			os.Mkdir(d, 0o755)
			sock(t, d, "s")
			l := filepath.Join(dir, "link")
			os.Symlink(d, l)
			os.Lchown(l, 65534, 65534)
			return filepath.Join(l, "s")
		}, false},
		{"a regular file", func(t *testing.T, dir string) string { return file(t, dir, "f", 0o600) }, false},
		{"missing", func(t *testing.T, dir string) string { return filepath.Join(dir, "missing") }, false},
		{"a symlink loop", func(t *testing.T, dir string) string {
			os.Symlink(filepath.Join(dir, "b"), filepath.Join(dir, "a"))
			os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "b"))
			return filepath.Join(dir, "a")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.setup(t, t.TempDir())
			err := safefile.CheckSocket(p)
			if (err == nil) != tc.ok {
				t.Errorf("CheckSocket(%s): %v; want ok %v", p, err, tc.ok)
			}
		})
	}
	// The owner's and the directory's refusals say why, as a file's do.
	dir := t.TempDir()
	p := sock(t, dir, "s")
	os.Lchown(p, 65534, 65534)
	if err := safefile.CheckSocket(p); !errors.Is(err, safefile.ErrUntrusted) || err.Error() != fmt.Sprintf("%s: a socket owned by uid 65534, not root or uid 0: refusing it: not trusted", p) {
		t.Errorf("CheckSocket(%s): %v", p, err)
	}
}

// sock binds a Unix datagram socket named name in dir, closed when the
// test ends, and returns its path.
func sock(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p
}
