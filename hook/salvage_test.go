package hook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// TestSalvageStateKeep: annotations the config selects by or records are
// kept whatever comes before them, others up to the count; a flood of
// keys that collide with a kept one once cut does not replace it.
func TestSalvageStateKeep(t *testing.T) {
	cfg := &policy.Config{RecordAnnotations: []string{vocab.LabelPodName}}
	cfg.TrustedSelectors.Annotations = []string{vocab.AnnotationSandboxNamespace}
	keep := hook.SalvageKeep(cfg)
	var flood []string
	for i := range hook.MaxAnnotations + 10 {
		flood = append(flood, fmt.Sprintf(`"a%05d":"v"`, i))
	}
	long := strings.Repeat("x", vocab.MaxRecordedValue+5)
	state := `{"id":"c","pid":1,"annotations":{` + strings.Join(flood, ",") +
		`,"` + vocab.AnnotationSandboxNamespace + `":"prod-` + long + `","` + vocab.LabelPodName + `":"web-0","zz":"late"}}`
	st := hook.SalvageState([]byte(state), keep)
	if got := st.Annotations[vocab.AnnotationSandboxNamespace]; got != "prod-"+long {
		t.Errorf("trusted annotation %q (%d bytes), want it whole", vocab.Cut(got, 20), len(got))
	}
	if got := st.Annotations[vocab.LabelPodName]; got != "web-0" {
		t.Errorf("recorded annotation %q, want web-0", got)
	}
	if _, ok := st.Annotations["zz"]; ok || len(st.Annotations) != hook.MaxAnnotations+2 {
		t.Errorf("%d annotations (zz kept: %v), want %d others and the 2 kept", len(st.Annotations), ok, hook.MaxAnnotations)
	}
	if st := hook.SalvageState([]byte(state), nil); len(st.Annotations) != hook.MaxAnnotations || st.Annotations[vocab.AnnotationSandboxNamespace] != "" {
		t.Errorf("without keep: %d annotations, trusted %q", len(st.Annotations), st.Annotations[vocab.AnnotationSandboxNamespace])
	}
	// A key cut to the recorded length that equals a kept key does not
	// replace the kept value, before or after it.
	cut := vocab.LabelPodName + strings.Repeat("y", vocab.MaxRecordedValue)
	cfg.RecordAnnotations = []string{vocab.Cut(cut, vocab.MaxRecordedValue)}
	for _, order := range []string{`"%[1]s":"real","%[2]s":"fake"`, `"%[2]s":"fake","%[1]s":"real"`} {
		ann := fmt.Sprintf(order, vocab.Cut(cut, vocab.MaxRecordedValue), cut)
		st := hook.SalvageState([]byte(`{"annotations":{`+ann+`}}`), hook.SalvageKeep(cfg))
		if d := cmp.Diff(map[string]string{vocab.Cut(cut, vocab.MaxRecordedValue): "real"}, st.Annotations); d != "" {
			t.Errorf("order %s: annotations (-want +got):\n%s", order, d)
		}
	}
}

// FuzzSalvageState: any input salvages without panic, within the limits.
func FuzzSalvageState(f *testing.F) {
	f.Add([]byte(`{"id":"c","pid":12,"bundle":"/b","annotations":{"io.kubernetes.cri.sandbox-namespace":"prod","k":"v"}}`))
	f.Add([]byte(`{"annotations":{"a":1,"b":{"c":[1,2]},"io.kubernetes.pod.name":"x"`))
	f.Add([]byte(`{"id":"\u0000","pid":-1,"annotations":[]}`))
	cfg := &policy.Config{RecordAnnotations: policy.DefaultRecordAnnotations}
	cfg.TrustedSelectors.Annotations = []string{vocab.AnnotationSandboxNamespace}
	keep := hook.SalvageKeep(cfg)
	f.Fuzz(func(t *testing.T, data []byte) {
		st := hook.SalvageState(data, keep)
		if len(st.ID) > hook.MaxIDLen || len(st.Bundle) > hook.MaxBundleLen || st.Pid < 0 || st.Pid >= vocab.PIDLimit {
			t.Fatalf("limits: id %d bytes, bundle %d, pid %d", len(st.ID), len(st.Bundle), st.Pid)
		}
		if st.WholeID && (st.ID == "" || !bytes.Contains(data, []byte(`"id"`))) {
			t.Fatalf("ID %q taken whole from a state without one", st.ID)
		}
		others := 0
		for k, v := range st.Annotations {
			if keep(k) {
				if len(v) > hook.MaxAnnotationValue {
					t.Fatalf("kept %q: %d bytes", k, len(v))
				}
				continue
			}
			others++
			if len(k) > vocab.MaxRecordedValue || len(v) > vocab.MaxRecordedValue {
				t.Fatalf("annotation of %d/%d bytes", len(k), len(v))
			}
		}
		if others > hook.MaxAnnotations {
			t.Fatalf("%d annotations", others)
		}
	})
}

