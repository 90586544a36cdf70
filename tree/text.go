package tree

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// Branches of the text tree.
const (
	branchMid  = "├── "
	branchLast = "└── "
	contMid    = "│   "
	contLast   = "    "
)

// MaxDetailProcs is how many processes, and how many ways a namespace
// was found, a --details line lists before "+N more" (JSON lists all).
const MaxDetailProcs = 8

// Options controls rendering.
type Options struct {
	// Details adds the processes and how each namespace was found.
	Details bool
	// Keep, if set, limits the output to the namespaces it returns true
	// for (lstool uses it for --container). It should keep every ancestor
	// of a kept namespace; a child whose parent is not kept is not shown.
	Keep func(*discover.Namespace) bool
	// Maps, if set, are the ID maps of user namespaces, shown with
	// Details and in JSON ("maps").
	Maps map[discover.Key]*Maps
}

// Text writes the namespaces of type t (nsrel.TypeUser or nsrel.TypePID) as
// one tree per root.
func Text(w io.Writer, m *discover.Model, t nsrel.Type, o Options) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	var line []byte
	var walk func(n *discover.Namespace, prefix string)
	walk = func(n *discover.Namespace, prefix string) {
		kids := o.Filter(n.Children)
		for i, c := range kids {
			branch, cont := branchMid, contMid
			if i == len(kids)-1 {
				branch, cont = branchLast, contLast
			}
			line = append(append(append(line[:0], prefix...), branch...), o.label(c)...)
			bw.Write(append(line, '\n'))
			walk(c, prefix+cont)
		}
	}
	for _, r := range o.Filter(m.Roots(t)) {
		bw.WriteString(o.label(r))
		bw.WriteByte('\n')
		walk(r, "")
	}
	return bw.Flush()
}

// label is [Label] with the maps of [Options.Maps] in details.
func (o Options) label(n *discover.Namespace) string {
	l := Label(n, o.Details)
	if !o.Details || o.Maps == nil {
		return l
	}
	var b strings.Builder
	b.WriteString(l)
	o.writeMaps(&b, n)
	return b.String()
}

// Filter returns the namespaces of ns that Keep keeps (all without Keep).
func (o Options) Filter(ns []*discover.Namespace) []*discover.Namespace {
	if o.Keep == nil {
		return ns
	}
	var out []*discover.Namespace
	for _, n := range ns {
		if o.Keep(n) {
			out = append(out, n)
		}
	}
	return out
}

// Label returns the text of one tree node, without branches:
// "user:[INO] owner NAME (UID)" or "pid:[INO] owner user:[INO] NAME (UID)",
// then " containers: ..." when containers live in it, then with details
// "; processes: ...; found via: ...".
func Label(n *discover.Namespace, details bool) string {
	var b strings.Builder
	b.WriteString(n.Name().String())
	b.WriteString(" owner ")
	if n.Type != nsrel.TypeUser {
		if n.Owner != nil {
			b.WriteString(n.Owner.Name().String())
			b.WriteByte(' ')
		}
	}
	uid, name := n.UID()
	b.WriteString(Owner(uid, name))
	if len(n.Containers) > 0 {
		b.WriteString(" containers: ")
		for i, c := range n.Containers {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ContainerLabel(c))
		}
	}
	if details {
		writeDetails(&b, n)
	}
	return b.String()
}

// Owner formats an owner: "NAME (UID)", just "UID" for a UID without a
// passwd entry, "?" when the UID is unknown (uid < 0).
func Owner(uid int64, name string) string {
	switch {
	case uid < 0:
		return "?"
	case name == "":
		return strconv.FormatInt(uid, 10)
	default:
		return vocab.Escape(name) + " (" + strconv.FormatInt(uid, 10) + ")"
	}
}

// ContainerLabel formats a container for a tree line: engine, then the
// engine namespace and "/" when there is one, the ID shortened to 12
// characters, then " (NAME)" when it has a name. A Kubernetes name
// "pod-namespace/pod-name" prints as "(pod pod-namespace/pod-name)", and
// "pod-namespace/pod-name/container" as "(pod pod-namespace/pod-name,
// container container)" ([vocab.SplitContainerName]): "containerd
// k8s.io/3f1c2a9b7e0d (pod default/web-0, container app)", "runc zoo-1",
// "podman 0a1b2c3d4e5f (web)". A local user's container names no pod,
// whatever its name. Each name is quoted when it holds anything but
// ASCII letters, digits and ._-:@+= (a pod's name also its one "/"), see
// [quoteName]: a container's name cannot read as a separator or as
// another container's label.
func ContainerLabel(c discover.Container) string { return containerLabel(c, quoteName) }

