package idmap_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel/idmap"
)

// TestReadFileLimit: a file is read whole up to the limit, a larger one
// is refused with EFBIG; ReadFile's limit (a map file's) is kept.
func TestReadFileLimit(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("alice:x:1000:1000::/home/alice:/bin/sh\n"), 1000) // 39 KB
	file := filepath.Join(dir, "passwd")
	if err := os.WriteFile(file, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := idmap.ReadFileLimit(file, idmap.MaxPasswdFile); err != nil || !bytes.Equal(got, big) {
		t.Errorf("under the limit: %d bytes, %v; want %d", len(got), err, len(big))
	}
	if _, err := idmap.ReadFileLimit(file, 16<<10); !errors.Is(err, unix.EFBIG) {
		t.Errorf("over the limit: %v, want EFBIG", err)
	}
	if _, err := idmap.ReadFile(file); !errors.Is(err, unix.EFBIG) {
		t.Errorf("ReadFile: %v, want EFBIG", err)
	}
}
