package audit

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
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
		r.Torn, r.TornBytes = s1, int(n%100000)
	}
	return r
}

// FuzzCodec checks that appendRecord writes exactly what json.Marshal
// writes, and that the fast decoder reads back the same record as the
// encoding/json path.
func FuzzCodec(f *testing.F) {
	f.Add("2026-11-28T19:49:09.750357162Z", "vm", "oci-hook", uint64(1), uint16(0xffff))
	f.Add("a\"b\\c\n\r\t\b\f\x01<>&", "\u2028\u2029\ufffd\xff\xfeé", "😀", uint64(1<<63), uint16(0))
	f.Add("", "", "", uint64(0), uint16(8|32))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, n uint64, flags uint16) {
		r := fuzzRecord(s1, s2, s3, n, flags)
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got := appendRecord(nil, r)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendRecord differs from json.Marshal:\n got %s\nwant %s", got, want)
		}
		if p, ok := parseCanonical(got); ok {
			ref, err := decodeJSON(got)
			if err != nil {
				// The fast path may only accept what the slow path
				// accepts, once re-encoded bytes are compared.
				if bytes.Equal(appendRecord(nil, p), got) {
					t.Fatalf("fast path reads a line encoding/json refuses (%v): %s", err, got)
				}
				return
			}
			if bytes.Equal(appendRecord(nil, p), got) {
				if d := cmp.Diff(ref, p); d != "" {
					t.Fatalf("fast and json decode differ (-json +fast):\n%s", d)
				}
			}
		}
		line, err := r.Encode()
		if err != nil {
			return // longer than MaxLine
		}
		fast, ferr := decode(line, true)
		slow, serr := decode(line, false)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("errors differ: fast %v, json %v", ferr, serr)
		}
		if d := cmp.Diff(slow, fast); d != "" {
			t.Fatalf("records differ (-json +fast):\n%s", d)
		}
	})
}

// FuzzDecodeFast feeds arbitrary lines to Decode with and without the
// fast path: both must accept the same lines, with the same record or
// the same error.
func FuzzDecodeFast(f *testing.F) {
	for _, flags := range []uint16{0, 0xffff, 8, 8 | 32, 4 | 512} {
		r := fuzzRecord("t", "h\n<", "s", 7, flags)
		line, _ := r.Encode()
		f.Add(line)
	}
	f.Add([]byte(`{"seq":1,"time":"","host":"","source":"s","stage":"x","container_id":"c","annotations":{},"version":"","prev":"","hash":"` + string(bytes.Repeat([]byte("a"), 64)) + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		fast, ferr := decode(line, true)
		slow, serr := decode(line, false)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("errors differ on %q: fast %v, json %v", line, ferr, serr)
		}
		if d := cmp.Diff(slow, fast); d != "" {
			t.Fatalf("records differ on %q (-json +fast):\n%s", line, d)
		}
	})
}

// TestCodecShapes checks records of every shape against encoding/json.
func TestCodecShapes(t *testing.T) {
	for flags := uint16(0); flags < 2048; flags++ {
		r := fuzzRecord("2026-11-28T19:49:09Z", "vm<\x00>", "src\u2028", uint64(flags)*1e15, flags)
		want, _ := json.Marshal(r)
		if got := appendRecord(nil, r); !bytes.Equal(got, want) {
			t.Fatalf("flags %#x: appendRecord\n got %s\nwant %s", flags, got, want)
		}
		p, ok := parseCanonical(want)
		ref, err := decodeJSON(want)
		if !ok || err != nil {
			t.Fatalf("flags %#x: fast ok %v, json err %v on %s", flags, ok, err, want)
		}
		if d := cmp.Diff(ref, p); d != "" {
			t.Fatalf("flags %#x: (-json +fast):\n%s", flags, d)
		}
	}
}

func BenchmarkDecodeFast(b *testing.B) {
	r := fuzzRecord("2026-11-28T19:49:09.750357162Z", "vm", "oci-hook", 12345, 8|16|64|512)
	r.Prev = ""
	line, _ := r.Encode()
	for _, fast := range []bool{true, false} {
		name := "json"
		if fast {
			name = "fast"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := decode(line, fast); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzPeekHead checks that the head PeekHead reads of a line agrees with
// the record Decode reads, whenever Decode accepts the line.
func FuzzPeekHead(f *testing.F) {
	for _, r := range []*Record{
		{Seq: 1, Time: "t", Host: "h", Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: "a",
			Annotations: map[string]string{"stage": "poststop", "container_id": "b"}},
		{Seq: 7, Source: "audit", Stage: StageTornTail, Torn: `{"seq":1,"stage":"x"`},
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
		if !ok || h != (Head{r.Seq, r.Source, r.Stage, r.ContainerID}) {
			t.Fatalf("PeekHead %+v (ok %v), Decode %+v", h, ok, r)
		}
	})
}
