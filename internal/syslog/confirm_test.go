package syslog_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/syslog"
)

// TestSendTCPConfirmed: over TCP a message counts as sent only once the
// server read it and closed its end. A write alone succeeded whatever
// the server did: one that never reads (hung), and a TLS port that takes
// the bytes and answers with an alert, counted as sent (a checkpoint
// counted shipped, never retried, no failure to alert on).
func TestSendTCPConfirmed(t *testing.T) {
	msg := syslog.Message(time.Now(), syslog.Info, "node", "nsrel", "checkpoint", []byte(`{"seq":1}`))
	serve := func(t *testing.T, handle func(net.Conn)) string {
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
