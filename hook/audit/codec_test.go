package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fuzzRecord builds a record from fuzz input, with every field kind set
// or left out depending on flags.
func fuzzRecord(s1, s2, s3 string, n uint64, flags uint16) *Record {
	r := &Record{Seq: n, Time: s1, Host: s2, Source: s3, Stage: s1 + s2, ContainerID: s3 + s1, Version: s2, Prev: s3}
	if flags&1 != 0 {
		r.Bundle = s2
	}
	if flags&2 != 0 {
		r.Namespace = s3
	}
	if flags&4 != 0 {
		r.Annotations = map[string]string{s1: s2, s2: s3, "k<&>": s1}
	}
	if flags&8 != 0 {
		id := n / 3
		r.Ancestry = &Ancestry{PID: int(n % 4194304), StartTime: n}
		if flags&16 != 0 {
			r.User = []UserNS{{Ino: n, Dev: 4, ID: &id, OwnerUID: uint32(n)}, {Ino: 1, Dev: 2}}
			r.PIDNS = []PIDNS{{Ino: n, Dev: 4, ID: &id, OwnerUserIno: &id}, {Ino: 3}}
		} else if flags&32 != 0 {
			r.User, r.PIDNS = []UserNS{}, []PIDNS{}
		}
	}
	if flags&64 != 0 {
		r.Policy, r.Mode, r.Verdict = s1, s2, s3
	}
	if flags&128 != 0 {
		r.Violations = []Violation{{Rule: s1, Reason: s2}, {Rule: s3}}
	}
	if flags&256 != 0 {
		r.Error = s3
	}
	if flags&512 != 0 {
		r.Ref = &Ref{Seq: n, Stage: s1, Hash: s2}
	}
	if flags&1024 != 0 {
		// Lengths past 32 bits too (a line of gigabytes): the writer's
		// own damage record of one did not decode.
		r.Torn, r.TornBytes, r.TornSHA256 = s1, int(n>>20), s2
	}
	if flags&2048 != 0 {
		r.Note, r.SealID, r.SealError = s1, s2, s3
		if flags&1 != 0 {
			r.LateSeals = []string{s3, s1}
		}
	}
	if flags&4096 != 0 {
		r.Damage = []DamagedLine{{File: s1, Offset: int64(n >> 1), Bytes: int(n >> 22), SHA256: s2, Kind: s3, Reason: s1}, {}}
	}
	if flags&8192 != 0 {
		r.Dropped = &Dropped{File: s2, FirstSeq: n, LastSeq: n / 2, LastHash: s3}
	}
	if flags&16384 != 0 && r.Ancestry != nil {
		rg := []IDRange{{0, uint32(n), uint32(n >> 32)}, {uint32(n >> 7), 1, 4294967295}}
		r.Maps = []UserMaps{
			{Ino: n, UIDMap: rg, GIDMap: rg[:1], HostUIDMap: rg[1:], HostGIDMap: []IDRange{}, SetGroups: s1},
			{Ino: 1, Error: s2},
		}
	}
	if flags&32768 != 0 && r.Ancestry != nil {
		cg := n >> 3
		r.Creds = &Creds{UID: uint32(n), EUID: 1, SUID: 2, FSUID: 3, GID: uint32(n >> 32), EGID: 4294967295, SGID: 5, FSGID: 6}
		if flags&16 != 0 {
			r.Creds.CgroupID = &cg
		}
	}
	if flags&4096 != 0 {
		// Bits run short: boot_id goes with another member's.
		r.BootID = s2
	}
	if flags&(16384|32768) == 16384|32768 && r.Ancestry != nil {
		// And held IDs and idmapped mounts with maps and creds.
		r.Held = &HeldIDs{UIDs: [4]uint32{uint32(n), 1, 2, 4294967295}, GIDs: [4]uint32{5, uint32(n >> 32), 0, 7}}
		if flags&16 != 0 {
			r.Held.Groups = []uint32{uint32(n >> 5), 42}
		} else if flags&8 != 0 {
			r.Held.Groups = []uint32{}
		}
		r.IDMapped = []IDMappedMount{{Point: s3, UIDMap: []IDRange{{0, uint32(n), 1}}, GIDMap: []IDRange{}}, {Point: s1, Err: s2}}
	}
	return r
}

