package discover_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// lowNofile is the RLIMIT_NOFILE (soft and hard) of the scans that must
// run out of file descriptors; manyUserNS is how many user namespaces
// the tests hold, more than that.
const (
	lowNofile  = 64
	manyUserNS = 2 * lowNofile
)

// lowNofileHelper lowers RLIMIT_NOFILE to lowNofile, before anything has
// opened a file, and prints what a scan found: the scan holds every
// namespace open, so it runs out of descriptors.
func lowNofileHelper() {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lowNofile, Max: lowNofile}); err != nil {
		fmt.Println("ERROR: setrlimit:", err)
		os.Exit(1)
	}
	m, err := discover.Discover(discover.Options{})
	if err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(1)
	}
	fmt.Printf("OUTOFFDS: %d\nUSERNS: %d\nNOTICE: %s\n", m.OutOfFDs, len(m.Of(nsrel.TypeUser)), m.Notice())
}

// TestMoreNamespacesThanFDs scans, with RLIMIT_NOFILE lower than the
// number of user namespaces, in a child process that has opened no file
// before (the Go runtime's poller is not set up yet): the scan must not
// crash the program, and must count the opens that found no descriptor
// left, which the notice says, instead of leaving namespaces out
// silently.
func TestMoreNamespacesThanFDs(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.HoldUserNamespaces(t, manyUserNS)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "NSREL_DISCOVER_HELPER=nofile")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scan with RLIMIT_NOFILE %d: %v\n%s", lowNofile, err, out)
	}
	var outOf, users int
	if _, err := fmt.Sscanf(string(out), "OUTOFFDS: %d\nUSERNS: %d\n", &outOf, &users); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if outOf == 0 {
		t.Errorf("%d user namespaces of more than %d found with RLIMIT_NOFILE %d, and no open counted as out of descriptors:\n%s", users, manyUserNS, lowNofile, out)
	}
	if want := "ran out of file descriptors (too many open files): could not open "; !strings.Contains(string(out), want) {
		t.Errorf("notice does not say %q:\n%s", want, out)
	}
}
