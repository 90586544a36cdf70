// Package syslog sends messages to syslog in the RFC 5424 format, over a
// local datagram socket (/dev/log) or TCP (RFC 6587 octet counting), for
// what must reach an operator or leave the node when everything else
// failed or as it happens: the audit log's checkpoints, the line a hook
// prints when it could not record a container, and the binaries'
// diagnostics with structured data ([MessageSD]). It holds no connection
// between messages, and checks a local socket before each one
// ([safefile.CheckSocket]). [ParseTarget] parses where diagnostics go
// (stderr, syslog or journald), for package logging and the hook's
// config.
package syslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/safefile"
)

// Dest is one syslog destination.
type Dest struct {
	// Network is "unixgram" (a local datagram socket such as /dev/log) or
	// "tcp"; Address a socket path or host:port.
	Network, Address string
}

// Local is the local syslog socket.
var Local = Dest{Network: "unixgram", Address: "/dev/log"}

// String returns the destination as a config writes it:
// unix:///PATH or tcp://HOST:PORT.
func (d Dest) String() string {
	if d.Network == "unixgram" {
		return "unix://" + d.Address
	}
	return d.Network + "://" + d.Address
}

// ParseDest parses "unix:///PATH" or "tcp://HOST:PORT".
func ParseDest(s string) (Dest, error) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Dest{}, fmt.Errorf("syslog destination %q: want unix:///PATH or tcp://HOST:PORT", s)
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) != u.Path {
			return Dest{}, fmt.Errorf("syslog destination %q: want unix:///ABSOLUTE/PATH", s)
		}
		return Dest{Network: "unixgram", Address: u.Path}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || port == "" || u.Path != "" {
			return Dest{}, fmt.Errorf("syslog destination %q: want tcp://HOST:PORT", s)
		}
		return Dest{Network: "tcp", Address: u.Host}, nil
	}
	return Dest{}, fmt.Errorf("syslog destination %q: the scheme must be unix or tcp", s)
}

// Severities used by nsrel.
const (
	Crit    = 2
	Err     = 3
	Warning = 4
	Notice  = 5
	Info    = 6
	Debug   = 7
)

// SDID is the ID of the structured data element nsrel's diagnostics
// carry: a name in the enterprise number 32473 that RFC 5612 reserves
// for documentation and examples, since nsrel has none of its own.
const SDID = "nsrel@32473"

// Param is one SD-PARAM of a structured data element.
type Param struct{ Name, Value string }

// facilityAuthpriv is where nsrel logs: security and authorization
// messages, which systems keep private.
const facilityAuthpriv = 10

// Message formats an RFC 5424 message: facility authpriv, severity sev,
// the time t, host (or "-"), APP-NAME app, this process's PID, MSGID
// msgid, no structured data, and msg (one line) as MSG.
func Message(t time.Time, sev int, host, app, msgid string, msg []byte) []byte {
	return MessageSD(t, sev, host, app, msgid, "", nil, msg)
}

