package fastjson

import (
	"encoding/json"
	"maps"
	"testing"
)

// TestUnescape checks every byte against encoding/json.
func TestUnescape(t *testing.T) {
	for e := 0; e < 256; e++ {
		var want string
		err := json.Unmarshal([]byte{'"', '\\', byte(e), '"'}, &want)
		got, ok := Unescape(byte(e))
		switch {
		case e == 'u':
			if ok {
				t.Errorf(`\u accepted`)
			}
		case (err == nil) != ok:
			t.Errorf(`\%c: ok %v, encoding/json error %v`, e, ok, err)
		case ok && string(got) != want:
			t.Errorf(`\%c = %q, encoding/json %q`, e, got, want)
		}
	}
}

func TestTopLevelStrings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{`{"a":"x","b":{"a":"inner"},"c":["a","y"],"d":"z"}`, map[string]string{"a": "x", "d": "z"}},
		{`{"a":"x","b":{"a":1,"x":[{}]},"d":`, map[string]string{"a": "x"}},
		{`{"b":[1,2,{"d":"no"}],"d":"yes", "a": tru`, map[string]string{"d": "yes"}},
		{`[1]`, map[string]string{}},
	} {
		got := TopLevelStrings([]byte(tc.in), "a", "d")
		if !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.in, got, tc.want)
		}
	}
}
