package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// writeContainer prints the records of one container (id "": the log's
// own events, or with noID those of containers whose state named no ID).
func writeContainer(w io.Writer, id string, noID bool, rs []*audit.Record) {
	var b strings.Builder
	switch {
	case noID:
		b.WriteString("containers without an ID")
	case id == "":
		b.WriteString("log events")
	default:
		b.WriteString("container " + plainOrQuoted(id))
	}
	// The hook's records have the pod from the container's annotations,
	// which its creator writes (a plain runc container can name any
	// pod); the NRI plugin's from the pod the runtime sends (the name the
	// kubelet's labels carry, not the labels: an image's, under crictl).
	// Records of an ID
	// are of every container that had it (one a containerd namespace, or
	// one after another): each pod named is said (the first's was shown
	// for them all).
	kubelet, claimed := podNames(rs)
	quote := func(names []string) string {
		q := make([]string, len(names))
		for i, n := range names {
			q[i] = plainOrQuoted(n)
		}
		return strings.Join(q, ", ")
	}
	switch {
	case len(kubelet) > 0:
		pods := " (pod "
		if len(kubelet) > 1 {
			pods = " (pods "
		}
		b.WriteString(pods + quote(kubelet))
		if len(claimed) > 0 {
			b.WriteString("; by their annotations, records also name " + quote(claimed))
		}
		b.WriteString(")")
	case len(claimed) == 1:
		b.WriteString(" (pod " + quote(claimed) + ", by its annotations)")
	case len(claimed) > 1:
		b.WriteString(" (pods " + quote(claimed) + ", by their annotations: records of more than one container)")
	}
	b.WriteByte('\n')
	for _, r := range rs {
		writeRecord(&b, r)
	}
	io.WriteString(w, b.String())
}

// podNames returns the pods the records name (see [vocab.PodName]): the
// NRI plugin's (the runtime's word), and each other pod a record names
// (by its annotations), each list in the order first named.
func podNames(rs []*audit.Record) (kubelet, claimed []string) {
	seen := map[string]bool{}
	for _, r := range rs {
		if n := vocab.PodName(r.Annotations); n != "" && r.Source == audit.SourceNRI && !seen[n] {
			seen[n] = true
			kubelet = append(kubelet, n)
		}
	}
	for _, r := range rs {
		if n := vocab.PodName(r.Annotations); n != "" && !seen[n] {
			seen[n] = true
			claimed = append(claimed, n)
		}
	}
	return kubelet, claimed
}

