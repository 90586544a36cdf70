package lstool

import (
	"testing"

	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// TestNSLabelQuotesComm: the overlap report names a namespace without
// containers by its first process; a name that could pass for more of
// the line ("x: maps ok") is quoted.
func TestNSLabelQuotesComm(t *testing.T) {
	for comm, want := range map[string]string{
		"sleep":      "user:[4026532176] pid 42 sleep",
		"x: maps ok": `user:[4026532176] pid 42 "x: maps ok"`,
	} {
		n := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532176, Processes: []discover.Process{{PID: 42, Comm: comm}}}
		if got := nsLabel(n); got != want {
			t.Errorf("nsLabel, comm %q: %q, want %q", comm, got, want)
		}
	}
}