// jsonDecode reads a line the way encoding/json would: the reference the
// decoder is checked against.
func jsonDecode(line []byte) (*Record, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	at, hash, seal, ok := splitLine(line)
	if !ok {
		return nil, errors.New("no hash")
	}
	var r Record
	if err := json.Unmarshal(append(append([]byte{}, line[:at]...), '}'), &r); err != nil {
		return nil, err
	}
	r.Hash, r.Seal = hash, seal
	return &r, nil
}

// FuzzCodec checks that appendRecord writes exactly what json.Marshal
// writes, and that Decode reads back what encoding/json reads.
func FuzzCodec(f *testing.F) {
	f.Add("2026-11-28T19:49:09.750357162Z", "vm", "oci-hook", uint64(1), uint16(0xffff))
	f.Add("a\"b\\c\n\r\t\b\f\x01<>&", "\u2028\u2029\ufffd\xff\xfeé", "😀", uint64(1<<63), uint16(0))
	f.Add("", "", "", uint64(0), uint16(8|32))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, n uint64, flags uint16) {
		r := fuzzRecord(s1, s2, s3, n, flags)
		r.makeValidUTF8()
		r.Format = Format
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got := appendRecord(nil, r)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendRecord differs from json.Marshal:\n got %s\nwant %s", got, want)
		}
		line, err := r.Encode()
		if err != nil {
			return // longer than MaxLine
		}
		ref, rerr := jsonDecode(line)
		dec, err := Decode(line)
		if rerr != nil {
			t.Fatalf("encoding/json cannot read an encoded line (%v): %s", rerr, line)
		}
		if err != nil {
			if r.Seq == 0 || r.Stage == "" || r.Source == "" || r.Prev != "" && (len(r.Prev) != 64 || !isHex(r.Prev)) {
				return // refused by the field checks, not by the codec
			}
			t.Fatalf("Decode refuses an encoded line (%v): %s", err, line)
		}
		if d := cmp.Diff(ref, dec, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("Decode differs from encoding/json (-json +Decode):\n%s", d)
		}
	})
}

// FuzzDecode feeds arbitrary lines to Decode: what it accepts, it must
// accept with a hash over the line's bytes, and read as encoding/json
// reads it (members it does not know aside).
func FuzzDecodeLines(f *testing.F) {
	for _, flags := range []uint16{0, 0xffff, 8, 8 | 32, 4 | 512} {
		r := fuzzRecord("t", "h\n<", "s", 7, flags)
		line, _ := r.Encode()
		f.Add(line)
	}
	f.Add([]byte(`{"format":"1.9","seq":1,"time":"","host":"","source":"s","stage":"x","container_id":"c","new":{"a":[1]},"version":"","prev":"","hash":"` + string(bytes.Repeat([]byte("a"), 64)) + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := Decode(line)
		if err != nil {
			return
		}
		at, _, _, _ := splitLine(bytes.TrimSuffix(line, []byte("\n")))
		sum := sha256.Sum256(append(append([]byte{}, line[:at]...), '}'))
		if hex.EncodeToString(sum[:]) != r.Hash {
			t.Fatalf("hash %s is not over the line's bytes: %q", r.Hash, line)
		}
		if len(r.Unknown) > 0 {
			return
		}
		ref, err := jsonDecode(line)
		if err != nil {
			t.Fatalf("Decode accepts what encoding/json refuses (%v): %q", err, line)
		}
		if d := cmp.Diff(ref, r, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("Decode differs from encoding/json on %q (-json +Decode):\n%s", line, d)
		}
	})
}

