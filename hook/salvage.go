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
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Salvaged is what [SalvageState] read of a refused state.
type Salvaged struct {
	*specs.State
	// WholeID is set when ID is the state's ID as written: there, not
	// cut, and read without U+FFFD replacing anything (an ID holding
	// one, or invalid UTF-8, as [ParseState] checks). Only such an ID
	// is searched by for the container's earlier records ([Hook.RunBadInput]):
	// another container's ID may be its cut.
	WholeID bool
}

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
func SalvageState(data []byte, keep func(key string) bool) *Salvaged {
	sv := &Salvaged{State: &specs.State{}}
	st := sv.State
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return sv
	}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return sv
		}
		key, _ := t.(string)
		switch key {
		case "id", "bundle", "status", "ociVersion":
			off := d.InputOffset()
			t, err := d.Token()
			if err != nil {
				return sv
			}
			s, ok := t.(string)
			if !ok {
				// Not a string: skipped whole, lest its members be read
				// as the state's.
				if skipRest(d, t) != nil {
					return sv
				}
				continue
			}
			switch key {
			case "id":
				st.ID = vocab.Cut(s, MaxIDLen)
				sv.WholeID = s != "" && len(s) <= MaxIDLen &&
					(!strings.ContainsRune(s, utf8.RuneError) || validJSONString(bytes.TrimLeft(data[off:d.InputOffset()], ": \t\r\n")))
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
				return sv
			}
			n, ok := t.(json.Number)
			if !ok {
				// Not a number: skipped whole, lest its members be read
				// as the state's.
				if skipRest(d, t) != nil {
					return sv
				}
				continue
			}
			if pid, err := n.Int64(); err == nil && pid > 0 && pid < vocab.PIDLimit {
				st.Pid = int(pid)
			}
		case "annotations":
			if !salvageAnnotations(d, st, keep) {
				return sv
			}
		default:
			if skipValue(d) != nil {
				return sv
			}
		}
	}
	return sv
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
	c := annotationCutter{keep: keep, md: st.Annotations}
	defer func() { st.Annotations = c.md }()
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
		c.add(k, v)
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

// SearchNote says, for the record of a refused state at poststart or
// poststop (its ID id, read whole or not), whether the container's
// earlier record was searched for by that ID ([Salvaged.WholeID]).
func SearchNote(id string, whole bool) string {
	switch {
	case whole:
		return ", and its ID was searched by for the container's earlier record"
	case id == "":
		return "; no earlier record of the container was searched for: it names no ID"
	}
	return "; no earlier record of the container was searched for: its ID was not read whole"
}

// ErrInput matches the errors of a state the hook could not take as it
// was: what [RunBadInput] records.
var ErrInput = errors.New("refused input")

// RunBadInput records stage for a container whose state could not be
// read as it was (inputErr says why; sv is what [SalvageState] kept): at
// createRuntime and poststart the process named by the salvaged PID is
// inspected and the policy evaluated as usual, and the record says what
// was wrong with the input; on_error decides the verdict, as for any
// other internal error (and a cut state is refused when a block selects
// by annotation: [Judge]). With the state's ID read whole
// ([Salvaged.WholeID]), the record refers to the container's earlier
// one as [Hook.Run]'s does: a poststart is compared with the
// createRuntime record of its process, a poststop refers to its start
// record (else a container's creator could flood its annotations to
// have its poststart not compared, or its stop end another container's
// start of the ID). It returns the Result and an error matching
// [ErrInput].
func (h *Hook) RunBadInput(ctx context.Context, stage string, sv *Salvaged, inputErr error) (*Result, error) {
	ierr := fmt.Errorf("%w: %w", ErrInput, inputErr)
	st := sv.State
	// One line, as the record's other errors: a held-open stdin and the
	// partial state it left are two errors joined.
	why := strings.ReplaceAll(inputErr.Error(), "\n", "; ")
	what := "the state was refused (" + vocab.Cut(why, vocab.MaxRecordedError/2) + "); the record keeps what could be read of it"
	if stage == audit.StagePoststart || stage == audit.StagePoststop {
		what += SearchNote(st.ID, sv.WholeID)
	}
	var rec *audit.Record
	var aerr error
	if stage == audit.StageCreateRuntime || stage == audit.StagePoststart {
		rec, _ = Decide(h.Config, h.input(ctx, stage, st))
		RefusedInput(h.Config, rec, what, ierr)
		h.decided(rec)
		if stage == audit.StagePoststart && sv.WholeID {
			// The comparison can only add a violation; on_error still
			// weighs the input error, and a cut state is still refused
			// where a block selects by annotation.
			aerr = h.appendStart(ctx, rec, st.Pid, func(error) { Judge(h.Config, rec, ierr) })
		} else {
			aerr = h.appendAsIs(ctx, rec)
		}
	} else {
		rec = Record(h.Config, h.input(ctx, stage, st))
		rec.Error = vocab.Cut(what, vocab.MaxRecordedError)
		if stage == audit.StagePoststop && sv.WholeID {
			aerr = h.appendStop(ctx, rec, st.Pid)
		} else {
			aerr = h.appendAsIs(ctx, rec)
		}
	}
	return h.finish(rec, ierr, aerr)
}

