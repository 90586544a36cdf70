package containerd

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
)

// peerServeEnv makes the test binary serve a unix socket at its value
// until killed (TestPeerPIDNamespace runs it in a PID namespace of its
// own).
const peerServeEnv = "NSREL_TEST_PEER_SERVE"

// peerCheckEnv makes the test binary check a peer of its own PID
// namespace with the parent's /proc, in the directory its value names.
const peerCheckEnv = "NSREL_TEST_PEER_CHECK"

// TestPeerPIDNamespace: a daemon on the caller's PID namespace passes; one
// the caller sees in a child PID namespace (a containerd in a container,
// such as a kind node, seen from the host) numbers its processes its own
// way and is refused, though SO_PEERCRED gives it a PID here; the
// sources' lookup refuses it too.
func TestPeerPIDNamespace(t *testing.T) {
	if path := os.Getenv(peerServeEnv); path != "" {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		// The socket's file exists from bind(2) on, but a connect before
		// listen(2) is refused: say when it listens.
		os.Stdout.WriteString("listening\n")
		for {
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			go func() { // open until the peer closes it
				c.Read(make([]byte, 1))
				c.Close()
			}()
		}
	}
	if os.Getenv(peerCheckEnv) != "" {
		// In a PID namespace of its own with the parent's /proc: check a
		// peer of this namespace (this very process).
		path := filepath.Join(os.Getenv(peerCheckEnv), "self.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		go closeAccepted(ln)
		if err := CheckPeerPIDNamespace(path); err == nil || !strings.Contains(err.Error(), "/proc is not of this process's PID namespace") {
			t.Fatalf("a peer of this PID namespace, with the parent's /proc: %v; want /proc named", err)
		}
		return
	}
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	dir := t.TempDir()
	here := filepath.Join(dir, "here.sock")
	ln, err := net.Listen("unix", here)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go closeAccepted(ln)
	if err := CheckPeerPIDNamespace(here); err != nil {
		t.Errorf("a peer in this PID namespace: %v", err)
	}

	child := filepath.Join(dir, "child.sock")
	cmd := exec.Command(unshare, "--pid", "--fork", "--kill-child", os.Args[0], "-test.run=^TestPeerPIDNamespace$")
	cmd.Env = append(os.Environ(), peerServeEnv+"="+child)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	listening := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		listening <- line
	}()
	select {
	case line := <-listening:
		if line != "listening\n" {
			t.Fatalf("the server in a child PID namespace said %q, not that it listens", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server in a child PID namespace did not listen in 10 s")
	}
	if err := CheckPeerPIDNamespace(child); err == nil || !strings.Contains(err.Error(), "lives in a PID namespace below this one") {
		t.Errorf("a peer in a child PID namespace: %v; want it refused", err)
	}
	if _, err := NewSource("unix://" + child).List(context.Background()); err == nil || !strings.Contains(err.Error(), "lives in a PID namespace below this one") {
		t.Errorf("the source's lookup of a daemon in a child PID namespace: %v; want it refused", err)
	}

	// Checked from a child PID namespace with this one's /proc, the peer's
	// PID named another process there: the message blamed the peer.
	check := exec.Command(unshare, "--pid", "--fork", "--kill-child", os.Args[0], "-test.run=^TestPeerPIDNamespace$", "-test.v")
	check.Env = append(os.Environ(), peerCheckEnv+"="+dir)
	if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Errorf("check from a child PID namespace with the parent's /proc: %v\n%s", err, out)
	}
}

// closeAccepted accepts connections on ln and closes them, until ln is
// closed.
func closeAccepted(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
