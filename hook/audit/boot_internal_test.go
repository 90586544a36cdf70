package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadBootID checks that only the kernel's form of a boot ID is
// taken: a file of anything else gives "" (no boot named), never a
// string a record would carry.
func TestReadBootID(t *testing.T) {
	const id = "cf9894dd-d248-40e6-af68-49ce6e839e1c"
	for _, tc := range []struct{ text, want string }{
		{id + "\n", id},
		{id, ""},
		{id + "\n\n", ""},
		{"CF9894DD-D248-40E6-AF68-49CE6E839E1C\n", ""},
		{"cf9894dd-d248-40e6-af68-49ce6e839e1\n", ""},
		{"cf9894dd d248-40e6-af68-49ce6e839e1c\n", ""},
		{"cf9894dd-d248-40e6-af68-49ce6e839e1g\n", ""},
		{"", ""},
	} {
		path := filepath.Join(t.TempDir(), "boot_id")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := readBootID(path); got != tc.want {
			t.Errorf("readBootID(%q) = %q; want %q", tc.text, got, tc.want)
		}
	}
	if got := readBootID(filepath.Join(t.TempDir(), "absent")); got != "" {
		t.Errorf("readBootID of a missing file = %q", got)
	}
}
