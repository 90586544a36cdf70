package containers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
