package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
)

// writeHistory prints records as a readable history, grouped by
// container in the order containers first appear.
func writeHistory(w io.Writer, recs []*audit.Record) error {
	var order []string
	by := map[string][]*audit.Record{}
	for _, r := range recs {
		if _, ok := by[r.ContainerID]; !ok {
			order = append(order, r.ContainerID)
		}
		by[r.ContainerID] = append(by[r.ContainerID], r)
	}
	var b strings.Builder
	for i, id := range order {
		if i > 0 {
			b.WriteByte('\n')
		}
		rs := by[id]
		if id == "" {
			b.WriteString("log events")
		} else {
			b.WriteString("container " + vocab.Printable(id))
		}
		if name := podName(rs); name != "" {
			b.WriteString(" (pod " + vocab.Printable(name) + ")")
		}
		b.WriteByte('\n')
		for _, r := range rs {
			writeRecord(&b, r)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// podName returns the pod the records name (see [vocab.PodName]).
func podName(rs []*audit.Record) string {
	for _, r := range rs {
		if name := vocab.PodName(r.Annotations); name != "" {
			return name
		}
	}
	return ""
}

func writeRecord(b *strings.Builder, r *audit.Record) {
	fmt.Fprintf(b, "  seq %-5d %s  %-13s", r.Seq, vocab.Printable(r.Time), vocab.Printable(r.Stage))
	if r.Verdict != "" {
		fmt.Fprintf(b, " %-5s", r.Verdict)
	}
	if r.Policy != "" {
		fmt.Fprintf(b, " policy %s (%s)", vocab.Printable(r.Policy), vocab.Printable(r.Mode))
	}
	if r.Source != audit.SourceOCIHook {
		fmt.Fprintf(b, " source %s", vocab.Printable(r.Source))
	}
	if r.Ancestry != nil {
		fmt.Fprintf(b, " pid %d", r.PID)
	}
	if r.Ref != nil {
		fmt.Fprintf(b, " (follows seq %d %s)", r.Ref.Seq, vocab.Printable(r.Ref.Stage))
	}
	b.WriteByte('\n')
	if a := r.Ancestry; a != nil {
		b.WriteString("        user: " + userChain(a) + "\n")
		b.WriteString("        pid:  " + pidChain(a) + "\n")
	}
	for _, v := range r.Violations {
		fmt.Fprintf(b, "        violation %s: %s\n", vocab.Printable(v.Rule), vocab.Printable(v.Reason))
	}
	if r.Error != "" {
		fmt.Fprintf(b, "        error: %s\n", vocab.Printable(r.Error))
	}
	if r.Stage == audit.StageTornTail {
		fmt.Fprintf(b, "        torn line of %d bytes: %s\n", r.TornBytes, strconv.Quote(r.Torn))
	}
}

func userChain(a *audit.Ancestry) string {
	parts := make([]string, len(a.User))
	for i, u := range a.User {
		parts[i] = fmt.Sprintf("%s owner %d%s", nsrel.Name{Type: nsrel.TypeUser, Ino: u.Ino}, u.OwnerUID, idSuffix(u.ID))
	}
	return strings.Join(parts, " < ") + fmt.Sprintf("  (depth %d)", a.UserDepth())
}

func pidChain(a *audit.Ancestry) string {
	parts := make([]string, len(a.PIDNS))
	for i, p := range a.PIDNS {
		owner := "?"
		if p.OwnerUserIno != nil {
			owner = nsrel.Name{Type: nsrel.TypeUser, Ino: *p.OwnerUserIno}.String()
		}
		parts[i] = fmt.Sprintf("%s owned by %s%s", nsrel.Name{Type: nsrel.TypePID, Ino: p.Ino}, owner, idSuffix(p.ID))
	}
	return strings.Join(parts, " < ")
}

func idSuffix(id *uint64) string {
	if id == nil {
		return ""
	}
	return " id " + strconv.FormatUint(*id, 10)
}
