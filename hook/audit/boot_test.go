package audit_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
)

// TestBootID checks that BootID is the kernel's boot ID, that a record
// is taken for one of this boot only when it names this boot or none,
// and that the log names this boot in every record it appends, those
// without a process too.
func TestBootID(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSuffix(string(b), "\n")
	if got := audit.BootID(); got != want || len(got) != 36 {
		t.Fatalf("BootID() = %q; want %q", got, want)
	}
	for _, tc := range []struct {
		boot string
		want bool
	}{{want, true}, {"", true}, {audittest.OtherBoot, false}} {
		r := &audit.Record{BootID: tc.boot, Ancestry: &audit.Ancestry{PID: 1, StartTime: 1}}
		if got := r.OfThisBoot(); got != tc.want {
			t.Errorf("OfThisBoot of a record of boot %q = %v; want %v", tc.boot, got, tc.want)
		}
	}
	l, path := newLog(t, audit.Options{})
	r := rec("c")
	r.Ancestry = nil
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	for got, err := range audit.Records(path) {
		if err != nil || got.BootID != want {
			t.Errorf("appended record's boot %q (%v); want this boot's %q", got.BootID, err, want)
		}
	}
}

// TestAppendStartEarlierBoot: a start record of an earlier boot with
// the PID and start time of a process of this boot (after a crash,
// nothing recorded the stop; a user can aim for both, which count from
// boot) is not that process's start. AppendStart took it for one and
// recorded nothing of the container that ran now; the history and the
// hook's poststart took it for the container's start.
func TestAppendStartEarlierBoot(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	earlier := rec("c")
	earlier.BootID = audittest.OtherBoot
	if err := l.Append(context.Background(), earlier); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.HasStart("c", 4242, 99); ok || err != nil {
		t.Errorf("HasStart with an earlier boot's start = %v, %v; want false", ok, err)
	}
	now := rec("c")
	now.Source = audit.SourceContainerdEvents
	now.BootID = audit.BootID()
	got, err := l.AppendStart(context.Background(), now, 4242, 99)
	if got == nil || err != nil {
		t.Fatalf("AppendStart after an earlier boot's start = %v, %v; want it appended", got, err)
	}
	if n := startsOf(t, path, "c"); n != 2 {
		t.Errorf("%d start records; want 2", n)
	}
	// This boot's start, and one naming no boot, are the process's.
	for _, boot := range []string{audit.BootID(), ""} {
		again := rec("c")
		again.BootID = boot
		if got, err := l.AppendStart(context.Background(), again, 4242, 99); got != nil || err != nil {
			t.Errorf("AppendStart after a start of boot %q = %v, %v; want nothing appended", boot, got, err)
		}
	}
	if !audit.StartMatcher(4242, 99)(now) || audit.StartMatcher(4242, 99)(earlier) {
		t.Error("StartMatcher takes an earlier boot's start, or not this boot's")
	}
}
