package fastjson

import (
	"encoding/json"
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