// TestLimitAnnotations: annotations within the limits are left alone;
// beyond them the error says why, the kept keys stay whole, the others
// are cut to the count in key order and to the recorded length. Only
// the annotations sent are counted, not what a writer adds to them (the
// NRI plugin's labels), which is cut with them.
func TestLimitAnnotations(t *testing.T) {
	keep := hook.SalvageKeep(&policy.Config{RecordAnnotations: []string{vocab.LabelPodName}})
	few := map[string]string{"a": "v", vocab.LabelPodName: "web-0"}
	if err := hook.LimitAnnotations(few, few, keep); err != nil || len(few) != 2 {
		t.Errorf("within the limits: %v, %v", err, few)
	}
	many := map[string]string{vocab.LabelPodName: strings.Repeat("w", hook.MaxAnnotationValue+1), "zz": "late"}
	for i := range hook.MaxAnnotations {
		many[fmt.Sprintf("a%05d", i)] = "v"
	}
	err := hook.LimitAnnotations(many, many, keep)
	if err == nil || !strings.Contains(err.Error(), "more than 4096 annotations") {
		t.Errorf("error %v", err)
	}
	if len(many) != hook.MaxAnnotations+1 || len(many[vocab.LabelPodName]) != hook.MaxAnnotationValue || many["zz"] != "" {
		t.Errorf("%d annotations, the kept one of %d bytes, zz %q", len(many), len(many[vocab.LabelPodName]), many["zz"])
	}
	long := map[string]string{"k": strings.Repeat("v", hook.MaxAnnotationValue+1)}
	if err := hook.LimitAnnotations(long, long, nil); err == nil || len(long["k"]) != vocab.MaxRecordedValue {
		t.Errorf("a long value: %v, %d bytes left", err, len(long["k"]))
	}
	// Only what was sent counts; what the writer adds to it is cut with
	// it when it is past the limits.
	sent := map[string]string{"a": "v"}
	added := map[string]string{"a": "v", "long": strings.Repeat("v", hook.MaxAnnotationValue+1)}
	for i := range hook.MaxAnnotations {
		added[fmt.Sprintf("l%05d", i)] = "v"
	}
	if err := hook.LimitAnnotations(sent, added, keep); err != nil || len(added) != hook.MaxAnnotations+2 {
		t.Errorf("sent within the limits, more added: %v, %d left", err, len(added))
	}
	for i := range hook.MaxAnnotations {
		sent[fmt.Sprintf("s%05d", i)] = "v"
	}
	if err := hook.LimitAnnotations(sent, added, keep); err == nil || len(added) != hook.MaxAnnotations {
		t.Errorf("sent past the limits: %v, %d of what was added left (want it cut to %d)", err, len(added), hook.MaxAnnotations)
	}
}

