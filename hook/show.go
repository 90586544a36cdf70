package hook

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/nsrel"
)

// Printable returns s unchanged when every rune is printable, else
// s quoted with Go escapes, so that container-controlled strings cannot
// move the cursor or hide text on a terminal.
func Printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return strconv.Quote(s)
		}
	}
	return s
}

// WriteHistory prints records as a readable history, grouped by
// container in the order containers first appear.
func WriteHistory(w io.Writer, recs []*audit.Record) error {
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
			b.WriteString("container " + Printable(id))
		}
		if name := podName(rs); name != "" {
			b.WriteString(" (pod " + Printable(name) + ")")
		}
		b.WriteByte('\n')
		for _, r := range rs {
			writeRecord(&b, r)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func podName(rs []*audit.Record) string {
	for _, r := range rs {
		a := r.Annotations
		ns, name := a["io.kubernetes.cri.sandbox-namespace"], a["io.kubernetes.cri.sandbox-name"]
		if name == "" {
			ns, name = a["io.kubernetes.pod.namespace"], a["io.kubernetes.pod.name"]
		}
		if name != "" {
			if ns != "" {
				return ns + "/" + name
			}
			return name
		}
	}
	return ""
}

func writeRecord(b *strings.Builder, r *audit.Record) {
	fmt.Fprintf(b, "  seq %-5d %s  %-13s", r.Seq, Printable(r.Time), Printable(r.Stage))
	if r.Verdict != "" {
		fmt.Fprintf(b, " %-5s", r.Verdict)
	}
	if r.Policy != "" {
		fmt.Fprintf(b, " policy %s (%s)", Printable(r.Policy), Printable(r.Mode))
	}
	if r.Source != audit.SourceOCIHook {
		fmt.Fprintf(b, " source %s", Printable(r.Source))
	}
	if r.Ancestry != nil {
		fmt.Fprintf(b, " pid %d", r.PID)
	}
	if r.Ref != nil {
		fmt.Fprintf(b, " (follows seq %d %s)", r.Ref.Seq, Printable(r.Ref.Stage))
	}
	b.WriteByte('\n')
	if a := r.Ancestry; a != nil {
		b.WriteString("        user: " + userChain(a) + "\n")
		b.WriteString("        pid:  " + pidChain(a) + "\n")
	}
	for _, v := range r.Violations {
		fmt.Fprintf(b, "        violation %s: %s\n", Printable(v.Rule), Printable(v.Reason))
	}
	if r.Error != "" {
		fmt.Fprintf(b, "        error: %s\n", Printable(r.Error))
	}
	if r.Stage == audit.StageTornTail {
		fmt.Fprintf(b, "        torn line of %d bytes: %s\n", r.TornBytes, strconv.Quote(r.Torn))
	}
}

func userChain(a *inspect.Ancestry) string {
	parts := make([]string, len(a.User))
	for i, u := range a.User {
		parts[i] = fmt.Sprintf("%s owner %d%s", nsrel.Name{Type: nsrel.TypeUser, Ino: u.Ino}, u.OwnerUID, idSuffix(u.ID))
	}
	return strings.Join(parts, " < ") + fmt.Sprintf("  (depth %d)", a.UserDepth())
}

func pidChain(a *inspect.Ancestry) string {
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
