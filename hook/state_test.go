package hook_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/internal/vocab"
)

func TestDecodeState(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *specs.State
		err  string
	}{
		{"runc", `{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{"a":"b"}}`,
			&specs.State{Version: "1.0.2-dev", ID: "c1", Status: "creating", Pid: 42, Bundle: "/b", Annotations: map[string]string{"a": "b"}}, ""},
		{"crun adds root", `{"ociVersion":"1.0.0","id":"c2","status":"created","pid":7,"bundle":"/b","root":"/r","rootfs":"/r"}`,
			&specs.State{Version: "1.0.0", ID: "c2", Status: "created", Pid: 7, Bundle: "/b"}, ""},
		{"poststop without pid", `{"ociVersion":"1.0.0","id":"c3","status":"stopped","bundle":"/b"}`,
			&specs.State{Version: "1.0.0", ID: "c3", Status: "stopped", Bundle: "/b"}, ""},
		{"trailing whitespace", `{"id":"c"}` + "\n\n", &specs.State{ID: "c"}, ""},
		{"empty", ``, nil, "EOF"},
		{"no id", `{"pid":1}`, nil, "no container id"},
		{"negative pid", `{"id":"x","pid":-1}`, nil, "out of range"},
		{"huge pid", `{"id":"x","pid":99999999}`, nil, "out of range"},
		{"wrong type", `{"id":1}`, nil, "cannot unmarshal"},
		{"two objects", `{"id":"a"}{"id":"b"}`, nil, "data after"},
		{"long id", `{"id":"` + strings.Repeat("x", hook.MaxIDLen+1) + `"}`, nil, "longer than"},
		{"too big", `{"id":"x","bundle":"` + strings.Repeat("x", vocab.MaxStateSize) + `"}`, nil, "larger than"},
		// The readers replace invalid UTF-8 with U+FFFD: refused, so that
		// two IDs are never recorded as one.
		{"bad utf8 id", "{\"id\":\"\xff\"}", nil, "not valid UTF-8"},
		{"lone surrogate id", `{"id":"a\udcff"}`, nil, "not valid UTF-8"},
		{"high surrogate then text", `{"id":"\ud83dx"}`, nil, "not valid UTF-8"},
		{"the last id counts", "{\"id\":\"\xff\",\"id\":\"ok\"}", &specs.State{ID: "ok"}, ""},
		{"bad utf8 last id", "{\"id\":\"ok\",\"ID\":\"\xff\"}", nil, "not valid UTF-8"},
		{"surrogate pair id", `{"id":"\ud83d\ude00"}`, &specs.State{ID: "\U0001F600"}, ""},
		{"U+FFFD id", "{\"id\":\"\\ufffd\xef\xbf\xbd\"}", &specs.State{ID: "\uFFFD\uFFFD"}, ""},
		{"bad utf8 annotation", "{\"id\":\"x\",\"annotations\":{\"a\":\"\xff\"}}", &specs.State{ID: "x", Annotations: map[string]string{"a": "\uFFFD"}}, ""},
		// Two annotations objects: encoding/json merged them, while the
		// notes of what the state lost read the last alone.
		{"two annotations", `{"id":"x","annotations":{"io.example/privileged":"true"},"annotations":{"x":"y"}}`, nil, `member "annotations" given twice`},
		{"two annotations, case", `{"id":"x","annotations":{"a":"b"},"Annotations":{"x":"y"}}`, nil, `member "Annotations" given twice`},
		{"annotations and null", `{"id":"x","annotations":{"a":"b"},"annotations":null}`, nil, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hook.DecodeState(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if d := cmp.Diff(tt.want, got); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			}
		})
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{"a":"b"}}`))
	f.Add([]byte(`{"ociVersion":"1.0.0","id":"c2","status":"created","pid":7,"bundle":"/b","root":"/r"}`))
	f.Add([]byte(`{"id":"\u001b[2J","pid":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := hook.DecodeState(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		if st.ID == "" || len(st.ID) > hook.MaxIDLen || st.Pid < 0 || len(st.Annotations) > hook.MaxAnnotations {
			t.Errorf("accepted out-of-limits state %+v", st)
		}
		vocab.Printable(st.ID)
	})
}
