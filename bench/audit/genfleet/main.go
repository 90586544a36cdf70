package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/nsrel/nsrel/hook/audit"
)

func main() {
	hosts := flag.Int("hosts", 2000, "hosts in the stream")
	records := flag.Int("records", 1, "records per host")
	checkpoints := flag.Int("checkpoints", 0, "checkpoints per host (of its last record)")
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 || (*checkpoints > 0) != (flag.NArg() == 2) {
		fmt.Fprintln(os.Stderr, "usage: genfleet [-hosts N] [-records N] [-checkpoints N RECORDS CHECKPOINTS | RECORDS]")
		os.Exit(2)
	}
	prev := make([]string, *hosts)
	write(flag.Arg(0), func(w *bufio.Writer) error {
		for seq := 1; seq <= *records; seq++ {
			for i := range *hosts {
				r := &audit.Record{Seq: uint64(seq), Prev: prev[i], Time: "2026-12-05T08:00:00Z", Host: host(i),
					Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: fmt.Sprintf("c-%d-%d", i, seq), Version: "bench"}
				line, err := r.Encode()
				if err != nil {
					return err
				}
				prev[i] = r.Hash
				w.Write(line)
			}
		}
		return nil
	})
	if *checkpoints > 0 {
		write(flag.Arg(1), func(w *bufio.Writer) error {
			for range *checkpoints {
				for i := range *hosts {
					c := audit.Checkpoint{Host: host(i), Log: "/var/log/nsrel/audit.jsonl", Seq: uint64(*records), Hash: prev[i], Time: "2026-12-05T08:00:01Z"}
					w.Write(c.Line())
				}
			}
			return nil
		})
	}
}

func host(i int) string { return fmt.Sprintf("node-%05d", i) }

func write(name string, fill func(*bufio.Writer) error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		w := bufio.NewWriterSize(f, 1<<20)
		if err = fill(w); err == nil {
			err = w.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genfleet:", err)
		os.Exit(1)
	}
}
