package rsyslogtest_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// TestDaemon starts a daemon with a TCP and a datagram input writing the
// messages' MSG to a file, sends a line with quotes, a backslash and
// non-ASCII through each, and checks that both arrive byte-identical; the
// daemon is gone when the test's cleanups have run.
func TestDaemon(t *testing.T) {
	var dir string
	pid := 0
	t.Run("daemon", func(t *testing.T) {
		d := rsyslogtest.New(t, "collector")
		dir = d.Dir
		sock := d.Path("log.sock")
		d.Start(t, fmt.Sprintf(`module(load="imtcp")
module(load="imuxsock" sysSock.use="off")
template(name="msg" type="string" string="%%msg%%\n")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%q)
input(type="imuxsock" socket=%q useSpecialParser="off" parseHostname="on" rateLimit.interval="0")
action(type="omfile" file=%q template="msg")
`, d.PortFile("tcp"), sock, d.Path("out.log")))
		pid = d.Pid()
		port := d.Port(t, "tcp")
		d.WaitSocket(t, sock)

		msg := []byte(`{"a":"x \"q\" \\ <é 日本>","n":1}`)
		frame := append([]byte("<86>1 2026-01-02T03:04:05.000006Z host app 1 id - "), msg...)
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		// RFC 6587 octet counting.
		if _, err := c.Write(append([]byte(strconv.Itoa(len(frame))+" "), frame...)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		rsyslogtest.WaitLines(t, d.Path("out.log"), 1, d)
		u, err := net.Dial("unixgram", sock)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(frame); err != nil {
			t.Fatal(err)
		}
		u.Close()
		lines := rsyslogtest.WaitLines(t, d.Path("out.log"), 2, d)
		for i, l := range lines {
			if !bytes.Equal(l, msg) {
				t.Errorf("line %d: got %q, want %q", i+1, l, msg)
			}
		}
	})
	// The subtest's cleanups stopped the daemon and removed its directory.
	if pid == 0 {
		return // skipped
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("rsyslogd (pid %d) after the test: kill 0: %v, want ESRCH", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s after the test: %v", dir, err)
	}
}
