package audit

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// beforeLock makes AppendAfterLast call f between its search and the
// lock, until the test ends.
func beforeLock(t *testing.T, f func(*searchMark)) {
	testHookBeforeLock = f
	t.Cleanup(func() { testHookBeforeLock = nil })
}

func startOf(id string) *Record {
	return &Record{Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: id,
		Ancestry: &Ancestry{PID: 4242, StartTime: 99}, Verdict: VerdictAllow, Version: "test"}
}

// TestSinceChecksEachGuard checks that the search under the lock trusts
// what the search before it found only while every file that search
// read is still the log's, as it was: a mark changed in any one way (as
// a rotation, retention or a file replaced would change what it notes)
// makes it search again, so that build gets the container's start the
// log holds (in its oldest file), not the record the mark names.
func TestSinceChecksEachGuard(t *testing.T) {
	old := SearchFiles
	SearchFiles = 1000
	t.Cleanup(func() { SearchFiles = old })
	forged := startOf("victim")
	forged.Seq = 1000
	for _, tc := range []struct {
		name   string
		change func(*searchMark)
	}{
		{"unchanged", func(*searchMark) {}},
		{"current inode", func(m *searchMark) { m.files[0].id.ino++ }},
		{"current device", func(m *searchMark) { m.files[0].id.dev++ }},
		{"current birth time", func(m *searchMark) { m.files[0].id.nsec++ }},
		{"current cut below the end read", func(m *searchMark) { m.files[0].end = m.files[0].size + 1 }},
		{"current not there then", func(m *searchMark) { m.files[0].id = fileID{} }},
		{"rotated file's inode", func(m *searchMark) { m.files[1].id.ino++ }},
		{"rotated file's birth time", func(m *searchMark) { m.files[2].id.born++ }},
		{"rotated files swapped", func(m *searchMark) { m.files[1], m.files[2] = m.files[2], m.files[1] }},
		// Found nothing in fewer files than the window holds now.
		{"window smaller then", func(m *searchMark) { m.files, m.prev = m.files[:len(m.files)-1], nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := Open(path, Options{RotateBytes: 1 << 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range append([]string{"victim"}, slices.Repeat([]string{"other"}, 20)...) {
				if err := l.Append(context.Background(), startOf(id)); err != nil {
					t.Fatal(err)
				}
			}
			beforeLock(t, func(m *searchMark) {
				if len(m.files) < 4 || m.prev == nil || m.prev.Seq != 1 {
					t.Fatalf("the search read %d files and found %v; want the start, seq 1, in the oldest of 3 rotated files or more", len(m.files), m.prev)
				}
				m.prev = forged
				tc.change(m)
			})
			// Without rotation: this append must not rotate.
			if l, err = Open(path, Options{}); err != nil {
				t.Fatal(err)
			}
			var prev *Record
			if _, err := l.AppendAfterLast(context.Background(), "victim", StartMatcher(4242, 99), func(p *Record) (*Record, error) {
				prev = p
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			want := uint64(1)
			if tc.name == "unchanged" {
				want = forged.Seq
			}
			if prev == nil || prev.Seq != want {
				t.Errorf("build got %v; want seq %d", prev, want)
			}
		})
	}
}

// TestSearchBeforeLockRefusesUntrusted checks that the search before the
// log's lock, which has not had the log's directory checked, reads no
// file someone else owns: where the directory is missing in a sticky
// directory, another user may make it first, with a current file holding
// a start of the container; should its inode number go to the log's
// current file once the writer made it, that start, taken as in the log,
// would leave the container unrecorded. The search is made again under
// the lock, which refuses the directory.
func TestSearchBeforeLockRefusesUntrusted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (chown)")
	}
	sticky := filepath.Join(t.TempDir(), "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o1777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sticky, "nsrel", "audit.jsonl")
	forgery := filepath.Join(t.TempDir(), "audit.jsonl")
	fl, err := Open(forgery, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Append(context.Background(), startOf("victim")); err != nil {
		t.Fatal(err)
	}
	forged, err := os.ReadFile(forgery)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(path), path} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	read := true
	beforeLock(t, func(m *searchMark) { read = len(m.files) > 0 || m.prev != nil })
	_, err = l.AppendStart(context.Background(), startOf("victim"), 4242, 99)
	if read {
		t.Error("the search before the lock read a file another user owns")
	}
	if err == nil {
		t.Error("AppendStart in a directory another user owns succeeded")
	}
}