// containerLabel is [ContainerLabel] with names quoted by quote.
func containerLabel(c discover.Container, quote func(s string, pod bool) string) string {
	var b strings.Builder
	b.WriteString(vocab.Escape(c.Engine))
	b.WriteByte(' ')
	if c.Namespace != "" {
		b.WriteString(vocab.Escape(c.Namespace))
		b.WriteByte('/')
	}
	b.WriteString(vocab.Escape(ShortID(c.ID)))
	if c.Name == "" {
		return b.String()
	}
	pod, name := "", c.Name
	if !vocab.UsersContainer(c.Namespace) {
		pod, name = vocab.SplitContainerName(c.Name)
	}
	b.WriteString(" (")
	if pod != "" {
		b.WriteString("pod " + quote(pod, true))
		if name != "" {
			b.WriteString(", container " + quote(name, false))
		}
	} else {
		b.WriteString(quote(name, false))
	}
	b.WriteByte(')')
	return b.String()
}

// quoteName returns a container's name (or a part of it) as a label
// shows it: as it is when it holds only ASCII letters, digits and
// ._-:@+= (and slashes, for a pod: pod, its own, is the name of a pod
// "pod-namespace/pod-name"), else quoted with [vocab.Quote], so that no
// comma, parenthesis, space or look-alike in it reads as the label's own.
func quoteName(s string, pod bool) string {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-:@+=", c) >= 0 || pod && c == '/'
	}
	if plain {
		return s
	}
	return vocab.Quote(s)
}

// ShortID cuts a generated hexadecimal ID (containerd, Docker, CRI, podman:
// 64 hex digits) to its first 12 digits, as docker ps and crictl do. IDs
// that people chose (runc run NAME) are kept whole: cutting "web-frontend-2"
// would make it ambiguous.
func ShortID(id string) string {
	if len(id) < 16 {
		return id
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id
		}
	}
	return id[:12]
}

func writeDetails(b *strings.Builder, n *discover.Namespace) {
	if len(n.Processes) > 0 {
		b.WriteString("; processes: ")
		writeCapped(b, len(n.Processes), func(i int) {
			p := n.Processes[i]
			b.WriteString(strconv.Itoa(p.PID))
			if p.Comm != "" {
				b.WriteString(" " + vocab.QuoteItem(p.Comm))
			}
		})
	}
	// A process may hold thousands of fds to one namespace.
	b.WriteString("; found via: ")
	// (The scan lists the first fds and mounts, and counts the others.)
	writeCappedMore(b, len(n.FoundVia), n.FoundViaMore, func(i int) { b.WriteString(FoundLabel(n.FoundVia[i])) })
}

// CappedList joins items with ", ", up to [MaxDetailProcs] of them, then
// " +N more" for the rest and the more not given, as a --details line
// lists the ways a namespace was found (FoundVia and FoundViaMore).
func CappedList(items []string, more int) string {
	var b strings.Builder
	writeCappedMore(&b, len(items), more, func(i int) { b.WriteString(items[i]) })
	return b.String()
}

// writeCapped writes items 0 to n-1 with item, separated by ", ", up to
// MaxDetailProcs of them, then " +N more" for the rest.
func writeCapped(b *strings.Builder, n int, item func(i int)) {
	writeCappedMore(b, n, 0, item)
}

// writeCappedMore is [writeCapped] of a list that more items not given
// follow.
func writeCappedMore(b *strings.Builder, n, more int, item func(i int)) {
	for i := range n {
		if i == MaxDetailProcs {
			more += n - i
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		item(i)
	}
	if more > 0 {
		b.WriteString(" +" + strconv.Itoa(more) + " more")
	}
}

// FoundLabel formats one way a namespace was found: "process 1",
// "pid_for_children 42", "task 7/9", "fd /proc/7/fd/3", "socket
// /proc/7/fd/4", "mount /run/x in
// mnt:[4026532200]", "parent of user:[4026532176]", "owner of
// net:[4026532300]".
func FoundLabel(f discover.Found) string { return foundLabel(f, vocab.QuoteItem) }

// foundLabel is [FoundLabel] with paths quoted by quote.
func foundLabel(f discover.Found, quote func(string) string) string {
	switch f.Via {
	case discover.ViaProcess, discover.ViaPIDForChildren:
		return string(f.Via) + " " + strconv.Itoa(f.PID)
	case discover.ViaTask:
		return "task " + strconv.Itoa(f.PID) + "/" + strconv.Itoa(f.TID)
	case discover.ViaFD:
		return "fd " + quote(f.Path)
	case discover.ViaSocket:
		return "socket " + quote(f.Path)
	case discover.ViaMount:
		return "mount " + quote(f.Path) + " in " + nsrel.Name{Type: nsrel.TypeMount, Ino: f.MountNS}.String()
	case discover.ViaParent, discover.ViaOwner:
		return string(f.Via) + " of " + vocab.Escape(f.Of)
	}
	return vocab.Escape(string(f.Via))
}
