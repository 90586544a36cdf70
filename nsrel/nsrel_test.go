package nsrel_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

// refKind builds a Ref of one kind (path, file, fd) for a path; the
// returned cleanup closes what it opened.
type refKind struct {
	name string
	make func(t *testing.T, path string) nsrel.Ref
}

var refKinds = []refKind{
	{"path", func(t *testing.T, p string) nsrel.Ref { return nsrel.Path(p) }},
	{"file", func(t *testing.T, p string) nsrel.Ref {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return nsrel.File(f)
	}},
	{"fd", func(t *testing.T, p string) nsrel.Ref {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return nsrel.FD(fd)
	}},
}

// forEachRef runs fn as a subtest for each kind of reference, checking
// for fd leaks around each.
func forEachRef(t *testing.T, fn func(t *testing.T, k refKind)) {
	for _, k := range refKinds {
		t.Run(k.name, func(t *testing.T) {
			nstest.NoFDLeak(t)
			fn(t, k)
		})
	}
}

func ident(t *testing.T, r nsrel.Ref) nsrel.Ident {
	t.Helper()
	id, err := nsrel.Identify(r)
	if err != nil {
		t.Fatalf("Identify(%v): %v", r, err)
	}
	return id
}

func TestTypeOfEveryKind(t *testing.T) {
	want := map[string]nsrel.Type{
		"cgroup": nsrel.TypeCgroup, "ipc": nsrel.TypeIPC, "mnt": nsrel.TypeMount,
		"net": nsrel.TypeNet, "pid": nsrel.TypePID, "time": nsrel.TypeTime,
		"user": nsrel.TypeUser, "uts": nsrel.TypeUTS,
		"pid_for_children": nsrel.TypePID, "time_for_children": nsrel.TypeTime,
	}
	forEachRef(t, func(t *testing.T, k refKind) {
		for name, typ := range want {
			p := "/proc/self/ns/" + name
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) && name == "time" {
				nstest.Require(t, false, "kernel without time namespaces (Linux < 5.6)")
			}
			got, err := nsrel.TypeOf(k.make(t, p))
			if err != nil {
				t.Fatalf("TypeOf(%s): %v", p, err)
			}
			if got != typ {
				t.Errorf("TypeOf(%s) = %v, want %v", p, got, typ)
			}
			n, err := nsrel.NameOf(k.make(t, p))
			if err != nil {
				t.Fatalf("NameOf(%s): %v", p, err)
			}
			link, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			if n.String() != link {
				t.Errorf("NameOf(%s) = %s, readlink says %s", p, n, link)
			}
		}
	})
}

// walk follows next (Parent or OwnerUserNS) from r to the top and returns
// the inodes met on the way, r's first, and the error that ended it.
func walk(t *testing.T, r nsrel.Ref, next func(nsrel.Ref) (*nsrel.Namespace, error)) ([]uint64, error) {
	t.Helper()
	inos := []uint64{ident(t, r).Ino}
	cur := r
	for i := 0; i < 100; i++ {
		p, err := next(cur)
		if ns, ok := cur.(*nsrel.Namespace); ok {
			if cerr := ns.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
		}
		if err != nil {
			return inos, err
		}
		inos = append(inos, ident(t, p).Ino)
		cur = p
	}
	t.Fatal("no top after 100 levels")
	return nil, nil
}

