package syslog_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
	"github.com/nsrel/nsrel/internal/syslog"
)

// TestSendTCPConfirmed: over TCP a message counts as sent only once the
// server read it and closed its end. A write alone succeeded whatever
// the server did: one that never reads (hung), and a TLS port that takes
// the bytes and answers with an alert, counted as sent (a checkpoint
// counted shipped, never retried, no failure to alert on).
func TestSendTCPConfirmed(t *testing.T) {
	msg := syslog.Message(time.Now(), syslog.Info, "node", "nsrel", "checkpoint", []byte(`{"seq":1}`))
	t.Run("read", func(t *testing.T) {
		got := make(chan string, 1)
		addr := serve(t, func(c net.Conn) {
			defer c.Close()
			br := bufio.NewReader(c)
			n, err := br.ReadString(' ')
			if err != nil {
				return
			}
			size, _ := strconv.Atoi(strings.TrimSpace(n))
			buf := make([]byte, size)
			if _, err := io.ReadFull(br, buf); err == nil {
				got <- string(buf)
			}
			io.Copy(io.Discard, br) // until the sender's end of stream
		})
		if err := syslog.Send(context.Background(), syslog.Dest{Network: "tcp", Address: addr}, msg); err != nil {
			t.Fatalf("Send to a server that read it: %v", err)
		}
		if s := <-got; s != string(msg) {
			t.Errorf("server read %q, want %q", s, msg)
		}
	})
	hung := make(chan struct{})
	t.Cleanup(func() { close(hung) })
	for _, c := range []struct {
		name   string
		addr   func(t *testing.T) string
		reason string
	}{
		{"hung", func(t *testing.T) string {
			return serve(t, func(c net.Conn) { <-hung; c.Close() })
		}, "did not close"},
		{"reads but never closes", func(t *testing.T) string {
			return serve(t, func(c net.Conn) { io.Copy(io.Discard, c); <-hung; c.Close() })
		}, "did not close"},
		{"another protocol that answers (HTTP)", func(t *testing.T) string {
			s := httptest.NewServer(nil)
			t.Cleanup(s.Close)
			return s.Listener.Addr().String()
		}, "sent data back"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := syslog.Send(ctx, syslog.Dest{Network: "tcp", Address: c.addr(t)}, msg)
			if !errors.Is(err, syslog.ErrNotConfirmed) || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("Send: %v, want %v (%s)", err, syslog.ErrNotConfirmed, c.reason)
			}
		})
	}
}

// TestSendTCPRefusedSender: a server that closes the connection at once,
// before the message reached it (rsyslog refusing a sender its
// AllowedSender does not name), ends its stream too, and answers the
// message with a reset that may come after that end: it counted as
// read. Every send to one is a failure now.
func TestSendTCPRefusedSender(t *testing.T) {
	msg := syslog.Message(time.Now(), syslog.Info, "node", "nsrel", "checkpoint", []byte(`{"seq":1}`))
	sendAll := func(t *testing.T, addr string) {
		for i := range 20 {
			err := syslog.Send(context.Background(), syslog.Dest{Network: "tcp", Address: addr}, msg)
			if !errors.Is(err, syslog.ErrNotConfirmed) {
				t.Fatalf("send %d: %v, want %v", i, err, syslog.ErrNotConfirmed)
			}
		}
	}
	t.Run("closes at accept", func(t *testing.T) {
		sendAll(t, serve(t, func(c net.Conn) { c.Close() }))
	})
	// The race made sure: in a network namespace of its own, the
	// message's packets never reach the server, which closes at accept;
	// its end of stream comes, the acknowledgement of the message never.
	// (On loopback the reset mostly comes first, as above.)
	t.Run("message lost, server closed", func(t *testing.T) {
		nstest.RequireRoot(t)
		iptables, ip := nstest.RequireCmd(t, "iptables"), nstest.RequireCmd(t, "ip")
		errc := make(chan error, 1)
		go func() {
			// This thread enters a network namespace of its own and is
			// never given back (it ends with the goroutine): the
			// sockets and commands made from it are in that namespace.
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				errc <- err
				return
			}
			errc <- func() error {
				if out, err := exec.Command(ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
					return fmt.Errorf("ip link set lo up: %v: %s", err, out)
				}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return err
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
				port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
				// Segments to the server carrying data (the message: more
				// than 100 bytes with their headers) or the end of the
				// stream are dropped: nothing makes the server reset.
				for _, rule := range [][]string{{"-m", "length", "--length", "100:65535"}, {"--tcp-flags", "FIN", "FIN"}} {
					args := append(append([]string{"-A", "INPUT", "-p", "tcp", "--dport", port}, rule...), "-j", "DROP")
					if out, err := exec.Command(iptables, args...).CombinedOutput(); err != nil {
						return fmt.Errorf("iptables %q: %v: %s", args, err, out)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				err = syslog.Send(ctx, syslog.Dest{Network: "tcp", Address: ln.Addr().String()}, msg)
				if !errors.Is(err, syslog.ErrNotConfirmed) || !strings.Contains(err.Error(), "without acknowledging") {
					return fmt.Errorf("Send: %v, want %v (closed without acknowledging)", err, syslog.ErrNotConfirmed)
				}
				return nil
			}()
		}()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no result in 30 s")
		}
	})
	t.Run("rsyslog AllowedSender", func(t *testing.T) {
		d := rsyslogtest.New(t, "collector")
		out := d.Path("out.log")
		d.Start(t, fmt.Sprintf(`module(load="imtcp")
$AllowedSender TCP, 10.99.0.0/16
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%q)
action(type="omfile" file=%q)
`, d.PortFile("tcp"), out))
		sendAll(t, fmt.Sprintf("127.0.0.1:%d", d.Port(t, "tcp")))
		d.Stop(t)
		if b, _ := os.ReadFile(out); len(b) != 0 {
			t.Errorf("the refusing rsyslogd wrote %q", b)
		}
	})
}

// serve listens on 127.0.0.1 until the test ends, handing each
// connection to handle, and returns its address.
func serve(t *testing.T, handle func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
