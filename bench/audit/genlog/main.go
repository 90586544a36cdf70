package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/nsrel/nsrel/hook/audit"
)

func main() {
	mb := flag.Int("mb", 300, "size of the log in MiB")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: genlog [-mb N] FILE")
		os.Exit(2)
	}
	f, err := os.OpenFile(flag.Arg(0), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genlog:", err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	u := func(v uint64) *uint64 { return &v }
	prev := ""
	var size int64
	for seq := uint64(1); size < int64(*mb)<<20; seq++ {
		stage := []string{audit.StageCreateRuntime, audit.StagePoststart, audit.StagePoststop}[seq%3]
		r := &audit.Record{Seq: seq, Prev: prev, Time: "2026-12-03T09:00:00.000000000Z", Host: "node-a", Source: audit.SourceOCIHook,
			Stage: stage, ContainerID: fmt.Sprintf("%064x", seq/3), Bundle: fmt.Sprintf("/run/containerd/io.containerd.runtime.v2.task/k8s.io/%064x", seq/3),
			Annotations: map[string]string{"io.kubernetes.cri.sandbox-name": "web-0", "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.container-name": "app"},
			Policy:      "default", Mode: "audit", Verdict: audit.VerdictAllow, Version: "bench"}
		if stage != audit.StagePoststop {
			r.Ancestry = &audit.Ancestry{PID: int(1000 + seq%30000), StartTime: seq,
				User:  []audit.UserNS{{Ino: 4026532000 + seq, Dev: 4, ID: u(seq), OwnerUID: 0}, {Ino: 4026531837, Dev: 4, ID: u(1)}},
				PIDNS: []audit.PIDNS{{Ino: 4026533000 + seq, Dev: 4, ID: u(seq + 1), OwnerUserIno: u(4026532000 + seq)}, {Ino: 4026531836, Dev: 4, ID: u(2), OwnerUserIno: u(4026531837)}}}
		} else {
			r.Verdict = ""
		}
		line, err := r.Encode()
		if err != nil {
			fmt.Fprintln(os.Stderr, "genlog:", err)
			os.Exit(1)
		}
		w.Write(line)
		size += int64(len(line))
		prev = r.Hash
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "genlog:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "genlog:", err)
		os.Exit(1)
	}
}