// TestBadInputRefersBack: a poststart or poststop whose state is refused
// (an annotation over the limit, which the container's creator chooses)
// refers to the container's earlier record as one of a state taken whole
// does, its ID and PID read from what was salvaged. The poststart was
// recorded without comparison (its changed ancestry allowed under an
// enforcing block) and the poststop without a ref, which the container
// lookup takes for the end of every earlier start of the ID: here of the
// victim's, whose ID the creator reused. An ID not read whole (cut:
// another container's may be its cut) is not searched by, and the
// record says so.
func TestBadInputRefersBack(t *testing.T) {
	bad := errors.New("state: annotation longer than 65536 bytes")
	salvaged := func(pid int, whole bool) *hook.Salvaged {
		return &hook.Salvaged{State: &specs.State{ID: "web", Pid: pid}, WholeID: whole}
	}
	procs := map[int]*audit.Ancestry{100: proc(100, 5, 4026532200), 200: proc(200, 9, 4026532300)}
	h := reuseHook(t, procs)
	runStage(t, h, audit.StageCreateRuntime, "web", 100) // seq 1: the victim, which runs on
	runStage(t, h, audit.StageCreateRuntime, "web", 200) // seq 2: the creator's, of the same ID
	procs[200] = proc(200, 9, 4026532301)                // moved to another user namespace
	badRun := func(stage string, sv *hook.Salvaged) *hook.Result {
		t.Helper()
		res, err := h.RunBadInput(context.Background(), stage, sv, bad)
		if !errors.Is(err, hook.ErrInput) || res == nil || res.Record == nil {
			t.Fatalf("%s: %+v, %v", stage, res, err)
		}
		if !strings.HasPrefix(res.Record.Error, "the state was refused (state: annotation longer than 65536 bytes); the record keeps what could be read of it") {
			t.Errorf("%s: error %q does not say first that the state was refused", stage, res.Record.Error)
		}
		return res
	}
	const searched = ", and its ID was searched by for the container's earlier record"
	res := badRun(audit.StagePoststart, salvaged(200, true)) // seq 3
	if d := cmp.Diff([]string{policy.RuleAncestryUnchanged}, audittest.Rules(res.Record)); d != "" || ref(res) != 2 || !res.Deny {
		t.Errorf("poststart: ref %d, deny %v, rules (-want +got):\n%s", ref(res), res.Deny, d)
	}
	if !strings.Contains(res.Record.Error, searched) {
		t.Errorf("poststart: error %q does not say the ID was searched by", res.Record.Error)
	}
	if res := badRun(audit.StagePoststop, salvaged(200, true)); ref(res) != 3 || !strings.Contains(res.Record.Error, searched) { // seq 4
		t.Errorf("the creator's poststop: ref %d, error %q; want its poststart record, seq 3", ref(res), res.Record.Error)
	}
	if res := runStage(t, h, audit.StagePoststop, "web", 0); ref(res) != 1 { // seq 5
		t.Errorf("the victim's poststop: ref %d, want 1", ref(res))
	}
	// Not read whole: not searched by.
	const notWhole = "; no earlier record of the container was searched for: its ID was not read whole"
	runStage(t, h, audit.StageCreateRuntime, "web", 200) // seq 6
	for _, stage := range []string{audit.StagePoststart, audit.StagePoststop} {
		res := badRun(stage, salvaged(200, false))
		if ref(res) != 0 || len(res.Record.Violations) != 0 || res.Deny || !strings.HasSuffix(res.Record.Error, notWhole) {
			t.Errorf("%s of an ID not read whole: ref %d, deny %v, violations %+v, error %q; want none, allowed, and the error to end in %q",
				stage, ref(res), res.Deny, res.Record.Violations, res.Record.Error, notWhole)
		}
	}
}

