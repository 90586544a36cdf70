package hook_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/policy"
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
// are cut to the count in key order and to the recorded length.
func TestLimitAnnotations(t *testing.T) {
	keep := hook.SalvageKeep(&policy.Config{RecordAnnotations: []string{vocab.LabelPodName}})
	few := map[string]string{"a": "v", vocab.LabelPodName: "web-0"}
	if err := hook.LimitAnnotations(few, keep); err != nil || len(few) != 2 {
		t.Errorf("within the limits: %v, %v", err, few)
	}
	many := map[string]string{vocab.LabelPodName: strings.Repeat("w", hook.MaxAnnotationValue+1), "zz": "late"}
	for i := range hook.MaxAnnotations {
		many[fmt.Sprintf("a%05d", i)] = "v"
	}
	err := hook.LimitAnnotations(many, keep)
	if err == nil || !strings.Contains(err.Error(), "more than 4096 annotations") {
		t.Errorf("error %v", err)
	}
	if len(many) != hook.MaxAnnotations+1 || len(many[vocab.LabelPodName]) != hook.MaxAnnotationValue || many["zz"] != "" {
		t.Errorf("%d annotations, the kept one of %d bytes, zz %q", len(many), len(many[vocab.LabelPodName]), many["zz"])
	}
	long := map[string]string{"k": strings.Repeat("v", hook.MaxAnnotationValue+1)}
	if err := hook.LimitAnnotations(long, nil); err == nil || len(long["k"]) != vocab.MaxRecordedValue {
		t.Errorf("a long value: %v, %d bytes left", err, len(long["k"]))
	}
}