func TestParentChains(t *testing.T) {
	nstest.RequireRoot(t)
	cases := []struct {
		name  string
		typ   string
		depth int
		top   uint64
		start func(t testing.TB, depth int) *nstest.Proc
	}{
		{"user-3", "user", 3, nsrel.InitialUserNSIno, nstest.UserChain},
		{"pid-3", "pid", 3, nsrel.InitialPIDNSIno, nstest.PIDChain},
		// The deepest chains the kernel allows (NOTES.md: 33 user
		// namespaces and 32 PID namespaces below the initial ones).
		{"user-33", "user", 33, nsrel.InitialUserNSIno, nstest.UserChain},
		{"pid-32", "pid", 32, nsrel.InitialPIDNSIno, nstest.PIDChain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.start(t, c.depth)
			path := nstest.NSPath(p.Pid, c.typ)
			forEachRef(t, func(t *testing.T, k refKind) {
				inos, err := walk(t, k.make(t, path), nsrel.Parent)
				if !errors.Is(err, fs.ErrPermission) || !errors.Is(err, unix.EPERM) {
					t.Fatalf("walk ended with %v, want EPERM at the top", err)
				}
				if got := len(inos) - 1; got != c.depth {
					t.Errorf("%d levels above %s, want %d (%v)", got, path, c.depth, inos)
				}
				if inos[len(inos)-1] != c.top {
					t.Errorf("top is %d, want %d", inos[len(inos)-1], c.top)
				}
				if !strings.Contains(err.Error(), "NS_GET_PARENT") {
					t.Errorf("error %q does not name the ioctl", err)
				}
			})
		})
	}
}

func TestNestingLimits(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	run := func(levels int, flags string) error {
		var args []string
		for i := 0; i < levels; i++ {
			args = append(args, unshare, flags)
		}
		args = append(args, "/bin/true")
		null, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		defer null.Close()
		cmd := &syscall.ProcAttr{Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}}
		pid, err := syscall.ForkExec(args[0], args, cmd)
		if err != nil {
			return err
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		if ws.ExitStatus() != 0 {
			return errors.New("failed")
		}
		return nil
	}
	// One level past the deepest chain fails; this pins the limits the
	// deep-chain tests rely on.
	if err := run(34, "-Ur"); err == nil {
		t.Errorf("34 nested user namespaces were created; the kernel limit is 33")
	}
	if err := run(33, "-Urpf"); err == nil {
		t.Errorf("33 nested PID namespaces were created; the kernel limit is 32")
	}
}

func TestOwnerUserNS(t *testing.T) {
	nstest.RequireRoot(t)
	for _, typ := range []string{"pid", "net", "uts", "ipc", "mnt", "cgroup"} {
		t.Run(typ, func(t *testing.T) {
			// A PID namespace must be entered by a child (-f).
			p := nstest.Sleep(t, nil, "-Urpfnuim", "-C", "--kill-child")
			want := ident(t, nsrel.Path(nstest.NSPath(p.Pid, "user")))
			forEachRef(t, func(t *testing.T, k refKind) {
				owner, err := nsrel.OwnerUserNS(k.make(t, nstest.NSPath(p.Pid, typ)))
				if err != nil {
					t.Fatalf("OwnerUserNS: %v", err)
				}
				defer owner.Close()
				if got := ident(t, owner); got != want {
					t.Errorf("owner of %s = %v, want the process's user namespace %v", typ, got, want)
				}
				if typ, err := nsrel.TypeOf(owner); err != nil || typ != nsrel.TypeUser {
					t.Errorf("TypeOf(owner) = %v, %v; want user", typ, err)
				}
				// The handle chains: the owner's owner is the initial one.
				top, err := nsrel.OwnerUserNS(owner)
				if err != nil {
					t.Fatalf("OwnerUserNS(owner): %v", err)
				}
				defer top.Close()
				if got := ident(t, top).Ino; got != nsrel.InitialUserNSIno {
					t.Errorf("owner's owner = %d, want the initial user namespace", got)
				}
			})
		})
	}
	t.Run("initial", func(t *testing.T) {
		_, err := nsrel.OwnerUserNS(nsrel.Path("/proc/self/ns/user"))
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("OwnerUserNS(initial user ns) = %v, want EPERM", err)
		}
	})
}

