package hook_test

import (
	"context"
	"errors"
	"fmt"
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

// TestJudgeCutState: a state read only in part, cut at its size limit
// (ErrStateCut) or where its stdin stopped before it was whole
// (ErrStateUnended, as nsrel-hook marks it), is refused whatever on_error
// says when a block selects by annotation, and the record says why;
// without such a block, or for another input error (a whole state whose
// stdin stayed open), on_error decides. Judge used to refuse only the
// state cut at its size limit.
func TestJudgeCutState(t *testing.T) {
	const selects = `{"version":1,"audit_log":"/x","on_error":"allow","trusted_selectors":{"annotations":["io.kubernetes.cri.sandbox-namespace"]},` +
		`"policies":[{"name":"prod","match":{"annotations":{"io\\.kubernetes\\.cri\\.sandbox-namespace":"prod-.*"}},"mode":"enforce"}],"default":{"mode":"audit"}}`
	const plain = `{"version":1,"audit_log":"/x","on_error":"allow","default":{"mode":"audit"}}`
	stdin := errors.New("stdin was not closed in time (61 bytes read)")
	input := func(errs ...error) error { return fmt.Errorf("%w: %w", hook.ErrInput, errors.Join(errs...)) }
	for _, tt := range []struct {
		name, config string
		ierr         error
		refused      bool
	}{
		{"size/selects", selects, input(hook.ErrStateCut), true},
		{"stdin/selects", selects, input(fmt.Errorf("%w: %w", hook.ErrStateUnended, stdin), errors.New("state: unexpected EOF")), true},
		{"stdin/plain", plain, input(fmt.Errorf("%w: %w", hook.ErrStateUnended, stdin)), false},
		{"whole/selects", selects, input(stdin), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := policy.Parse("c.json", []byte(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			rec := &audit.Record{Mode: policy.ModeAudit}
			hook.Judge(cfg, rec, tt.ierr)
			said := strings.Contains(rec.Error, "refused whatever on_error says")
			if want := map[bool]string{true: audit.VerdictDeny, false: audit.VerdictAllow}[tt.refused]; rec.Verdict != want || said != tt.refused {
				t.Errorf("verdict %q error %q; want %s, saying so: %v", rec.Verdict, rec.Error, want, tt.refused)
			}
		})
	}
}
