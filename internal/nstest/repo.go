package nstest

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoFile returns the path of rel (slash-separated, e.g.
// "config/hook.json") in this repository, found from the test's working
// directory (its package directory) upwards to go.mod, so that tests of
// any package can read the shipped configs and scripts.
func RepoFile(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, filepath.FromSlash(rel))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory; cannot find %s", rel)
		}
		dir = parent
	}
}