func TestOwnerUID(t *testing.T) {
	nstest.RequireRoot(t)
	for _, uid := range []uint32{1000, 4242, 0} {
		t.Run(fmt.Sprintf("uid-%d", uid), func(t *testing.T) {
			attr := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
			p := nstest.Sleep(t, attr, "-U")
			forEachRef(t, func(t *testing.T, k refKind) {
				got, err := nsrel.OwnerUID(k.make(t, nstest.NSPath(p.Pid, "user")))
				if err != nil {
					t.Fatalf("OwnerUID: %v", err)
				}
				if got != uid {
					t.Errorf("OwnerUID = %d, want %d", got, uid)
				}
			})
		})
	}
	got, err := nsrel.OwnerUID(nsrel.Path("/proc/self/ns/user"))
	if err != nil || got != 0 {
		t.Errorf("OwnerUID(initial) = %d, %v; want 0", got, err)
	}
}

func TestErrors(t *testing.T) {
	closedFD := func(t *testing.T) nsrel.Ref {
		fd, err := unix.Open("/proc/self/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		return nsrel.FD(fd)
	}
	closedFile := func(t *testing.T) nsrel.Ref {
		f, err := os.Open("/proc/self/ns/user")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return nsrel.File(f)
	}
	devNull := func(k refKind) func(t *testing.T) nsrel.Ref {
		return func(t *testing.T) nsrel.Ref { return k.make(t, "/dev/null") }
	}
	type query struct {
		name string
		fn   func(nsrel.Ref) error
	}
	queries := []query{
		{"TypeOf", func(r nsrel.Ref) error { _, err := nsrel.TypeOf(r); return err }},
		{"Parent", func(r nsrel.Ref) error { ns, err := nsrel.Parent(r); ns.Close(); return err }},
		{"OwnerUserNS", func(r nsrel.Ref) error { ns, err := nsrel.OwnerUserNS(r); ns.Close(); return err }},
		{"OwnerUID", func(r nsrel.Ref) error { _, err := nsrel.OwnerUID(r); return err }},
		{"Identify", func(r nsrel.Ref) error { _, err := nsrel.Identify(r); return err }},
		{"ID", func(r nsrel.Ref) error { _, err := nsrel.ID(r); return err }},
	}
	cases := []struct {
		name  string
		ref   func(t *testing.T) nsrel.Ref
		only  string // query name, or "" for every query
		wants []error
	}{
		{"parent of net", func(t *testing.T) nsrel.Ref { return nsrel.Path("/proc/self/ns/net") }, "Parent", []error{unix.EINVAL}},
		{"parent of uts", func(t *testing.T) nsrel.Ref { return nsrel.Path("/proc/self/ns/uts") }, "Parent", []error{unix.EINVAL}},
		{"owner uid of pid", func(t *testing.T) nsrel.Ref { return nsrel.Path("/proc/self/ns/pid") }, "OwnerUID", []error{unix.EINVAL}},
		{"parent of initial user", func(t *testing.T) nsrel.Ref { return nsrel.Path("/proc/self/ns/user") }, "Parent", []error{fs.ErrPermission, unix.EPERM}},
		{"parent of initial pid", func(t *testing.T) nsrel.Ref { return nsrel.Path("/proc/self/ns/pid") }, "Parent", []error{fs.ErrPermission, unix.EPERM}},
		{"/dev/null path", devNull(refKinds[0]), "", []error{nsrel.ErrNotNamespace, unix.ENOTTY}},
		{"/dev/null file", devNull(refKinds[1]), "", []error{nsrel.ErrNotNamespace, unix.ENOTTY}},
		{"/dev/null fd", devNull(refKinds[2]), "", []error{nsrel.ErrNotNamespace, unix.ENOTTY}},
		{"closed fd", closedFD, "", []error{unix.EBADF}},
		{"closed file", closedFile, "", []error{unix.EBADF}},
		{"nil file", func(t *testing.T) nsrel.Ref { return nsrel.File(nil) }, "", []error{unix.EBADF}},
		{"negative fd", func(t *testing.T) nsrel.Ref { return nsrel.FD(-1) }, "", []error{unix.EBADF}},
		{"missing path", func(t *testing.T) nsrel.Ref { return nsrel.Path(t.TempDir() + "/nope") }, "", []error{fs.ErrNotExist, unix.ENOENT}},
	}
	for _, c := range cases {
		for _, q := range queries {
			if c.only != "" && q.name != c.only {
				continue
			}
			t.Run(c.name+"/"+q.name, func(t *testing.T) {
				nstest.NoFDLeak(t)
				err := q.fn(c.ref(t))
				if err == nil {
					t.Fatalf("%s succeeded, want %v", q.name, c.wants)
				}
				var e *nsrel.Error
				if !errors.As(err, &e) {
					t.Errorf("error %T is not *nsrel.Error: %v", err, err)
				}
				for _, w := range c.wants {
					if !errors.Is(err, w) {
						t.Errorf("errors.Is(%q, %v) = false", err, w)
					}
				}
				if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "nsrel: ") {
					t.Errorf("error %q is not one line starting with nsrel:", err)
				}
			})
		}
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := nsrel.Parent(nsrel.Path("/proc/self/ns/user"))
	want := "nsrel: /proc/self/ns/user (user:[4026531837]): ioctl NS_GET_PARENT: operation not permitted"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	_, err = nsrel.TypeOf(nsrel.Path("/dev/null"))
	want = "nsrel: /dev/null: ioctl NS_GET_NSTYPE: not a namespace"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestNamespaceHandle(t *testing.T) {
	nstest.NoFDLeak(t)
	ns, err := nsrel.Open("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	if ns.String() != "/proc/self/ns/user" {
		t.Errorf("String() = %q", ns.String())
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := nsrel.TypeOf(ns); !errors.Is(err, unix.EBADF) {
		t.Errorf("TypeOf(closed handle) = %v, want EBADF", err)
	}
	if _, err := nsrel.Open("/dev/null"); !errors.Is(err, nsrel.ErrNotNamespace) {
		t.Errorf("Open(/dev/null) = %v, want ErrNotNamespace", err)
	}
	if _, err := nsrel.Open("/nonexistent/ns"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
}

func TestParentHandleNamesItself(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	p := nstest.UserChain(t, 1)
	parent, err := nsrel.Parent(nsrel.Path(nstest.NSPath(p.Pid, "user")))
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	if got, want := parent.String(), "user:[4026531837]"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestID(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.UserChain(t, 1)
	forEachRef(t, func(t *testing.T, k refKind) {
		self, err := nsrel.ID(k.make(t, "/proc/self/ns/user"))
		if errors.Is(err, errors.ErrUnsupported) {
			nstest.Require(t, false, "kernel without NS_GET_ID (Linux < 6.18)")
		}
		if err != nil {
			t.Fatal(err)
		}
		init, err := nsrel.ID(k.make(t, "/proc/thread-self/ns/user"))
		if err != nil {
			t.Fatal(err)
		}
		child, err := nsrel.ID(k.make(t, nstest.NSPath(p.Pid, "user")))
		if err != nil {
			t.Fatal(err)
		}
		if self == 0 || self != init || child == init {
			t.Errorf("IDs: self %d, init %d, child %d; want self == init != child, non-zero", self, init, child)
		}
		if _, err := nsrel.ID(k.make(t, "/dev/null")); !errors.Is(err, nsrel.ErrNotNamespace) {
			t.Errorf("ID(/dev/null) = %v, want ErrNotNamespace", err)
		}
	})
}

func TestIdentifyMatchesStat(t *testing.T) {
	forEachRef(t, func(t *testing.T, k refKind) {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
			t.Fatal(err)
		}
		got := ident(t, k.make(t, "/proc/self/ns/pid"))
		if diff := cmp.Diff(nsrel.Ident{Dev: st.Dev, Ino: st.Ino}, got); diff != "" {
			t.Errorf("Identify mismatch (-stat +got):\n%s", diff)
		}
	})
}

// TestMain checks that the tests run in the initial user and PID
// namespaces, which several cases use as the top of a hierarchy.
func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeProcEnv); mode != "" {
		fakeProcChild(mode)
	}
	for typ, ino := range map[string]uint64{"user": nsrel.InitialUserNSIno, "pid": nsrel.InitialPIDNSIno} {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/"+typ, &st); err != nil || st.Ino != ino {
			println("nsrel tests must run in the initial", typ, "namespace")
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// TestNotNamespaceNeverOpened gives Open and every query on a Path a FIFO
// and a regular file: each must fail at once with ErrNotNamespace (and
// ENOTTY), without opening the file for reading, which for the FIFO
// waited for a writer for good.
func TestNotNamespaceNeverOpened(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not a namespace\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		fn   func(string) error
	}{
		{"Open", func(p string) error { ns, err := nsrel.Open(p); ns.Close(); return err }},
		{"TypeOf", func(p string) error { _, err := nsrel.TypeOf(nsrel.Path(p)); return err }},
		{"Parent", func(p string) error { ns, err := nsrel.Parent(nsrel.Path(p)); ns.Close(); return err }},
		{"OwnerUserNS", func(p string) error { ns, err := nsrel.OwnerUserNS(nsrel.Path(p)); ns.Close(); return err }},
		{"OwnerUID", func(p string) error { _, err := nsrel.OwnerUID(nsrel.Path(p)); return err }},
		{"Identify", func(p string) error { _, err := nsrel.Identify(nsrel.Path(p)); return err }},
		{"NameOf", func(p string) error { _, err := nsrel.NameOf(nsrel.Path(p)); return err }},
		{"ID", func(p string) error { _, err := nsrel.ID(nsrel.Path(p)); return err }},
	}
	for _, path := range []string{fifo, file} {
		for _, c := range calls {
			t.Run(filepath.Base(path)+"/"+c.name, func(t *testing.T) {
				nstest.NoFDLeak(t)
				done := make(chan error, 1)
				go func() { done <- c.fn(path) }()
				var err error
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					// Release the blocked open with a writer.
					if fd, werr := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); werr == nil {
						unix.Close(fd)
					}
					<-done
					t.Fatalf("%s(%s) still blocked after 10s: the file was opened for reading", c.name, path)
				}
				for _, w := range []error{nsrel.ErrNotNamespace, unix.ENOTTY} {
					if !errors.Is(err, w) {
						t.Errorf("%s(%s) = %v, want an error matching %v", c.name, path, err, w)
					}
				}
				if e := new(nsrel.Error); !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "nsrel: "+path+": ") {
					t.Errorf("%s(%s) = %v (%T), want an *nsrel.Error naming the path", c.name, path, err, err)
				}
			})
		}
	}
}