// TestBadInputComparedStillCut: the poststart of a state cut at its size
// limit, compared with its createRuntime record and found unchanged, is
// still refused whatever on_error says under a config whose blocks
// select by annotation (the block that should judge it is unknown), and
// allowed by on_error allow without one.
func TestBadInputComparedStillCut(t *testing.T) {
	for _, selects := range []bool{true, false} {
		conf := `{"version":1,"audit_log":"/x","on_error":"allow","default":{"name":"d","mode":"audit"}}`
		if selects {
			conf = `{"version":1,"audit_log":"/x","on_error":"allow","trusted_selectors":{"annotations":["io.kubernetes.cri.sandbox-namespace"]},` +
				`"policies":[{"name":"prod","mode":"audit","match":{"annotations":{"io\\.kubernetes\\.cri\\.sandbox-namespace":"prod-.*"}}}],"default":{"name":"d","mode":"audit"}}`
		}
		cfg, err := policy.Parse("cut.json", []byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		log, _ := tempLog(t)
		anc := proc(100, 5, 4026532200)
		h := &hook.Hook{Config: cfg, Log: log, Inspect: func(int, *inspect.LiveOnce) (*audit.Ancestry, error) { return anc, nil }}
		runStage(t, h, audit.StageCreateRuntime, "web", 100)
		res, err := h.RunBadInput(context.Background(), audit.StagePoststart, &hook.Salvaged{State: &specs.State{ID: "web", Pid: 100}, WholeID: true}, hook.ErrStateCut)
		if !errors.Is(err, hook.ErrStateCut) || ref(res) != 1 || len(res.Record.Violations) != 0 {
			t.Fatalf("selects %v: ref %d, violations %+v, %v; want the createRuntime record, unchanged", selects, ref(res), res.Record.Violations, err)
		}
		if res.Deny != selects || strings.Contains(res.Record.Error, "refused whatever on_error says") != selects {
			t.Errorf("selects %v: deny %v, error %q", selects, res.Deny, res.Record.Error)
		}
	}
}

// TestSalvageStateWholeID: the salvaged ID is whole when it is there as
// written: not cut, not replaced in part by U+FFFD (invalid UTF-8 or an
// unpaired surrogate, not a U+FFFD written as such), and a string.
func TestSalvageStateWholeID(t *testing.T) {
	for _, tc := range []struct {
		state string
		id    string
		whole bool
	}{
		{`{"id":"web","annotations":{"a":1`, "web", true},
		{`{"id":"` + strings.Repeat("i", hook.MaxIDLen) + `","pid":-1}`, strings.Repeat("i", hook.MaxIDLen), true},
		{`{"id":"` + strings.Repeat("i", hook.MaxIDLen+1) + `"}`, strings.Repeat("i", hook.MaxIDLen), false},
		{"{\"id\" : \"bad\xffid\"}", "bad\uFFFDid", false},
		{`{"id":"bad\ud800id"}`, "bad\uFFFDid", false},
		{`{"id": "ok\ufffdid"}`, "ok\uFFFDid", true},
		{"{\"id\":\"ok\uFFFDid\"}", "ok\uFFFDid", true},
		{`{"bundle":"/b"}`, "", false},
		{`{"id":""}`, "", false},
		// An ID that is not a string is skipped whole: its members are
		// not the state's.
		{`{"id":{"id":"victim","pid":7}}`, "", false},
		// So is a PID that is not a number.
		{`{"pid":{"id":"victim","pid":7},"id":"mine"}`, "mine", true},
		{`{"pid":[{"id":"victim"}],"id":"mine"}`, "mine", true},
	} {
		sv := hook.SalvageState([]byte(tc.state), nil)
		if sv.ID != tc.id || sv.WholeID != tc.whole || sv.Pid != 0 {
			t.Errorf("%.60q: ID %.40q, whole %v, pid %d; want %.40q, %v, 0", tc.state, sv.ID, sv.WholeID, sv.Pid, tc.id, tc.whole)
		}
	}
}

// TestSalvageStatePIDNotNumber: a PID that is not a number is skipped
// whole: the annotations of an object there were taken for the state's
// (a trusted selector among them), and what followed it was lost.
func TestSalvageStatePIDNotNumber(t *testing.T) {
	const key = "io.kubernetes.cri.sandbox-namespace"
	sv := hook.SalvageState([]byte(`{"id":"mine","pid":{"annotations":{"`+key+`":"kube-system"}},"annotations":{"`+key+`":"shop"}}`), nil)
	if got := sv.Annotations[key]; got != "shop" || sv.Pid != 0 {
		t.Errorf("annotation %q, pid %d; want the state's own, shop, and no PID", got, sv.Pid)
	}
}

// TestUnrecordedCutMessage: a cut state refused whatever on_error says (a
// block selects by annotation) whose record could not be written was
// said on stderr as refused by "on_error=deny" under on_error allow.
func TestUnrecordedCutMessage(t *testing.T) {
	cfg, err := policy.Parse("cut.json", []byte(`{"version":1,"audit_log":"/x","on_error":"allow",
		"trusted_selectors":{"annotations":["io.kubernetes.cri.sandbox-namespace"]},
		"policies":[{"name":"prod","mode":"audit","match":{"annotations":{"io\\.kubernetes\\.cri\\.sandbox-namespace":"prod-.*"}}}],
		"default":{"name":"d","mode":"audit"}}`))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "logdir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The log's directory becomes a file: the append fails.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	anc := proc(100, 5, 4026532200)
	h := &hook.Hook{Config: cfg, Log: log, Inspect: func(int, *inspect.LiveOnce) (*audit.Ancestry, error) { return anc, nil }}
	res, err := h.RunBadInput(context.Background(), audit.StageCreateRuntime, &hook.Salvaged{State: &specs.State{ID: "web", Pid: 100}, WholeID: true}, hook.ErrStateCut)
	if err == nil || res == nil || !res.Deny || strings.Contains(res.Message, "on_error=deny") || !strings.Contains(res.Message, "a cut state") {
		t.Errorf("result %+v, %v; want a refusal said to be for the cut state, not on_error", res, err)
	}
}
