package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
)

// SalvageState reads what it can of a state [DecodeState] refused (too
// large, too many or too long annotations, an ID or bundle too long,
// invalid JSON, cut short): the members of the top-level object up to the
// first syntax error, with the ID cut to [MaxIDLen] bytes, the bundle to
// [MaxBundleLen], at most [MaxAnnotations] annotations each cut to
// [vocab.MaxRecordedValue], and a PID only when it is in range. The
// record of a refused state keeps them, so that no container runs
// unrecorded whatever its creator put in the state.
//
// Annotations whose key keep accepts (nil: none) are kept beyond that
// count, their values cut only at [MaxAnnotationValue]: with
// [SalvageKeep], the keys the config selects blocks by and records. A
// state flooded with annotations that come before them (runtimes write
// them in key order) then selects the same block as it would whole, and
// its record still names the pod.
func SalvageState(data []byte, keep func(key string) bool) *specs.State {
	st := &specs.State{}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return st
	}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return st
		}
		key, _ := t.(string)
		switch key {
		case "id", "bundle", "status", "ociVersion":
			t, err := d.Token()
			if err != nil {
				return st
			}
			s, ok := t.(string)
			if !ok {
				continue
			}
			switch key {
			case "id":
				st.ID = vocab.Cut(s, MaxIDLen)
			case "bundle":
				st.Bundle = vocab.Cut(s, MaxBundleLen)
			case "status":
				st.Status = specs.ContainerState(vocab.Cut(s, 64))
			default:
				st.Version = vocab.Cut(s, 64)
			}
		case "pid":
			t, err := d.Token()
			if err != nil {
				return st
			}
			if n, ok := t.(json.Number); ok {
				if pid, err := n.Int64(); err == nil && pid > 0 && pid < vocab.PIDLimit {
					st.Pid = int(pid)
				}
			}
		case "annotations":
			if !salvageAnnotations(d, st, keep) {
				return st
			}
		default:
			if skipValue(d) != nil {
				return st
			}
		}
	}
	return st
}

// SalvageKeep returns the keep function of [SalvageState] for cfg: the
// annotation keys its trusted selectors and record_annotations name.
func SalvageKeep(cfg *policy.Config) func(key string) bool {
	return func(key string) bool {
		return cfg.TrustedSelectors.TrustsAnnotation(key) || slices.Contains(cfg.RecordAnnotations, key)
	}
}

// salvageAnnotations reads an annotations object, keeping what fits the
// limits and what keep accepts; false when the input ends or breaks
// inside it.
func salvageAnnotations(d *json.Decoder, st *specs.State, keep func(string) bool) bool {
	t, err := d.Token()
	if err != nil {
		return false
	}
	if t != json.Delim('{') {
		return skipRest(d, t) == nil
	}
	kept := map[string]bool{}
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return false
		}
		vt, err := d.Token()
		if err != nil {
			return false
		}
		k, _ := kt.(string)
		v, ok := vt.(string)
		if !ok {
			if skipRest(d, vt) != nil {
				return false
			}
			continue
		}
		if st.Annotations == nil {
			st.Annotations = map[string]string{}
		}
		switch {
		case keep != nil && keep(k):
			kept[k] = true
			st.Annotations[k] = vocab.Cut(v, MaxAnnotationValue)
		case len(st.Annotations)-len(kept) < MaxAnnotations:
			if k := vocab.Cut(k, vocab.MaxRecordedValue); !kept[k] {
				st.Annotations[k] = vocab.Cut(v, vocab.MaxRecordedValue)
			}
		}
	}
	_, err = d.Token() // '}'
	return err == nil
}

// skipValue skips the next value.
func skipValue(d *json.Decoder) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	return skipRest(d, t)
}

// skipRest skips the rest of a value whose first token was t.
func skipRest(d *json.Decoder, t json.Token) error {
	if t != json.Delim('{') && t != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := d.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// ErrInput matches the errors of a state the hook could not take as it
// was: what [RunBadInput] records.
var ErrInput = errors.New("refused input")

// RunBadInput records stage for a container whose state could not be
// read as it was (inputErr says why; st is what [SalvageState] kept): at
// createRuntime and poststart the process named by the salvaged PID is
// inspected and the policy evaluated as usual, and the record says what
// was wrong with the input; on_error decides the verdict, as for any
// other internal error. It returns the Result and an error matching
// [ErrInput].
func (h *Hook) RunBadInput(ctx context.Context, stage string, st *specs.State, inputErr error) (*Result, error) {
	ierr := fmt.Errorf("%w: %w", ErrInput, inputErr)
	// One line, as the record's other errors: a held-open stdin and the
	// partial state it left are two errors joined.
	why := strings.ReplaceAll(inputErr.Error(), "\n", "; ")
	what := "the state was refused (" + vocab.Cut(why, vocab.MaxRecordedError/2) + "); the record keeps what could be read of it"
	var rec *audit.Record
	if stage == audit.StageCreateRuntime || stage == audit.StagePoststart {
		rec, _ = Decide(h.Config, h.input(stage, st))
		if rec.Error != "" {
			what += "; " + rec.Error
		}
		rec.Error = vocab.Cut(what, vocab.MaxRecordedError)
		Judge(h.Config, rec, ierr)
	} else {
		rec = Record(h.Config, h.input(stage, st))
		rec.Error = vocab.Cut(what, vocab.MaxRecordedError)
	}
	_, aerr := h.Log.AppendWith(ctx, func(*audit.Searcher) (*audit.Record, error) { return rec, nil })
	return h.finish(rec, ierr, aerr)
}

// ReadState reads at most [vocab.MaxStateSize]+1 bytes of a state from
// r: enough for [DecodeState] to refuse a larger one, and for
// [SalvageState] to read what it holds.
func ReadState(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, vocab.MaxStateSize+1))
	if err != nil {
		return data, fmt.Errorf("read state: %w", err)
	}
	return data, nil
}

// LimitAnnotations applies the state's limits on annotations to md, the
// annotations a writer other than the hook got from its runtime (the NRI
// plugin), so that both decide alike: nil when md is within them, else
// why not, and md cut as [SalvageState] cuts a refused state's: the keys
// keep accepts kept (values cut at [MaxAnnotationValue]), the others in
// key order up to [MaxAnnotations], each cut to
// [vocab.MaxRecordedValue]. Record the error and let on_error weigh it
// (see [RunBadInput]).
func LimitAnnotations(md map[string]string, keep func(key string) bool) error {
	var err error
	if len(md) > MaxAnnotations {
		err = fmt.Errorf("more than %d annotations", MaxAnnotations)
	}
	for k, v := range md {
		if err == nil && (len(k) > MaxAnnotationValue || len(v) > MaxAnnotationValue) {
			err = fmt.Errorf("annotation longer than %d bytes", MaxAnnotationValue)
		}
	}
	if err == nil {
		return nil
	}
	others := 0
	for _, k := range slices.Sorted(maps.Keys(md)) {
		v := md[k]
		delete(md, k)
		switch {
		case keep != nil && keep(k):
			md[k] = vocab.Cut(v, MaxAnnotationValue)
		case others < MaxAnnotations:
			others++
			if ck := vocab.Cut(k, vocab.MaxRecordedValue); ck == k || keep == nil || !keep(ck) {
				md[ck] = vocab.Cut(v, vocab.MaxRecordedValue)
			}
		}
	}
	return err
}