// TestOpenWithoutProc opens namespaces as on a system without /proc,
// where a checked path is opened again by name (O_NONBLOCK, O_NOCTTY)
// and checked to be the same file.
func TestOpenWithoutProc(t *testing.T) {
	nstest.NoFDLeak(t)
	defer nsrel.SetThreadFDs(filepath.Join(t.TempDir(), "none") + "/")()
	ns, err := nsrel.Open("/proc/self/ns/user")
	if err != nil {
		t.Fatalf("Open without /proc/thread-self: %v", err)
	}
	defer ns.Close()
	if typ, err := nsrel.TypeOf(nsrel.Path("/proc/self/ns/pid")); err != nil || typ != nsrel.TypePID {
		t.Errorf("TypeOf(/proc/self/ns/pid) = %v, %v; want pid", typ, err)
	}
	if _, err := nsrel.Open("/dev/null"); !errors.Is(err, nsrel.ErrNotNamespace) {
		t.Errorf("Open(/dev/null) = %v, want ErrNotNamespace", err)
	}
}

// TestOpenBlocking: a namespace Open returns is in blocking mode, with
// and without /proc. It was opened O_NONBLOCK (a FIFO swapped in for the
// path must not block the open) and left so, and os.NewFile took it for
// a pollable file: it set up the runtime's poller (epoll_create1, an
// eventfd, an epoll_ctl that failed), which Open exists to avoid.
func TestOpenBlocking(t *testing.T) {
	for _, proc := range []bool{true, false} {
		t.Run(fmt.Sprintf("proc=%v", proc), func(t *testing.T) {
			if !proc {
				defer nsrel.SetThreadFDs(filepath.Join(t.TempDir(), "none") + "/")()
			}
			ns, err := nsrel.Open("/proc/self/ns/user")
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			// Not Fd(), which would set blocking mode itself.
			rc, err := ns.File().SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var nonblock bool
			var nerr error
			if err := rc.Control(func(fd uintptr) {
				var fl int
				fl, nerr = unix.FcntlInt(fd, unix.F_GETFL, 0)
				nonblock = fl&unix.O_NONBLOCK != 0
			}); err != nil || nerr != nil {
				t.Fatal(err, nerr)
			}
			if nonblock {
				t.Error("the namespace's descriptor is O_NONBLOCK")
			}
		})
	}
}

