package policy

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
)

// FuzzFastTree checks that fastjson.Parse, wherever it accepts
// an input, gives the same tree as the encoding/json one.
func FuzzFastTree(f *testing.F) {
	for _, name := range []string{"../../config/hook.json", "../../config/hook-enforce.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"a": [1, -0.5e+3, true, false, null, "x\"\\\/\b\f\n\r\t", {}, []], "b": {"c": "é😀\ufffd"}}`,
		`{"a": 1, "a": 2}`, `[01]`, `1.`, `-`, `"\u0041"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\udc00\ud83d"`,
		`"\ud83d\u0041"`, `"\ud83d\ud83d\ude00"`, `"\u00e9\uFFFD\u2028"`, `"\u12"`, `"\uzzzz"`, "\"\xff\"", `{"a":1,}`, `[1,]`, `truex`, ` 1 `, `{"a" 1}`, `[1 2]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := fastjson.Parse(data)
		if !ok {
			return
		}
		slow, err := parseTreeJSON(data)
		if err != nil {
			t.Fatalf("fast path accepts what encoding/json refuses (%v): %q", err, data)
		}
		if d := cmp.Diff(slow, fast); d != "" {
			t.Fatalf("trees differ on %q (-json +fast):\n%s", data, d)
		}
	})
}

// TestFastTreeShipped checks that the shipped configs take the fast path.
func TestFastTreeShipped(t *testing.T) {
	for _, name := range []string{"../../config/hook.json", "../../config/hook-enforce.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fastjson.Parse(data); !ok {
			t.Errorf("%s: not read by the fast parser", name)
		}
	}
}

func BenchmarkParseTree(b *testing.B) {
	data, err := os.ReadFile("../../config/hook-enforce.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			fastjson.Parse(data)
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			parseTreeJSON(data)
		}
	})
}
