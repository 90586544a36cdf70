package containerd

import (
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
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	dir := t.TempDir()
	here := filepath.Join(dir, "here.sock")
	ln, err := net.Listen("unix", here)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := CheckPeerPIDNamespace(here); err != nil {
		t.Errorf("a peer in this PID namespace: %v", err)
	}

	child := filepath.Join(dir, "child.sock")
	cmd := exec.Command(unshare, "--pid", "--fork", "--kill-child", os.Args[0], "-test.run=^TestPeerPIDNamespace$")
	cmd.Env = append(os.Environ(), peerServeEnv+"="+child)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(child); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server in a child PID namespace did not listen in 10 s")
		}
	}
	if err := CheckPeerPIDNamespace(child); err == nil || !strings.Contains(err.Error(), "lives in a PID namespace below this one") {
		t.Errorf("a peer in a child PID namespace: %v; want it refused", err)
	}
	if _, err := NewSource("unix://" + child).List(context.Background()); err == nil || !strings.Contains(err.Error(), "lives in a PID namespace below this one") {
		t.Errorf("the source's lookup of a daemon in a child PID namespace: %v; want it refused", err)
	}
}
