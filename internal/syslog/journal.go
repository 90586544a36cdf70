package syslog

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"
)

// AppendJournalField appends one field in journald's native protocol
// (systemd.io/JOURNAL_NATIVE_PROTOCOL; the journal export format encodes
// fields alike): NAME=value and a newline, or, when the value has a
// newline, NAME, a newline, the value's length as 64-bit little endian,
// the value and a newline.
func AppendJournalField(b []byte, name, value string) []byte {
	if !strings.Contains(value, "\n") {
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, name...)
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// SendLine sends one diagnostic line msg of app with severity sev to t
// (syslog: MSGID "diag", no structured data; journald: MESSAGE,
// PRIORITY, SYSLOG_IDENTIFIER, SYSLOG_FACILITY). It is for binaries
// without a logger (the tree commands); msg should be printable already.
func SendLine(ctx context.Context, t Target, sev int, app, msg string) error {
	switch t.Kind {
	case "syslog":
		host, _ := os.Hostname()
		return Send(ctx, t.Syslog, Message(time.Now(), sev, host, app, "diag", []byte(msg)))
	case "journald":
		var b []byte
		b = AppendJournalField(b, "MESSAGE", msg)
		b = AppendJournalField(b, "PRIORITY", fmt.Sprint(sev))
		b = AppendJournalField(b, "SYSLOG_IDENTIFIER", app)
		b = AppendJournalField(b, "SYSLOG_FACILITY", fmt.Sprint(facilityAuthpriv))
		return Send(ctx, Dest{Network: "unixgram", Address: t.Journal}, b)
	}
	return fmt.Errorf("syslog: %s is not a syslog or journald target", t)
}
