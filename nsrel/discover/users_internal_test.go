package discover

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// standInGetent makes getent runs use a shell script with body (after
// a line that counts the runs in the returned file) for the rest of the
// test, and gives them timeout in all.
func standInGetent(t *testing.T, body string, timeout time.Duration) (runs string) {
	t.Helper()
	dir := t.TempDir()
	runs = filepath.Join(dir, "runs")
	script := filepath.Join(dir, "getent")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho run >> "+runs+"\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	paths, to := getentPaths, getentTimeout
	getentPaths, getentTimeout = []string{script}, timeout
	t.Cleanup(func() { getentPaths, getentTimeout = paths, to })
	return runs
}

// unnamed returns n UIDs no passwd file names, from first up.
func unnamed(first uint32, n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = first + uint32(i)
	}
	return out
}

func runCount(t *testing.T, runs string) int {
	b, err := os.ReadFile(runs)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

// TestGetentBatchFails: of three getent runs (1,536 UIDs, 512 a run) the
// second fails; the names the first and third gave are kept.
func TestGetentBatchFails(t *testing.T) {
	const first = 3000000000
	runs := standInGetent(t, `shift
for u in "$@"; do
	[ "$u" = `+fmt.Sprint(uint32(first+512))+` ] && exit 1
	echo "u$u:x:$u:$u::/:/bin/sh"
done
`, 30*time.Second)
	users := lookupUsers("", unnamed(first, 3*maxGetentArgs))
	if n := runCount(t, runs); n != 3 {
		t.Fatalf("%d getent runs, want 3", n)
	}
	for _, u := range []uint32{first, first + 511, first + 1024, first + 1535} {
		if want := fmt.Sprintf("u%d", u); users[u] != want {
			t.Errorf("UID %d named %q, want %q", u, users[u], want)
		}
	}
	for _, u := range []uint32{first + 512, first + 1023} {
		if name, ok := users[u]; ok {
			t.Errorf("UID %d of the failed run named %q", u, name)
		}
	}
}

// TestGetentOneDeadline: getent runs share one deadline. Each run
// answers after a second, the deadline is 1.5 s for all: the first
// run's names are kept, the second is stopped at the deadline and the
// third not started (with a deadline per run, all three ran and each
// could wait the whole of it).
func TestGetentOneDeadline(t *testing.T) {
	const first = 3000000000
	runs := standInGetent(t, `sleep 1
shift
for u in "$@"; do echo "u$u:x:$u:$u::/:/bin/sh"; done
`, 1500*time.Millisecond)
	uids := unnamed(first, 3*maxGetentArgs)
	users := lookupUsers("", uids)
	if n := runCount(t, runs); n > 2 {
		t.Errorf("%d getent runs, want at most 2: each run had a deadline of its own", n)
	}
	for _, u := range uids[2*maxGetentArgs:] {
		if name, ok := users[u]; ok {
			t.Fatalf("UID %d named %q by a run after the deadline", u, name)
		}
	}
}

// TestGetentReal asks the system's getent for root and 600 UIDs without
// a name (two runs, the first answering exit status 2: some not found).
func TestGetentReal(t *testing.T) {
	found := false
	for _, p := range getentPaths {
		if _, err := os.Stat(p); err == nil {
			found = true
		}
	}
	if !found {
		t.Skip("no getent")
	}
	users := getent(append(unnamed(3000000000, 600), 0))
	if len(users) != 1 || users[0] != "root" {
		t.Errorf("getent named %v, want only root", users)
	}
}