// RefusedInput notes on rec, decided for an input not taken as it was
// (ierr, matching [ErrInput]), what was wrong with it, before the
// record's own error, and judges the verdict again: on_error weighs the
// input error as any other, an enforcing block's violations still deny.
func RefusedInput(cfg *policy.Config, rec *audit.Record, what string, ierr error) {
	rec.Error = vocab.JoinErrors(what, rec.Error)
	Judge(cfg, rec, ierr)
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

// LimitAnnotations applies the state's limits on annotations to sent,
// the annotations a writer other than the hook got from its runtime as
// the container's spec holds them (the NRI plugin: the spec's, which
// the hook's state carries, with the CRI config's merged), so that both
// decide alike: nil when sent is within them, else why not, and md cut
// as [SalvageState] cuts a refused state's. md is what the writer
// decides by (sent, with what the writer adds that the spec does not
// hold: the NRI plugin's labels), and may be sent itself; the keys keep
// accepts are kept (values cut at [MaxAnnotationValue]), the others in
// key order up to [MaxAnnotations], each cut to [vocab.MaxRecordedValue].
// Only sent is counted: the hook never sees what the writer adds, and a
// container whose labels take it past the limits is no more refused
// than in the hook. Record the error and let on_error weigh it (see
// [RunBadInput]).
func LimitAnnotations(sent, md map[string]string, keep func(key string) bool) error {
	err := annotationsErr(sent)
	if err == nil {
		return nil
	}
	c := annotationCutter{keep: keep}
	for _, k := range slices.Sorted(maps.Keys(md)) {
		c.add(k, md[k])
	}
	clear(md)
	maps.Copy(md, c.md)
	return err
}

// annotationsErr says why annotations exceed a state's limits
// ([MaxAnnotations], [MaxAnnotationValue] for a key or value), nil when
// they do not.
func annotationsErr(md map[string]string) error {
	if len(md) > MaxAnnotations {
		return fmt.Errorf("more than %d annotations", MaxAnnotations)
	}
	for k, v := range md {
		if len(v) > MaxAnnotationValue || len(k) > MaxAnnotationValue {
			return fmt.Errorf("annotation longer than %d bytes", MaxAnnotationValue)
		}
	}
	return nil
}

// annotationCutter keeps annotations, added in the order a refused
// input gives them, as a refused state's are kept: the keys keep accepts
// (nil: none) whatever their number, values cut at
// [MaxAnnotationValue]; the others up to [MaxAnnotations], key and value
// cut to [vocab.MaxRecordedValue], never replacing a kept key.
type annotationCutter struct {
	keep func(key string) bool
	md   map[string]string
	kept map[string]bool
}

func (c *annotationCutter) add(k, v string) {
	if c.md == nil {
		c.md = map[string]string{}
	}
	if c.kept == nil {
		c.kept = map[string]bool{}
	}
	switch {
	case c.keep != nil && c.keep(k):
		c.kept[k] = true
		c.md[k] = vocab.Cut(v, MaxAnnotationValue)
	case len(c.md)-len(c.kept) < MaxAnnotations:
		if ck := vocab.Cut(k, vocab.MaxRecordedValue); !c.kept[ck] {
			c.md[ck] = vocab.Cut(v, vocab.MaxRecordedValue)
		}
	}
}
