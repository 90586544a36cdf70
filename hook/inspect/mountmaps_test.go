package inspect

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
)

// answer returns a statmount answer holding the strings strs after the
// struct, with the UID map's count and offset set to num and off.
func answer(num, off uint32, strs string) []byte {
	b := make([]byte, smStr+len(strs))
	copy(b[smStr:], strs)
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	binary.NativeEndian.PutUint32(b[smUIDMapNum:], num)
	binary.NativeEndian.PutUint32(b[smUIDMap:], off)
	return b
}

// TestMapStrings: a statmount answer's map is taken only whole: a line
// not terminated, one that is no map line, more lines than a map has,
// or an offset past the answer are errors (the mount is then not
// checked), never a shorter map.
func TestMapStrings(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want []audit.IDRange
		err  string
	}{
		{"two lines", answer(2, 0, "0 100000 65536\x0070000 5 1\x00"), []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}, {Inside: 70000, Outside: 5, Count: 1}}, ""},
		{"none", answer(0, 0, ""), []audit.IDRange{}, ""},
		{"not terminated", answer(1, 0, "0 100000 65536"), nil, "not terminated"},
		{"one missing", answer(2, 0, "0 100000 65536\x00"), nil, "not terminated"},
		{"not a line", answer(1, 0, "0 100000\x00"), nil, "map line"},
		{"two in one", answer(1, 0, "0 1 1\n2 3 1\x00"), nil, "map line"},
		{"too many", answer(341, 0, ""), nil, "a map of 341 lines"},
		{"offset past", answer(1, 4096, "0 1 1\x00"), nil, "a map of 1 lines at"},
	} {
		got, err := mapStrings(tc.b, smUIDMapNum, smUIDMap)
		if tc.err == "" && (err != nil || len(got) != len(tc.want) || got == nil) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
		for i := range min(len(got), len(tc.want)) {
			if got[i] != tc.want[i] {
				t.Errorf("%s: line %d %v, want %v", tc.name, i, got[i], tc.want[i])
			}
		}
		if tc.err != "" && (got != nil || err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, %v; want no map and %q", tc.name, got, err, tc.err)
		}
	}
}

// TestMountMapsChanged: a mount found by the ID mountinfo showed whose
// device is another's, or that is not idmapped, is another mount that
// took the ID since: its maps are not read, and it says why.
func TestMountMapsChanged(t *testing.T) {
	basic := func(major, minor uint32, attr uint64) []byte {
		b := answer(0, 0, "")
		binary.NativeEndian.PutUint32(b[smDevMajor:], major)
		binary.NativeEndian.PutUint32(b[smDevMinor:], minor)
		binary.NativeEndian.PutUint64(b[smAttr:], attr)
		return b
	}
	mi := idmappedMount{id: 40, mountKey: mountKey{dev: "254:0", root: "/srv", point: "/d"}}
	for name, b := range map[string][]byte{
		"another device": basic(254, 1, unix.MOUNT_ATTR_IDMAP),
		"not idmapped":   basic(254, 0, 0),
		"device 0:254":   basic(0, 254, unix.MOUNT_ATTR_IDMAP),
	} {
		var m audit.IDMappedMount
		if why := mountMaps(&m, mi, 1<<32, &mountNS{id: 1}, b); !strings.Contains(why, "changed since read") || m.UIDMap != nil || m.GIDMap != nil {
			t.Errorf("%s: %q, %+v; want not read, changed", name, why, m)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/plain": "/plain", `/a\040b\011c\012d\134e`: "/a b\tc\nd\\e", `/end\04`: `/end\04`, `/x\999`: `/x\999`, `\134`: `\`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNSMntGetInfo: NS_MNT_GET_INFO is _IOR(0xb7, 10, 16 bytes) in the
// architecture's encoding, as NS_GET_ID is _IOR(0xb7, 13, 8 bytes).
func TestNSMntGetInfo(t *testing.T) {
	dir := uint32(unix.NS_GET_ID) & 0xe0000000
	if want := dir | 16<<16 | 0xb7<<8 | 10; nsMntGetInfo != want {
		t.Errorf("NS_MNT_GET_INFO = %#x, want %#x", uint32(nsMntGetInfo), want)
	}
}
