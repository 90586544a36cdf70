package hook_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// TestRecordHostileAnnotations checks that annotation and label values a
// container chooses (long, multi-byte at the cut, invalid UTF-8, control
// characters) are recorded cut at a character boundary and end up in
// records that verify.
func TestRecordHostileAnnotations(t *testing.T) {
	cfg, err := policy.Parse("c.json", []byte(`{"version":1,"audit_log":"/x","record_annotations":["long","invalid","control","missing"],"default":{"mode":"audit"}}`))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", vocab.MaxRecordedValue-1) + "é" // cut inside "é"
	meta := map[string]string{
		"long":    long,
		"invalid": "ab\xc3\x28",
		"control": "x\x1b[31m\n\x00y",
		"other":   "not picked",
	}
	rec, ierr := hook.Decide(cfg, hook.Input{Stage: audit.StageStart, Source: audit.SourceContainerdEvents, ID: "c", Meta: meta})
	want := map[string]string{
		"long":    strings.Repeat("a", vocab.MaxRecordedValue-1),
		"invalid": "ab\uFFFD(",
		"control": "x\x1b[31m\n\x00y",
	}
	if diff := cmp.Diff(want, rec.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if ierr == nil || rec.Error == "" || rec.Ancestry != nil {
		t.Errorf("no process: error %v, record error %q, ancestry %v; want an error and no ancestry", ierr, rec.Error, rec.Ancestry)
	}
	log, path := tempLog(t)
	if err := log.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	audittest.Verify(t, path)
}
