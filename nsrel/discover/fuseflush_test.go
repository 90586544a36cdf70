package discover_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// situationFlip opens the file $FLIP_FILE (on the test's FUSE file
// system), makes 16 sockets, and then swaps the sockets and the file
// onto descriptors 100 to 115 without end, as a user racing the scan's
// copy of a socket would.
func situationFlip() {
	f, err := unix.Open(os.Getenv("FLIP_FILE"), unix.O_RDONLY, 0)
	if err != nil {
		die("open", err)
	}
	// The sockets' own descriptors come after 100 to 115: the scan asks
	// a socket at the first descriptor it meets it at.
	var socks [16]int
	for i := range socks {
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
		if err != nil {
			die("socket", err)
		}
		if socks[i], err = unix.FcntlInt(uintptr(s), unix.F_DUPFD, 500+i); err != nil {
			die("dup", err)
		}
		unix.Close(s)
	}
	fmt.Println("ready")
	// Half the time sockets, half the file: the scan must read a link
	// while it is a socket and copy it once it is the file.
	for {
		for i, s := range socks {
			unix.Dup2(s, 100+i)
		}
		time.Sleep(200 * time.Microsecond)
		for i := range socks {
			unix.Dup2(f, 100+i)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// flushServer is a FUSE file system of one regular file, "f", served by
// a goroutine of the test, that answers a FLUSH (sent at every close of
// one of its files) only from the processes it is told to: the others
// wait for good, uninterruptibly, until the connection is aborted.
type flushServer struct {
	dir  string
	fd   int
	conn string // /sys/fs/fuse/connections/N
	mu   sync.Mutex
	// answer are the processes whose FLUSH is answered; fromScan counts
	// the FLUSH requests of this process (the scan's), held counts those
	// not answered.
	answer   map[int]bool
	fromScan int
	held     int
}

var le = binary.LittleEndian

func startFlushServer(t *testing.T) *flushServer {
	t.Helper()
	nstest.RequireRoot(t)
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	nstest.Require(t, err == nil, "/dev/fuse: %v", err)
	s := &flushServer{dir: t.TempDir(), fd: fd, answer: map[int]bool{}}
	opts := "fd=" + strconv.Itoa(fd) + ",rootmode=40000,user_id=0,group_id=0,allow_other"
	if err := unix.Mount("nsrel-flush", s.dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatalf("mount fuse: %v", err)
	}
	go s.serve()
	var st unix.Stat_t
	if err := unix.Stat(s.dir, &st); err != nil {
		t.Fatal(err)
	}
	// The connection's abort file, on the fuse control file system
	// (mounted here for the test when it is not).
	const ctl = "/sys/fs/fuse/connections"
	if ents, err := os.ReadDir(ctl); err == nil && len(ents) == 0 {
		if err := unix.Mount("fusectl", ctl, "fusectl", 0, ""); err == nil {
			t.Cleanup(func() { unix.Unmount(ctl, unix.MNT_DETACH) })
		}
	}
	s.conn = ctl + "/" + strconv.FormatUint(uint64(unix.Minor(st.Dev)), 10)
	if _, err := os.Stat(s.conn + "/abort"); err != nil {
		t.Fatalf("the FUSE connection's abort file: %v", err)
	}
	t.Cleanup(func() {
		// Releases whoever waits for a FLUSH, then the mount.
		os.WriteFile(s.conn+"/abort", []byte("1"), 0)
		unix.Unmount(s.dir, unix.MNT_DETACH)
		unix.Close(fd)
	})
	return s
}

func (s *flushServer) serve() {
	buf := make([]byte, 1<<20+4096)
	attr := func(b []byte, ino uint64, mode uint32) {
		le.PutUint64(b[0:], ino)
		le.PutUint32(b[60:], mode)
		le.PutUint32(b[64:], 1)
		le.PutUint32(b[80:], 4096)
	}
	for {
		n, err := unix.Read(s.fd, buf)
		if err == unix.EINTR || err == unix.ENOENT {
			continue
		}
		if err != nil {
			return // aborted, unmounted
		}
		in := buf[:n]
		op, uniq, node, pid := le.Uint32(in[4:]), le.Uint64(in[8:]), le.Uint64(in[16:]), int(le.Uint32(in[32:]))
		body := in[40:]
		reply := func(errno unix.Errno, out []byte) {
			h := make([]byte, 16+len(out))
			le.PutUint32(h[0:], uint32(len(h)))
			le.PutUint32(h[4:], uint32(-int32(errno)))
			le.PutUint64(h[8:], uniq)
			copy(h[16:], out)
			unix.Write(s.fd, h)
		}
		switch op {
		case 26: // INIT
			out := make([]byte, 64)
			le.PutUint32(out[0:], 7)
			le.PutUint32(out[4:], 31)
			le.PutUint32(out[8:], le.Uint32(body[8:]))
			le.PutUint32(out[20:], 4096)
			reply(0, out)
		case 1: // LOOKUP
			if string(body[:max(len(body)-1, 0)]) != "f" {
				reply(unix.ENOENT, nil)
				continue
			}
			out := make([]byte, 128)
			le.PutUint64(out[0:], 2)
			attr(out[40:], 2, unix.S_IFREG|0o644)
			reply(0, out)
		case 3: // GETATTR
			out := make([]byte, 104)
			if node == 1 {
				attr(out[16:], 1, unix.S_IFDIR|0o755)
			} else {
				attr(out[16:], 2, unix.S_IFREG|0o644)
			}
			reply(0, out)
		case 14, 27: // OPEN, OPENDIR
			reply(0, make([]byte, 16))
		case 25: // FLUSH
			tgid := pid
			if v, ok := statusTgid(pid); ok {
				tgid = v
			}
			s.mu.Lock()
			ok := s.answer[tgid]
			switch {
			case tgid == os.Getpid():
				s.fromScan++
				ok = true // counted, and let go: the test must end
			case !ok:
				s.held++
			}
			s.mu.Unlock()
			if ok {
				reply(0, nil)
			}
		case 2, 42, 36: // FORGET, BATCH_FORGET, INTERRUPT: no reply
		case 18, 29: // RELEASE, RELEASEDIR
			reply(0, nil)
		default:
			reply(unix.ENOSYS, nil)
		}
	}
}

func statusTgid(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	_, rest, ok := strings.Cut(string(b), "\nTgid:")
	if !ok {
		return 0, false
	}
	line, _, _ := strings.Cut(rest, "\n")
	v, err := strconv.Atoi(strings.TrimSpace(line))
	return v, err == nil
}

// TestSocketSwappedForFUSEFile: a process swaps a file of a FUSE file
// system onto its sockets' descriptors, in a loop, while the scan copies
// them to ask their network namespaces; the server answers no FLUSH but
// its own processes'. The scan copied the file, saw it was no socket
// and closed it: the close sent the server a FLUSH and waited for it,
// uninterruptibly, for good (kill -9 left the process a zombie whose
// thread waited on). Any user who may mount FUSE could so hang root's
// lsuserns. The scan itself must never close such a copy: it ends, the
// FLUSH comes from a helper process it gave up, and after so many such
// helpers (four; one here) it asks no more sockets and says so.
func TestSocketSwappedForFUSEFile(t *testing.T) {
	s := startFlushServer(t)
	discover.SetSockAnswerWait(t, 300*time.Millisecond)
	discover.SetMaxSockHelpersLost(t, 1) // after one, no more sockets are asked
	flip, _ := startSituation(t, "flip", nil, nil, "FLIP_FILE="+filepath.Join(s.dir, "f"))
	s.mu.Lock()
	s.answer[flip.Process.Pid] = true
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		done := make(chan *discover.Model, 1)
		go func() {
			m, err := discover.Discover(discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
			if err != nil {
				t.Error(err)
			}
			done <- m
		}()
		var m *discover.Model
		select {
		case m = <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("the scan still runs after 60 s")
		}
		s.mu.Lock()
		fromScan, held := s.fromScan, s.held
		s.mu.Unlock()
		if fromScan > 0 {
			t.Fatalf("scan %d: the scanning process closed %d copies of the FUSE file (each FLUSH would have held it for good)", i, fromScan)
		}
		if held > 0 && m != nil && m.SkippedSockets > 0 {
			// The race was met, a helper holds a close, and the rest
			// were not asked.
			if !strings.Contains(m.Notice(), "met files in sockets' places, or did not answer in time, 1 in all") || m.UnaskedSockets != m.SkippedSockets {
				t.Errorf("scan %d: %d sockets not asked (%d for want of a helper); notice %q", i, m.SkippedSockets, m.UnaskedSockets, m.Notice())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d scans, no copy of a swapped descriptor (the race was never met): held %d, skipped %d, flipper wchan %s", i+1, held, m.SkippedSockets, wchan(flip.Process.Pid))
		}
	}
}

func wchan(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
	return string(b)
}