// MessageSD is [Message] with one structured data element, sdID and its
// params, when sdID is not "" (RFC 5424 section 6.3): names are cut to
// valid PARAM-NAMEs, values escaped ('"', '\' and ']' get a backslash).
// Values should be printable already (see vocab.Printable).
func MessageSD(t time.Time, sev int, host, app, msgid, sdID string, params []Param, msg []byte) []byte {
	b := fmt.Appendf(nil, "<%d>1 %s %s %s %d %s ", facilityAuthpriv*8+sev, t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		field(host, 255), field(app, 48), os.Getpid(), field(msgid, 32))
	if sdID == "" {
		b = append(b, '-')
	} else {
		b = append(b, '[')
		b = append(b, sdName(sdID)...)
		for _, p := range params {
			b = append(b, ' ')
			b = append(b, sdName(p.Name)...)
			b = append(b, '=', '"')
			for _, c := range []byte(p.Value) {
				if c == '"' || c == '\\' || c == ']' {
					b = append(b, '\\')
				}
				b = append(b, c)
			}
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	b = append(b, ' ')
	return append(b, msg...)
}

// sdName makes s a valid SD-NAME: printable US-ASCII but '=', ' ', ']'
// and '"', at most 32 characters.
func sdName(s string) string {
	b := []byte(field(s, 32))
	for i, c := range b {
		if c == '=' || c == ']' || c == '"' {
			b[i] = '_'
		}
	}
	return string(b)
}

// field makes s a valid RFC 5424 header field: printable US-ASCII without
// spaces, at most n characters, "-" when empty.
func field(s string, n int) string {
	if s == "" {
		return "-"
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c > '~' {
			b[i] = '_'
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// Timeout bounds the sending of one message to one destination.
const Timeout = time.Second

// Send sends one message to d, giving up at ctx's deadline or after
// [Timeout]. A local socket is checked first ([safefile.CheckSocket]):
// it must be a socket owned by root or the effective user, in
// directories nobody else may write or swap, as a file written there
// would have to be; whoever else bound it would receive the message and
// could swallow it. (A TCP destination is whatever listens there.)
//
// Over TCP a message counts as sent only once the server read it: Send
// closes its side after the message and waits for the server to close
// its own, which a syslog server does once it read everything before
// the end of the stream (RFC 6587 leaves closing to the sender). A
// write alone only says the local kernel took the bytes: a collector
// that hangs took them too. A server that keeps the connection open
// until the deadline, or sends anything back (a port of another
// protocol that answers), is an error ([ErrNotConfirmed]); one that
// reads and closes counts, whatever it did with the bytes (a TLS
// listener given plain text does so: only RELP acknowledges messages),
// and so does one that ended its stream before it read anything and
// took the bytes unread (no syslog server does: the end of its stream is
// all TCP can tell).
func Send(ctx context.Context, d Dest, msg []byte) error {
	if d.Network == "unixgram" {
		if err := safefile.CheckSocket(d.Address); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, d.Network, d.Address)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancelled before its deadline, a send blocked on a full socket
	// or waiting for the server gives up at once.
	defer context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })()
	if d.Network == "tcp" {
		// RFC 6587 octet counting: "LEN SP MSG".
		msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	}
	if _, err = conn.Write(msg); err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		return confirm(ctx, tc)
	}
	return nil
}

// ErrNotConfirmed matches the error of a message sent over TCP that the
// server did not confirm it read ([Send]).
var ErrNotConfirmed = errors.New("not confirmed read by the server")

// confirm ends the stream of c after a message and waits, until c's
// deadline, for the server to end its own: it did once it read the
// message. A server that closed before the message reached it (it
// refused the sender: rsyslog's AllowedSender) ends its stream too, and
// answers the message with a reset, which may come after: the stream's
// end counts once the message and the end of ours are acknowledged,
// with no reset ([acked]).
func confirm(ctx context.Context, c *net.TCPConn) error {
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotConfirmed, err)
	}
	var b [64]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: it sent data back (%d bytes; not a plain syslog receiver, a TLS port?)", ErrNotConfirmed, n)
	case errors.Is(err, io.EOF):
		return acked(ctx, c)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: it did not close the connection after the message in time", ErrNotConfirmed)
	case err == nil:
		return fmt.Errorf("%w: an empty read", ErrNotConfirmed)
	}
	return fmt.Errorf("%w: %w", ErrNotConfirmed, err)
}

// acked waits, until ctx is done, until the kernel says that
// everything c sent was acknowledged (TCP_INFO's unacked segments: the
// message and the end of the stream), with no reset since (SO_ERROR).
// A server that closed before the message reached it answers it with a
// reset, never an acknowledgement. Right after a server that read the
// message closed, both were acknowledged long before.
func acked(ctx context.Context, c *net.TCPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotConfirmed, err)
	}
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		var info *unix.TCPInfo
		var soErr int
		var gerr error
		// TCP_INFO first: a reset empties what is unacknowledged and
		// sets the socket's error under the same lock, so an error read
		// after a count of 0 says whether a reset made it 0. Read the
		// other way round, a reset between the two passed for an
		// acknowledgement (a few sends in 10,000).
		if err := raw.Control(func(fd uintptr) {
			if info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); gerr == nil {
				soErr, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
			}
		}); err != nil {
			gerr = err
		}
		switch {
		case gerr != nil:
			return fmt.Errorf("%w: %w", ErrNotConfirmed, gerr)
		case soErr != 0:
			return fmt.Errorf("%w: it closed and then reset the connection (%w): it did not read the message", ErrNotConfirmed, unix.Errno(soErr))
		case info.Unacked == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: it closed the connection without acknowledging the message in time (it refused the sender?)", ErrNotConfirmed)
		case <-time.After(wait):
		}
	}
}