// TestCodecShapes checks records of every shape against encoding/json,
// both ways.
func TestCodecShapes(t *testing.T) {
	for flags := uint32(0); flags < 1<<16; flags += 3 {
		r := fuzzRecord("2026-11-28T19:49:09Z", "vm<\x00>", "src\u2028", uint64(flags)*1e15+1, uint16(flags))
		r.Prev = ""
		if flags&(1<<13) != 0 {
			r.Seal = "0123456789abcdef.7." + strings.Repeat("ab", 32)
		}
		line, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(r)
		if got := appendRecord(nil, r); !bytes.Equal(got, want) {
			t.Fatalf("flags %#x: appendRecord\n got %s\nwant %s", flags, got, want)
		}
		got, err := Decode(line)
		if err != nil {
			t.Fatalf("flags %#x: %v: %s", flags, err, line)
		}
		if d := cmp.Diff(r, got, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("flags %#x: (-encoded +decoded):\n%s", flags, d)
		}
	}
}

// TestNewerMinorFormat checks that a record of a newer minor format, with
// members this version does not know anywhere in it, is read, and that
// unknown members are refused in records of this version or older, and
// a newer major format is refused as such.
func TestNewerMinorFormat(t *testing.T) {
	body := func(format, extra string) []byte {
		b := `{` + format + `"seq":3,"time":"t","host":"h","source":"oci-hook","stage":"createRuntime","container_id":"c",` + extra + `"version":"9.0","prev":""`
		sum := sha256.Sum256([]byte(b + "}"))
		return []byte(b + `,"hash":"` + hex.EncodeToString(sum[:]) + `"}`)
	}
	r, err := Decode(body(`"format":"1.7",`, `"uid_map":[[0,100000,65536]],"pid":5,"start_time":9,"user_chain":[],"pid_chain":[],"z":{"a":null},`))
	if err != nil {
		t.Fatal(err)
	}
	if r.PID != 5 || r.ContainerID != "c" || !slices.Equal(r.Unknown, []string{"uid_map", "z"}) {
		t.Errorf("read %+v, unknown %v", r, r.Unknown)
	}
	for name, line := range map[string][]byte{
		"unknown in 1.1": body(`"format":"1.1",`, `"x":1,`),
		"unknown in 1.0": body(``, `"x":1,`),
		"bad format":     body(`"format":"1.x",`, ``),
	} {
		if _, err := Decode(line); err == nil || errors.Is(err, ErrNewerFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Decode(body(`"format":"2.0",`, `"x":1,`)); !errors.Is(err, ErrNewerFormat) {
		t.Errorf("format 2.0: %v, want ErrNewerFormat", err)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	r := fuzzRecord("2026-11-28T19:49:09.750357162Z", "vm", "oci-hook", 12345, 8|16|64|512)
	r.Prev = ""
	line, _ := r.Encode()
	for b.Loop() {
		if _, err := Decode(line); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzPeekHead checks that the head PeekHead reads of a line agrees with
// the record Decode reads, whenever Decode accepts the line.
func FuzzPeekHead(f *testing.F) {
	for _, r := range []*Record{
		{Seq: 1, Time: "t", Host: "h", Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: "a",
			Annotations: map[string]string{"stage": "poststop", "container_id": "b"}},
		{Seq: 7, Source: "audit", Stage: StageTornTail, Torn: `{"seq":1,"stage":"x"`},
		{Seq: 8, Source: SourceContainerdEvents, Stage: StageExit, ContainerID: "c", Bundle: "/b", Namespace: "k8s.io"},
		{Seq: 9, Source: SourceContainerdEvents, Stage: StageExit, ContainerID: "c", Namespace: "a\"namespace\":\"b"},
	} {
		line, err := r.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(line)
	}
	f.Add([]byte(`{"stage":"x\"y","container_id":"a"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		h, ok := PeekHead(line)
		r, err := Decode(line)
		if err != nil {
			return
		}
		if !ok || h != (Head{r.Seq, r.Host, r.Source, r.Stage, r.ContainerID, r.Namespace}) {
			t.Fatalf("PeekHead %+v (ok %v), Decode %+v", h, ok, r)
		}
	})
}

// FuzzDecodePaths holds the fast path (parseCanonical) to the path that
// reads members by name: whatever the fast path reads, the other reads
// the same.
func FuzzDecodePaths(f *testing.F) {
	for _, flags := range []uint16{0, 0xffff, 8, 8 | 32, 4 | 512, 2048 | 4096 | 8192, 8 | 16 | 16384, 8 | 16384 | 32768} {
		r := fuzzRecord("t\u2028<", "h\n\xff", "s😀", 7, flags)
		r.body()
		f.Add(appendRecord(nil, r))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := parseCanonical(body)
		if !ok {
			return
		}
		slow, err := decodeMembers(body)
		if err != nil {
			t.Fatalf("the fast path reads what the other refuses (%v): %q", err, body)
		}
		if d := cmp.Diff(slow, fast); d != "" {
			t.Fatalf("paths differ on %q (-members +fast):\n%s", body, d)
		}
	})
}

// TestPeekHeadDamagedAfterHead: a line whose head is whole and whose
// bundle is damaged still names its host and container (verify --nodes
// gives it to its node's chain, which reports it).
func TestPeekHeadDamagedAfterHead(t *testing.T) {
	r := &Record{Seq: 3, Time: "t", Host: "node-a", Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: "c", Bundle: "/b", Namespace: "k8s.io"}
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Replace(line, []byte(`"bundle":"/b"`), []byte(`"bundle":"/b`+"\x00\x00"), 1)
	damaged = bytes.Replace(damaged, []byte(`","namespace"`), []byte(`\q"namespace"`), 1)
	h, ok := PeekHead(damaged)
	if !ok || h.Host != "node-a" || h.ContainerID != "c" || h.Namespace != "" {
		t.Errorf("PeekHead = %+v, %v; want node-a's container c, no namespace", h, ok)
	}
	if h, ok := PeekHead(line); !ok || h.Namespace != "k8s.io" {
		t.Errorf("whole line: %+v, %v", h, ok)
	}
}

// TestHeldMembersRequired: a held member without its uids, gids or
// groups is refused (its IDs read as 0, host root's, otherwise); the
// encoder writes all three.
func TestHeldMembersRequired(t *testing.T) {
	r := fuzzRecord("t", "h", "s", 7, 0xffff)
	body := appendRecord(nil, r)
	i := bytes.Index(body, []byte(`"held":{`))
	if i < 0 {
		t.Fatalf("no held member in %s", body)
	}
	j := bytes.Index(body[i:], []byte(`]}`))
	if _, err := decodeMembers(body); err != nil {
		t.Fatalf("as written: %v", err)
	}
	for _, held := range []string{`"held":{}`, `"held":{"uids":[1,2,3,4],"gids":[1,2,3,4]}`, `"held":{"gids":[1,2,3,4],"groups":[]}`} {
		b := append(append(append([]byte{}, body[:i]...), held...), body[i+j+2:]...)
		if _, err := decodeMembers(b); err == nil || !strings.Contains(err.Error(), "held lacks uids, gids or groups") {
			t.Errorf("%s: %v", held, err)
		}
	}
}

// TestDamageHeadDecoy: a container's annotations holding a damage
// record's head text (its creator writes them) do not make its record
// read as one; a damage record's line does.
func TestDamageHeadDecoy(t *testing.T) {
	decoy := &Record{Seq: 2, Time: "t", Host: "h", Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: "c",
		Annotations: map[string]string{"source": "audit", "stage": "damaged", "x": `"source":"audit","stage":"damaged"`}}
	d := &Record{Seq: 3, Time: "t", Host: "h", Source: SourceAudit, Stage: StageDamaged, Damage: []DamagedLine{{File: "f", Kind: "zeroed"}}}
	for _, tc := range []struct {
		r    *Record
		want bool
	}{{decoy, false}, {d, true}} {
		line, err := tc.r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got := damageHead(line); got != tc.want {
			t.Errorf("damageHead(%s) = %v, want %v", line, got, tc.want)
		}
	}
}
