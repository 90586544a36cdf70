package syslog_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
)

// TestSendChecksSocket checks that Send sends to a local socket only
// when it is trusted as a file written there would have to be: a socket
// in a directory another user owns, or one another user bound, got the
// message (root's diagnostics, the checkpoints, which then counted as
// shipped). Journald's socket is sent to the same way.
func TestSendChecksSocket(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	theirs := filepath.Join(dir, "theirs")
	nstest.Mkdirs(t, 0o755, mine, theirs)
	listen := func(path string) net.PacketConn {
		c, err := net.ListenPacket("unixgram", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	trusted := listen(filepath.Join(mine, "log.sock"))
	inTheirs := listen(filepath.Join(theirs, "log.sock"))
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	bound := listen(filepath.Join(mine, "bound.sock"))
	if err := os.Lchown(filepath.Join(mine, "bound.sock"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	received := func(c net.PacketConn) bool {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 1024)
		_, _, err := c.ReadFrom(buf)
		return err == nil
	}
	for _, tc := range []struct {
		target string
		c      net.PacketConn
		ok     bool
	}{
		{"unix://" + filepath.Join(mine, "log.sock"), trusted, true},
		{"journald://" + filepath.Join(mine, "log.sock"), trusted, true},
		{"unix://" + filepath.Join(theirs, "log.sock"), inTheirs, false},
		{"journald://" + filepath.Join(theirs, "log.sock"), inTheirs, false},
		{"unix://" + filepath.Join(mine, "bound.sock"), bound, false},
	} {
		target, err := syslog.ParseTarget(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		err = syslog.SendLine(context.Background(), target, syslog.Err, "nsrel-hook", "container refused")
		if got := received(tc.c); got != tc.ok || (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, safefile.ErrUntrusted)) {
			t.Errorf("%s: sent %v (err %v), want %v", tc.target, got, err, tc.ok)
		}
	}
}

// TestSendChecksSocketAsUser runs Send as uid 65534 (the test binary
// again, as TestSendAsUserHelper): a socket of its own, in a directory
// of its own, is trusted, as is root's; one of another user's (1000) is
// not.
func TestSendChecksSocketAsUser(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	// Let uid 65534 through t.TempDir's directories (0700).
	for d := dir; strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "syslog.test")
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	own, other := filepath.Join(dir, "own"), filepath.Join(dir, "other")
	nstest.Mkdirs(t, 0o755, own, other)
	for _, tc := range []struct {
		path string
		uid  int
		ok   bool
	}{
		{filepath.Join(own, "log.sock"), 65534, true},
		{filepath.Join(dir, "root.sock"), 0, true},
		{filepath.Join(own, "theirs.sock"), 1000, false},
	} {
		c, err := net.ListenPacket("unixgram", tc.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		os.Chmod(tc.path, 0o666)
		if err := os.Lchown(tc.path, tc.uid, tc.uid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(own, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(own, "log.sock"), "sent"},
		{filepath.Join(dir, "root.sock"), "sent"},
		{filepath.Join(own, "theirs.sock"), filepath.Join(own, "theirs.sock") + ": a socket owned by uid 1000, not root or uid 65534: refusing it: not trusted"},
	} {
		cmd := exec.Command(bin, "-test.run=^TestSendAsUserHelper$", "-test.v")
		cmd.Env = []string{"NSREL_TEST_SEND_TO=" + tc.path}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "send: "+tc.want) {
			t.Errorf("as uid 65534 to %s: %v\n%s\nwant %q", tc.path, err, out, tc.want)
		}
	}
}

// TestSendAsUserHelper sends to the socket NSREL_TEST_SEND_TO names, for
// TestSendChecksSocketAsUser, and says how it went; without it, it does
// nothing.
func TestSendAsUserHelper(t *testing.T) {
	path := os.Getenv("NSREL_TEST_SEND_TO")
	if path == "" {
		return
	}
	if err := syslog.Send(context.Background(), syslog.Dest{Network: "unixgram", Address: path}, []byte("x")); err != nil {
		t.Logf("send: %v", err)
	} else {
		t.Logf("send: sent")
	}
}
