package lstool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	flag "github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// DotTimeout bounds dot(1)'s run for --format svg and html (a variable
// for tests).
var DotTimeout = time.Minute

// pictureError is a failure of a graph format other than writing the
// output: dot failed, the audit log could not be read.
type pictureError struct{ err error }

func (e *pictureError) Error() string { return vocab.Printable(e.err.Error()) }
func (e *pictureError) Unwrap() error { return e.err }

// pictureFlags are the flags of the graph formats (docs/pictures.md).
type pictureFlags struct {
	format string
	// formatGiven: --format was on the command line (--json with
	// --format text contradicts it as with another format).
	formatGiven bool
	collapse    int
	pid         int
	auditLog    string
	title       string
}

func (p *pictureFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.format, "format", "text", "output `format`: text, json, dot (Graphviz), svg (runs dot) or html (a self-contained report); dot, svg and html draw user and PID namespaces together")
	fs.IntVar(&p.collapse, "collapse", 0, "dot, svg, html: fold runs of at least `N` (2 or more) process-less namespaces without containers into one node")
	fs.IntVarP(&p.pid, "pid", "p", 0, "print only the branches leading to the namespaces of process `PID`")
	fs.StringVar(&p.auditLog, "audit-log", "", "html: add the history of the shown containers from the nsrel-hook audit log `FILE`, verified first")
	fs.StringVar(&p.title, "title", "", "html: the report's `title` (default: the command and the host name)")
}

// graphic reports whether the format draws a graph of both types.
func (p *pictureFlags) graphic() bool {
	return p.format == "dot" || p.format == "svg" || p.format == "html"
}

// check returns a usage error, or "".
func (p *pictureFlags) check(c *config) string {
	switch p.format {
	case "text", "json", "dot", "svg", "html":
	default:
		return fmt.Sprintf("--format %s: want text, json, dot, svg or html", vocab.Quote(p.format))
	}
	switch {
	case c.json && p.format != "json" && (p.format != "text" || p.formatGiven):
		return "--json and --format " + p.format + " contradict each other"
	case p.collapse == 1 || p.collapse < 0:
		return "--collapse: want 0 (off) or 2 or more"
	case p.pid < 0:
		return "--pid: want a process ID"
	case p.pid > 0 && c.container != "":
		return "--pid and --container: give one"
	case p.auditLog != "" && p.format != "html":
		return "--audit-log needs --format html"
	case p.collapse != 0 && p.format != "dot" && p.format != "svg" && p.format != "html":
		return "--collapse needs --format dot, svg or html"
	case p.title != "" && p.format != "html":
		return "--title needs --format html"
	case c.details && p.graphic():
		// It was accepted and changed nothing.
		return "--details adds to the text tree; --format " + p.format + " shows each namespace's processes and how it was found always: drop --details"
	}
	return ""
}

// pidNamespaces returns the namespaces of process pid of the given types
// (user, PID) that the model holds.
func pidNamespaces(m *discover.Model, types []nsrel.Type, pid int) ([]*discover.Namespace, error) {
	var out []*discover.Namespace
	for _, typ := range []nsrel.Type{nsrel.TypeUser, nsrel.TypePID} {
		if !slices.Contains(types, typ) {
			continue // lsuserns -p shows the process's user namespace, not its PID namespace's owner
		}
		n, err := procNS(m, pid, typ.String())
		if err != nil {
			return nil, fmt.Errorf("--pid %d: %w", pid, err)
		}
		if n != nil {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--pid %d: its namespaces appeared after the scan; run again", pid)
	}
	return out, nil
}

// checkPID checks that the namespaces of process pid of the given types
// can be opened, as [pidNamespaces] opens them after the scan: a process
// that is not there is "no such process".
func checkPID(pid int, types []nsrel.Type) error {
	for _, typ := range []nsrel.Type{nsrel.TypeUser, nsrel.TypePID} {
		if !slices.Contains(types, typ) {
			continue
		}
		path := fmt.Sprintf("/proc/%d/ns/%s", pid, typ)
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("--pid %d: no such process", pid)
		}
		if err != nil {
			return fmt.Errorf("--pid %d: %w", pid, &os.PathError{Op: "open", Path: path, Err: err})
		}
		unix.Close(fd)
	}
	return nil
}

// picture writes the graph formats. keep is the --container or --pid
// filter (nil: everything).
func (t Tool) picture(ctx context.Context, p *pictureFlags, m *discover.Model, keep func(*discover.Namespace) bool, stdout io.Writer, diag diagnostics) error {
	g := graph.Build(m, graph.Options{Keep: keep, Collapse: p.collapse})
	if p.format == "dot" {
		return g.DOT(stdout)
	}
	if p.auditLog != "" {
		if err := g.AddHistory(p.auditLog); err != nil {
			return &pictureError{err}
		}
		if !g.Audit.Verified {
			// Both escaped already, as the page has them.
			diag.print(syslog.Notice, "notice: audit log "+g.Audit.Path+": "+g.Audit.Verdict)
		}
	}
	var svg []byte
	var noSVG string
	dot, err := exec.LookPath("dot")
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, DotTimeout)
		defer cancel()
		var warnings string
		svg, warnings, err = g.SVG(ctx, dot)
		if w, _, _ := strings.Cut(strings.TrimSpace(warnings), "\n"); w != "" {
			diag.print(syslog.Notice, "notice: dot: "+vocab.Escape(w))
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("dot did not draw %d namespaces within %s: narrow the picture with --container, --pid or --collapse", g.Namespaces, DotTimeout)
		}
	}
	if err != nil {
		if p.format == "svg" {
			return &pictureError{fmt.Errorf("--format svg: Graphviz: %w", err)}
		}
		noSVG = "Graphviz (dot) could not draw it: " + firstLine(err)
		// Escaped already: dot's message by Graph.SVG (escaping it
		// again printed \\x1b for \x1b).
		diag.print(syslog.Notice, "notice: "+noSVG+"; the report has no picture")
	}
	if p.format == "svg" {
		_, err := stdout.Write(svg)
		return err
	}
	title := p.title
	if title == "" {
		host, _ := os.Hostname()
		title = "nsrel " + t.Name + " on " + host
	}
	return g.HTML(stdout, graph.HTMLOptions{Title: title, SVG: svg, NoSVG: noSVG})
}

// types is the Types of the discovery for the format: both user
// and PID namespaces for the graph formats.
func (p *pictureFlags) types(t nsrel.Type) []nsrel.Type {
	if p.graphic() {
		return []nsrel.Type{nsrel.TypeUser, nsrel.TypePID}
	}
	return []nsrel.Type{t}
}
