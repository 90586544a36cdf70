package hook

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzStateFast checks that fastState, wherever it reads a state, reads
// what encoding/json reads.
func FuzzStateFast(f *testing.F) {
	for _, s := range []string{
		`{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{"a":"b","io.kubernetes.pod.name":"web-0"}}`,
		`{"ociVersion":"1.0.2","id":"c1","status":"stopped","bundle":"/b","root":"/run/crun","x":[1,{"y":null}]}`,
		`{"ID":"c1"}`, `{"id":null}`, `{"pid":1.5}`, `{"pid":-0}`, `{"pid":99999999999999999999}`, `{"annotations":{}}`,
		`{"annotations":null}`, `{"ſtatus":"x"}`, `{"id":"c\u0031","annotations":{"k\u00e9":"\ud83d\ude00\ud83d"}}`, `{"\u0069d":"x"}`, `{"id":"a","id":"b"}`, `[]`, `{"id":"a"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := fastState(data)
		if !ok {
			return
		}
		slow, err := decodeStateJSON(data)
		if err != nil {
			t.Fatalf("fast path reads what encoding/json refuses (%v): %q", err, data)
		}
		if d := cmp.Diff(slow, fast); d != "" {
			t.Fatalf("states differ on %q (-json +fast):\n%s", data, d)
		}
	})
}

// TestStateFastRuntimes checks that states as runc and crun write them
// take the fast path.
func TestStateFastRuntimes(t *testing.T) {
	for _, s := range []string{
		`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,"bundle":"/run/b","annotations":{"org.opencontainers.image.ref.name":"busybox"}}`,
		`{"ociVersion":"1.0.0","id":"c1","status":"stopped","bundle":"/run/b","annotations":{},"root":"/run/crun"}`,
	} {
		if _, ok := fastState([]byte(s)); !ok {
			t.Errorf("not read by the fast path: %s", s)
		}
	}
}
