package containers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
)

// BenchmarkAuditSource lists from an audit log of 6,000 records (2,000
// containers started and stopped, the last 20 still running) as a busy
// node's log would hold.
func BenchmarkAuditSource(b *testing.B) {
	_, anc, log, path := sleepingLog(b, audit.Options{})
	ann := map[string]string{vocab.AnnotationSandboxName: "web-0", vocab.AnnotationSandboxNamespace: "shop", "io.kubernetes.cri.container-name": "app"}
	var buf bytes.Buffer
	prev := ""
	for i := range 2000 {
		id := fmt.Sprintf("%064x", i)
		stages := []string{audit.StageCreateRuntime, audit.StagePoststart, audit.StagePoststop}
		if i >= 1980 {
			stages = stages[:2]
		}
		for _, st := range stages {
			r := &audit.Record{Seq: uint64(buf.Len() + 1), Time: "2026-11-28T00:00:00Z", Host: "h", Source: audit.SourceOCIHook, Stage: st, ContainerID: id, Annotations: ann, Version: "x", Prev: prev}
			if st != audit.StagePoststop {
				r.Ancestry = anc
			}
			line, err := r.Encode()
			if err != nil {
				b.Fatal(err)
			}
			buf.Write(line)
			prev = r.Hash
		}
	}
	if err := os.WriteFile(log.Path(), buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	s := &AuditSource{Path: path}
	for b.Loop() {
		cs, err := s.List(context.Background())
		if err != nil || len(cs) != 20 {
			b.Fatalf("%d containers, %v", len(cs), err)
		}
	}
}

// BenchmarkDecodePodmanNames decodes a user's containers.json of 500,000
// containers (16.3 MB, near [MaxNamesFile]) for the names of two: the
// bytes a second at which a listing reads podman's names (within
// [MaxNamesRead]), and the memory it takes (go test -bench
// DecodePodmanNames -benchmem ./containers/).
func BenchmarkDecodePodmanNames(b *testing.B) {
	data := podmanList(500_000)
	wanted := map[string]bool{"7": true, "7a11f": true}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		names, _, err := decodePodmanNames(context.Background(), bytes.NewReader(data), wanted)
		if err != nil || len(names) != 2 {
			b.Fatal(names, err)
		}
	}
}