// fakeProcEnv makes the test binary, started by TestOpenFakeProc in a
// mount namespace of its own, play a /proc that is not procfs.
const fakeProcEnv = "NSREL_TEST_FAKE_PROC"

// fakeProcChild bind-mounts its user namespace on $DIR/user and its UTS
// namespace on $DIR/other, mounts a tmpfs on /proc whose
// thread-self/fd/N are symlinks to $DIR/fifo (mode "fifo") or to
// $DIR/other (mode "other"), opens $DIR/user, and prints "user INO" and
// what it opened as "got NAME" or "error ERR". It exits.
func fakeProcChild(mode string) {
	dir := os.Getenv("DIR")
	fail := func(step string, err error) {
		fmt.Printf("setup %s: %v\n", step, err)
		os.Exit(1)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil {
		fail("stat", err)
	}
	for name, ns := range map[string]string{"user": "user", "other": "uts"} {
		if err := unix.Mount("/proc/self/ns/"+ns, filepath.Join(dir, name), "", unix.MS_BIND, ""); err != nil {
			fail("bind "+name, err)
		}
	}
	if err := unix.Mount("fakeproc", "/proc", "tmpfs", 0, ""); err != nil {
		fail("mount /proc", err)
	}
	fds := "/proc/thread-self/fd"
	if err := os.MkdirAll(fds, 0o755); err != nil {
		fail("mkdir", err)
	}
	target := filepath.Join(dir, mode)
	for n := 0; n < 1024; n++ {
		if err := os.Symlink(target, filepath.Join(fds, strconv.Itoa(n))); err != nil {
			fail("symlink", err)
		}
	}
	fmt.Printf("user %d\n", st.Ino)
	done := make(chan string, 1)
	go func() {
		ns, err := nsrel.Open(filepath.Join(dir, "user"))
		if err != nil {
			done <- "error " + err.Error()
			return
		}
		defer ns.Close()
		name, err := nsrel.NameOf(ns)
		if err != nil {
			done <- "error NameOf: " + err.Error()
			return
		}
		done <- "got " + name.String()
	}()
	select {
	case r := <-done:
		fmt.Println(r)
	case <-time.After(10 * time.Second):
		fmt.Println("blocked: still opening after 10s")
	}
	os.Exit(0)
}

// TestOpenFakeProc opens a namespace where /proc is a tmpfs whose
// /proc/thread-self/fd/N are symlinks to a FIFO or to another
// namespace: the reopen through it was taken as it came, so Open blocked
// on the FIFO or returned the other namespace. It must open the
// namespace the path names, as without /proc.
func TestOpenFakeProc(t *testing.T) {
	nstest.RequireRoot(t)
	for _, mode := range []string{"fifo", "other"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"user", "other"} {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("/proc/self/exe")
			cmd.Env = append(os.Environ(), fakeProcEnv+"="+mode, "DIR="+dir)
			// Go makes the new mount namespace's mounts private.
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			var ino uint64
			if _, err := fmt.Sscanf(string(out), "user %d\n", &ino); err != nil {
				t.Fatalf("child said %q", out)
			}
			if want := fmt.Sprintf("user %d\ngot user:[%d]\n", ino, ino); string(out) != want {
				t.Errorf("Open with thread-self/fd/N linking to %s: child said\n%s\nwant\n%s", mode, out, want)
			}
		})
	}
}
