package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestHostIDBase: two test processes at once get ranges apart; the
// second is this test binary run again.
func TestHostIDBase(t *testing.T) {
	if os.Getenv("NSREL_HOST_IDS_CHILD") == "1" {
		fmt.Println(HostIDBase(t))
		return
	}
	mine := HostIDBase(t)
	if mine != HostIDBase(t) || mine < 1_000_000_000 || (mine-1_000_000_000)%HostIDSpan != 0 {
		t.Fatalf("base %d", mine)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHostIDBase$")
	cmd.Env = append(os.Environ(), "NSREL_HOST_IDS_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := strconv.ParseUint(strings.Fields(string(out))[0], 10, 32)
	if err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if uint32(theirs) == mine {
		t.Errorf("both processes got %d", mine)
	}
}