func writeRecord(b *strings.Builder, r *audit.Record) {
	fmt.Fprintf(b, "  seq %-5d %s  %-13s", r.Seq, vocab.Printable(r.Time), vocab.Printable(r.Stage))
	if r.Verdict != "" {
		fmt.Fprintf(b, " %-5s", vocab.Printable(r.Verdict))
	}
	if r.Policy != "" {
		fmt.Fprintf(b, " policy %s (%s)", vocab.Printable(r.Policy), vocab.Printable(r.Mode))
	}
	if r.Source != audit.SourceOCIHook {
		fmt.Fprintf(b, " source %s", vocab.Printable(r.Source))
	}
	if r.Namespace != "" {
		// A container ID names one container per containerd namespace.
		fmt.Fprintf(b, " namespace %s", plainOrQuoted(r.Namespace))
	}
	if r.Ancestry != nil {
		fmt.Fprintf(b, " pid %d", r.PID)
	}
	if r.Ref != nil {
		fmt.Fprintf(b, " (follows seq %d %s)", r.Ref.Seq, vocab.Printable(r.Ref.Stage))
	}
	b.WriteByte('\n')
	if a := r.Ancestry; a != nil {
		// PID and start time name a process within one boot only.
		fmt.Fprintf(b, "        process: start time %d (clock ticks since boot)", a.StartTime)
		if r.BootID != "" {
			b.WriteString(", boot " + vocab.Printable(r.BootID))
		}
		b.WriteByte('\n')
		b.WriteString("        user: " + userChain(a) + "\n")
		// The IDs a hook read are those of the top of the chain: the
		// host's, or a rootless runtime's user namespace's.
		ids := "host "
		if n := len(a.User); n > 0 && a.User[n-1].Ino != nsrel.InitialUserNSIno {
			ids = "in " + nsrel.Name{Type: nsrel.TypeUser, Ino: a.User[n-1].Ino}.String() + " "
		}
		for i, m := range a.Maps {
			if ids != "host " && i == len(a.Maps)-1 && len(m.HostUIDMap) == 1 && m.HostUIDMap[0] == (audit.IDRange{Inside: 0, Outside: 0, Count: 4294967295}) {
				// Written before format 1.6: the identity map, as if
				// the top were the initial namespace, which it is not.
				b.WriteString("        maps: " + nsrel.Name{Type: nsrel.TypeUser, Ino: m.Ino}.String() + " not recorded (an nsrel before 1.6 gave the top of the chain of a hook run in a user namespace of its own every ID)\n")
				continue
			}
			if line := mapsLine(m, ids); line != "" {
				b.WriteString("        maps: " + line + "\n")
			}
		}
		b.WriteString("        pid:  " + pidChain(a) + "\n")
		if c := a.Creds; c != nil {
			fmt.Fprintf(b, "        creds: uid %d (euid %d, suid %d, fsuid %d), gid %d (egid %d, sgid %d, fsgid %d)", c.UID, c.EUID, c.SUID, c.FSUID, c.GID, c.EGID, c.SGID, c.FSGID)
			if c.CgroupID != nil {
				fmt.Fprintf(b, ", cgroup %d", *c.CgroupID)
			}
			b.WriteByte('\n')
		}
		if h := a.Held; h != nil {
			groups := idList(h.Groups)
			if h.Groups == nil {
				groups = "(left out: the record was too long)"
			}
			fmt.Fprintf(b, "        held: uids %s, gids %s, groups %s\n", idList(h.UIDs[:]), idList(h.GIDs[:]), groups)
		}
		for _, m := range a.IDMapped {
			// The point is the container's creator's text.
			line := "idmapped mount " + vocab.Printable(m.Point)
			if m.UIDMap != nil || m.GIDMap != nil {
				line += ": uid_map " + rangeList(m.UIDMap) + ", gid_map " + rangeList(m.GIDMap)
			}
			if m.Err != "" {
				line += " (" + vocab.Printable(m.Err) + ")"
			}
			b.WriteString("        " + line + "\n")
		}
	}
	for _, v := range r.Violations {
		fmt.Fprintf(b, "        violation %s: %s\n", vocab.Printable(v.Rule), vocab.Printable(v.Reason))
	}
	if r.Error != "" {
		fmt.Fprintf(b, "        error: %s\n", vocab.Printable(r.Error))
	}
	if r.Stage == audit.StageTornTail {
		fmt.Fprintf(b, "        torn line of %d bytes: %s\n", r.TornBytes, vocab.GoQuote(r.Torn))
	}
	for _, d := range r.Damage {
		// The file's name when the damage was recorded: a rotation
		// since has renamed it (audit verify names where it is now).
		fmt.Fprintf(b, "        damaged line (%s) at byte %d of %s (as the file was named then; audit verify says where it is now), %d bytes, sha256 %s: %s\n", vocab.Printable(d.Kind), d.Offset, vocab.Printable(d.File), d.Bytes, vocab.Printable(d.SHA256), vocab.Printable(d.Reason))
	}
	if d := r.Dropped; d != nil {
		fmt.Fprintf(b, "        removed %s: seq %d..%d, last hash %s\n", vocab.Printable(d.File), d.FirstSeq, d.LastSeq, vocab.Printable(d.LastHash))
	}
	if r.SealID != "" {
		fmt.Fprintf(b, "        sealing key %s\n", vocab.Printable(r.SealID))
	}
	if r.Note != "" {
		fmt.Fprintf(b, "        note: %s\n", vocab.Printable(r.Note))
	}
	if r.SealError != "" {
		fmt.Fprintf(b, "        not sealed: %s\n", vocab.Printable(r.SealError))
	}
	if n := uint64(len(r.LateSeals)); n > 0 && r.Seq > n {
		fmt.Fprintf(b, "        seals seq %d..%d late (written unsealed)\n", r.Seq-n, r.Seq-1)
	}
}

func userChain(a *audit.Ancestry) string {
	parts := make([]string, len(a.User))
	for i, u := range a.User {
		parts[i] = fmt.Sprintf("%s owner %d%s", nsrel.Name{Type: nsrel.TypeUser, Ino: u.Ino}, u.OwnerUID, idSuffix(u.ID))
	}
	return strings.Join(parts, " < ") + fmt.Sprintf("  (depth %d)", a.UserDepth())
}

// mapsLine describes one level's ID maps: the lines relative to the
// parent, setgroups, and the IDs they come to in the top of the chain
// (ids: "host " or "in user:[N] "); "" for the initial user namespace,
// which maps every ID to itself.
func mapsLine(m audit.UserMaps, ids string) string {
	name := nsrel.Name{Type: nsrel.TypeUser, Ino: m.Ino}.String()
	if m.Ino == nsrel.InitialUserNSIno && m.Error == "" {
		return ""
	}
	if m.HostUIDMap == nil {
		return name + " " + vocab.Printable(m.Error)
	}
	var parts []string
	if m.UIDMap != nil {
		parts = append(parts, "uid_map "+rangeList(m.UIDMap), "gid_map "+rangeList(m.GIDMap))
	}
	parts = append(parts, "setgroups "+vocab.Printable(m.SetGroups),
		ids+"UIDs "+hostIDs(m.HostUIDMap), ids+"GIDs "+hostIDs(m.HostGIDMap))
	line := name + " " + strings.Join(parts, ", ")
	if m.Error != "" {
		line += " (" + vocab.Printable(m.Error) + ")"
	}
	return line
}

// idList prints IDs joined by spaces, "(none)" for none.
func idList(ids []uint32) string {
	if len(ids) == 0 {
		return "(none)"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(parts, " ")
}

// rangeList prints map lines as "inside outside count" joined by "; ".
func rangeList(r []audit.IDRange) string {
	if len(r) == 0 {
		return "(empty)"
	}
	parts := make([]string, len(r))
	for i, x := range r {
		parts[i] = fmt.Sprintf("%d %d %d", x.Inside, x.Outside, x.Count)
	}
	return strings.Join(parts, "; ")
}

func hostIDs(r []audit.IDRange) string {
	if len(r) == 0 {
		return "none"
	}
	m := make(idmap.Map, len(r))
	for i, x := range r {
		m[i] = idmap.Range(x)
	}
	return m.Host().String()
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
