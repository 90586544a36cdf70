package audit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvalidUTF8Verifies: a container controls its ID, bundle path and
// annotations; bytes that are not UTF-8 there (or a torn line cut
// mid-character) must still give a record that verifies, not one that
// looks edited.
func TestInvalidUTF8Verifies(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	recs := []*Record{
		{Stage: StageCreateRuntime, Source: SourceOCIHook, ContainerID: "id\xff", Bundle: "/b\xc3",
			Namespace: "ns\xe2\x82", Annotations: map[string]string{"k\xff": "v\xe2\x82", "ok": "fine"},
			Policy: "p\xff", Violations: []Violation{{Rule: "r\xff", Reason: "why\xc3"}}, Error: "e\xff"},
		{Stage: StageTornTail, Source: SourceOCIHook, ContainerID: "", Torn: "{\"seq\":3,\"x\":\"\xe2\x82", TornBytes: 20},
		{Stage: StagePoststop, Source: SourceOCIHook, ContainerID: "id\xff", Ref: &Ref{Seq: 1, Stage: "createRuntime\xff", Hash: "h"}},
		{Stage: StagePoststop, Source: SourceOCIHook, ContainerID: "b", BootID: "boot\xff"},
	}
	for _, r := range recs {
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Verify([]string{p}, VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Records != len(recs) {
		t.Errorf("verified %d records, want %d", res.Records, len(recs))
	}
	var got []*Record
	for r, err := range Records(p) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != len(recs) || got[0].ContainerID != "id\uFFFD" || got[0].Annotations["k\uFFFD"] != "v\uFFFD" ||
		!strings.HasSuffix(got[1].Torn, "\uFFFD") || got[3].BootID != "boot\uFFFD" || recs[3].BootID != got[3].BootID {
		for _, r := range got {
			t.Logf("%q %q %q", r.ContainerID, r.Annotations, r.Torn)
		}
		t.Errorf("records read back wrong")
	}
}
