package containers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/safefile"
)

func TestFindHelper(t *testing.T) {
	base := t.TempDir()
	empty, untrusted, good := filepath.Join(base, "empty"), filepath.Join(base, "untrusted"), filepath.Join(base, "good")
	for _, d := range []string{empty, untrusted, good} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for dir, mode := range map[string]os.FileMode{untrusted: 0o775, good: 0o755} {
		p := filepath.Join(dir, HelperName)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := findHelper([]string{empty, good}); err != nil || p != filepath.Join(good, HelperName) {
		t.Errorf("findHelper(empty, good) = %q, %v", p, err)
	}
	// A helper others may replace is refused, not skipped for the next.
	if _, err := findHelper([]string{untrusted, good}); !errors.Is(err, safefile.ErrUntrusted) {
		t.Errorf("findHelper(untrusted, good): %v, want ErrUntrusted", err)
	}
	if _, err := findHelper([]string{empty}); err == nil || !strings.Contains(err.Error(), "is not installed (looked in "+filepath.Join(empty, HelperName)) {
		t.Errorf("findHelper(empty): %v", err)
	}
}

func TestHelperTimeout(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		timeout, left, want time.Duration
	}{
		{5 * time.Second, 30 * time.Second, 5 * time.Second}, // the caller's deadline is far
		{5 * time.Second, 2 * time.Second, 1700 * ms},        // 300 ms kept
		{400 * ms, 355 * ms, 177500 * time.Microsecond},      // --container-timeout 400ms: half kept
		{400 * ms, 600 * ms, 300 * ms},
		{1 * time.Second, 0, ms}, // the deadline passed: the run is ended anyway
		{1 * time.Second, -5 * ms, ms},
	} {
		got := helperTimeout(tc.timeout, tc.left)
		if got != tc.want {
			t.Errorf("helperTimeout(%v, %v) = %v, want %v", tc.timeout, tc.left, got, tc.want)
		}
		if tc.left > 0 && got >= tc.left {
			t.Errorf("helperTimeout(%v, %v) = %v: not inside the caller's deadline", tc.timeout, tc.left, got)
		}
	}
}

// TestHelperKilledAfterList: a helper that printed its list and was
// killed before it exited (the caller's context ended) gives that list,
// as a partial answer; before, nothing but the context's error.
func TestHelperKilledAfterList(t *testing.T) {
	dir := t.TempDir()
	printed := filepath.Join(dir, "printed")
	src := standInHelper(t, dir, "#!/bin/sh\nprintf '[{\"id\":\"c1\",\"engine\":\"containerd\",\"namespace\":\"aaa\",\"pid\":1}]\\n'\n: > "+printed+"\nexec sleep 3600\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancelled once the list is out, as a deadline would end it.
		defer cancel()
		waitFile(printed)
	}()
	cs, err := src.List(ctx)
	var pe *PartialError
	if len(cs) != 1 || cs[0].ID != "c1" || !errors.As(err, &pe) || !errors.Is(err, context.Canceled) {
		t.Errorf("List = %+v, %v; want container c1 and a partial error", cs, err)
	}
}

// TestHelperExitedAsContextEnded: a helper that exited on its own with
// status 1 (a namespace failed, said on stderr) and whose caller's
// context ended before its output was collected gives what it said, not
// the context's error (before: "context canceled", its stderr dropped).
// The stand-in helper leaves a child holding its stdout and stderr, so
// that the run is collected only after the test has cancelled the
// context, once the helper has exited and been reaped.
func TestHelperExitedAsContextEnded(t *testing.T) {
	dir := t.TempDir()
	exited, cancelled := filepath.Join(dir, "exited"), filepath.Join(dir, "cancelled")
	// The child waits (bounded: 10 s each) until the helper is gone,
	// says so, and until the context is cancelled.
	script := "#!/bin/sh\n" +
		"printf '[{\"id\":\"c1\",\"engine\":\"containerd\",\"namespace\":\"aaa\",\"pid\":1}]\\n'\n" +
		"echo '" + HelperName + " containers: namespace zzz: connection error' >&2\n" +
		"parent=$$\n" +
		"(i=0; while kill -0 $parent 2>/dev/null && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; : > " + exited + "\n" +
		" i=0; while [ ! -e " + cancelled + " ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done) &\n" +
		"exit 1\n"
	src := standInHelper(t, dir, script)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancelled once the helper has exited.
		defer os.WriteFile(cancelled, nil, 0o644)
		defer cancel()
		waitFile(exited)
	}()
	cs, err := src.List(ctx)
	var pe *PartialError
	if ctx.Err() == nil {
		t.Fatalf("setup: the context was not cancelled before List returned (%v)", err)
	}
	if len(cs) != 1 || cs[0].ID != "c1" || !errors.As(err, &pe) || err.Error() != "namespace zzz: connection error" || errors.Is(err, context.Canceled) {
		t.Errorf("List = %+v, %v; want container c1 and the helper's error about namespace zzz", cs, err)
	}
}

// standInHelper writes script as a stand-in helper into dir, beside a
// file standing in for the socket (only checked to exist), and returns a
// source that runs it.
func standInHelper(t *testing.T, dir, script string) *HelperSource {
	t.Helper()
	sock, helper := filepath.Join(dir, "containerd.sock"), filepath.Join(dir, HelperName)
	for p, data := range map[string]string{sock: "", helper: script} {
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &HelperSource{Address: sock, Helper: helper, Timeout: time.Minute}
}

// waitFile waits until path exists (bounded: 10 s).
func waitFile(path string) {
	for range 10000 {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
