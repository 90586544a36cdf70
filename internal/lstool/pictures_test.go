package lstool_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/runtest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// scenario is what TestPicturesOfARealScenario builds.
type scenario struct {
	runcRoot string
	// names are every namespace the picture must show.
	names []nsrel.Name
	// nested is the chain of three nested user namespaces, innermost
	// first, up to the initial one.
	nested []uint64
	// ownedByInner is a PID namespace whose owner, inner, is a user
	// namespace with a child.
	ownedByInner, inner nsrel.Name
	// mounted and held are process-less namespaces held by a bind mount
	// and by an fd.
	mounted, held nsrel.Name
	// mountPath is where mounted is bind-mounted.
	mountPath string
	// ctrs are the two containers, ctrPIDs their processes; pod is the
	// first one's pod.
	ctrs    []string
	ctrPIDs []int
	pod     string
	// podUser is the first container's user namespace.
	podUser nsrel.Name
}

// gone kills the process group of p and waits until the processes of its
// chain have been reaped.
func gone(t *testing.T, p *nstest.Proc) {
	t.Helper()
	pids := []int{p.Cmd.Process.Pid}
	for {
		last := strconv.Itoa(pids[len(pids)-1])
		b, _ := os.ReadFile("/proc/" + last + "/task/" + last + "/children")
		f := strings.Fields(string(b))
		if len(f) == 0 {
			break
		}
		c, err := strconv.Atoi(f[0])
		if err != nil {
			break
		}
		pids = append(pids, c)
	}
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left := 0
		for _, pid := range pids {
			// A zombie still shows its PID namespace: wait until
			// it is reaped.
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still there 10 s after SIGKILL", pids)
		}
	}
}

// buildScenario starts: three nested user namespaces; a PID namespace
// owned by a user namespace that has a child; a user namespace held only
// by a bind mount in a private mount namespace; a PID namespace held only
// by an open fd; two runc containers, one in its own user namespace with
// a Kubernetes pod name.
func buildScenario(t *testing.T) *scenario {
	t.Helper()
	nstest.RequireRoot(t)
	sh := nstest.RequireCmd(t, "sh")
	nstest.RequireCmd(t, "mount")
	_, err := os.Stat(bundle.DefaultBusybox)
	nstest.Require(t, err == nil, "needs %s (busybox-static) for the container rootfs: %v", bundle.DefaultBusybox, err)
	s := &scenario{runcRoot: filepath.Join(t.TempDir(), "runc")}
	add := func(typ nsrel.Type, inos ...uint64) {
		for _, i := range inos {
			s.names = append(s.names, nsrel.Name{Type: typ, Ino: i})
		}
	}

	nested := nstest.UserChain(t, 3)
	s.nested = chain(t, nstest.NSPath(nested.Pid, "user"))
	add(nsrel.TypeUser, s.nested...)

	// unshare -Urpf makes a user namespace and a PID namespace it owns;
	// the inner unshare -Ur a child of that user namespace.
	owner := nstest.Sleep(t, nil, "-Urpf", "--kill-child", "unshare", "-Ur")
	add(nsrel.TypeUser, chain(t, nstest.NSPath(owner.Pid, "user"))...)
	add(nsrel.TypePID, chain(t, nstest.NSPath(owner.Pid, "pid"))...)
	s.ownedByInner = nsrel.Name{Type: nsrel.TypePID, Ino: ino(t, owner.Pid, "pid")}
	s.inner = nsrel.Name{Type: nsrel.TypeUser, Ino: chain(t, nstest.NSPath(owner.Pid, "user"))[1]}

	mounted := nstest.UserChain(t, 2)
	s.mounted = nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, mounted.Pid, "user")}
	add(nsrel.TypeUser, chain(t, nstest.NSPath(mounted.Pid, "user"))...)
	target := filepath.Join(t.TempDir(), "userns")
	s.mountPath = target
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	holder := nstest.Start(t, nil, nstest.RequireCmd(t, "unshare"), "-m", "--propagation", "private",
		sh, "-c", `mount --bind "$1" "$2" && exec sleep infinity`, "sh", nstest.NSPath(mounted.Pid, "user"), target)
	nstest.WaitLeaf(t, holder.Pid, "sleep")
	gone(t, mounted)

	held := nstest.PIDChain(t, 1)
	s.held = nsrel.Name{Type: nsrel.TypePID, Ino: ino(t, held.Pid, "pid")}
	add(nsrel.TypePID, s.held.Ino)
	add(nsrel.TypeUser, chain(t, nstest.NSPath(held.Pid, "user"))...)
	holdByFD(t, nstest.NSPath(held.Pid, "pid"))
	gone(t, held)

	s.pod = "default/web-0"
	for i, o := range []bundle.Options{
		{UserNS: true, Annotations: map[string]string{vocab.AnnotationSandboxNamespace: "default", vocab.AnnotationSandboxName: "web-0"}},
		{},
	} {
		id := ctrdtest.Uniq("pic" + strconv.Itoa(i))
		pid := runtest.RuncBundle(t, s.runcRoot, id, o)
		s.ctrs = append(s.ctrs, id)
		s.ctrPIDs = append(s.ctrPIDs, pid)
		if i == 0 {
			s.podUser = nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, pid, "user")}
		}
		add(nsrel.TypeUser, chain(t, nstest.NSPath(pid, "user"))...)
		add(nsrel.TypePID, chain(t, nstest.NSPath(pid, "pid"))...)
	}
	return s
}

// holdByFD starts a sleep that holds the namespace at path open (fd 3,
// and up to fd 2+n with n > 1) until the test ends, and returns its PID.
func holdByFD(t *testing.T, path string, n ...int) int {
	t.Helper()
	sleep := exec.Command(nstest.RequireCmd(t, "sleep"), "infinity")
	for range slices.Max(append(n, 1)) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sleep.ExtraFiles = append(sleep.ExtraFiles, f)
	}
	sleep.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	return sleep.Process.Pid
}

// chromium runs headless Chromium from Debian with a profile of its own
// and returns its stdout.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := nstest.RequireCmd(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func TestPicturesOfARealScenario(t *testing.T) {
	dot := nstest.RequireCmd(t, "dot")
	nstest.RequireCmd(t, "chromium")
	s := buildScenario(t)
	src := &containers.StateSource{Roots: []containers.Root{{Runtime: containers.EngineRunc, Dir: s.runcRoot}}}
	tl := tool(nsrel.TypeUser, src)
	dir := t.TempDir()

	// DOT, through Graphviz without a warning.
	code, out, errOut := run(t, tl, "--format", "dot")
	if code != 0 {
		t.Fatalf("--format dot: exit %d: %s", code, errOut)
	}
	for _, n := range s.names {
		if !strings.Contains(out, "\t\t"+n.Type.String()+"_"+strconv.FormatUint(n.Ino, 10)+" [") {
			t.Errorf("DOT has no node for %v", n)
		}
	}
	if edge := "\t" + graphID(s.ownedByInner) + " -> " + graphID(s.inner) + " [style=dashed"; !strings.Contains(out, edge) {
		t.Errorf("DOT has no ownership edge %q", edge)
	}
	cmd := exec.Command(dot, "-Tsvg", "-o", filepath.Join(dir, "ns.svg"))
	cmd.Stdin = strings.NewReader(out)
	if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
		t.Errorf("dot -Tsvg: %v, said %q", err, msg)
	}

	// The report, in Chromium: every namespace and container in the DOM.
	code, page, errOut := run(t, tl, "--format", "html")
	if code != 0 {
		t.Fatalf("--format html: exit %d: %s", code, errOut)
	}
	report := filepath.Join(dir, "report.html")
	if err := os.WriteFile(report, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := string(chromium(t, "--dump-dom", "file://"+report))
	for _, n := range s.names {
		id := graphID(n)
		if !strings.Contains(dom, `<tr id="row-`+id+`"`) || !strings.Contains(dom, `<g id="`+id+`" class="node`) {
			t.Errorf("the DOM has no row or picture node for %v", n)
		}
	}
	for _, want := range []string{"<td>user:[" + strconv.FormatUint(s.mounted.Ino, 10) + "]", "mount " + s.mountPath + " in mnt:[", "no process; found via fd /proc/",
		"<td>pid:[" + strconv.FormatUint(s.held.Ino, 10) + "]"} {
		if !strings.Contains(dom, want) {
			i := strings.Index(dom, `<tr id="row-`+graphID(s.held))
			t.Errorf("the DOM lacks %q; the fd-held namespace's row: %.400s", want, dom[max(i, 0):])
		}
	}
	for _, id := range s.ctrs {
		if !strings.Contains(dom, `<div class="ctr">runc `+tree.ShortID(id)) {
			t.Errorf("the DOM does not show container %s", id)
		}
	}

	// Searching finds a container by ID and by pod, from the URL fragment.
	for q, want := range map[string]string{
		s.ctrs[1][:len(s.ctrs[1])-2]: "container runc " + s.ctrs[1] + " in ",
		"web-0":                      "container runc " + s.ctrs[0] + " (pod " + s.pod + ") in user:[",
	} {
		dom := string(chromium(t, "--dump-dom", "file://"+report+"#q="+q))
		if !strings.Contains(dom, `<li class="result" data-id="`) || !strings.Contains(dom, want) {
			i := strings.Index(dom, `<div id="results">`)
			t.Errorf("search %q: no result %q in %.600s", q, want, dom[max(i, 0):])
		}
	}

	// Folded: the nested chain's two process-less user namespaces are one
	// node, and searching for the inner one finds it.
	code, page, errOut = run(t, tl, "--format", "html", "--collapse", "2")
	if code != 0 {
		t.Fatalf("--format html --collapse 2: exit %d: %s", code, errOut)
	}
	if err := os.WriteFile(report, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	top, inner := s.nested[len(s.nested)-2], s.nested[len(s.nested)-3]
	dom = string(chromium(t, "--dump-dom", "file://"+report+"#q="+strconv.FormatUint(inner, 10)))
	folded := fmt.Sprintf("user:[%d] … user:[%d]", top, inner)
	for _, want := range []string{
		`<tr id="row-user_` + strconv.FormatUint(top, 10) + `" class="ns user hit" data-id="user_` + strconv.FormatUint(top, 10) + `"><td>` + folded,
		fmt.Sprintf(`<li class="result" data-id="user_%d">user:[%d] (folded) in user:[%d]</li>`, top, inner, top),
	} {
		if !strings.Contains(dom, want) {
			i := strings.Index(dom, `<div id="results">`)
			t.Errorf("--collapse 2: the DOM lacks %q; %.800s", want, dom[max(i, 0):])
		}
	}
	if strings.Contains(dom, `<tr id="row-user_`+strconv.FormatUint(inner, 10)) {
		t.Errorf("--collapse 2: the folded namespace has a row of its own")
	}
	// A link to the folded namespace shows its node: each namespace's
	// ID and how each was found.
	dom = string(chromium(t, "--dump-dom", "file://"+report+"#ns=user_"+strconv.FormatUint(inner, 10)))
	for _, want := range []string{
		fmt.Sprintf("<h2>user:[%d]</h2>", top),
		fmt.Sprintf("<dd>user:[%d] (ID ", top), fmt.Sprintf(") \u2192 user:[%d] (ID ", inner),
		fmt.Sprintf("<li>user:[%d]: parent of user:[", top), fmt.Sprintf("<li>user:[%d]: parent of user:[", inner),
	} {
		if !strings.Contains(dom, want) {
			i := strings.Index(dom, `<div id="details"`)
			t.Errorf("--collapse 2, #ns= of the folded namespace: the DOM lacks %q; %.800s", want, dom[max(i, 0):])
		}
	}

	// With the audit history of the first container, from a log that
	// verifies: the verdict on top, the records in its details.
	logPath := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	l, err := audit.Open(logPath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start, err := inspect.StartTime(s.ctrPIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{s.ctrs[0], "someone-else"} {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: vocab.StageCreateRuntime, ContainerID: id, Verdict: audit.VerdictAllow, Mode: "enforce",
			Ancestry: &audit.Ancestry{PID: s.ctrPIDs[0], StartTime: start}}); err != nil {
			t.Fatal(err)
		}
	}
	code, page, errOut = run(t, tl, "--format", "html", "--container", s.ctrs[0], "--audit-log", logPath)
	if code != 0 {
		t.Fatalf("--format html --audit-log: exit %d: %s", code, errOut)
	}
	if err := os.WriteFile(report, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	dom = string(chromium(t, "--dump-dom", "file://"+report+"#ns="+graphID(s.podUser)))
	for _, want := range []string{
		`<div id="audit" class="audit ok">Audit log ` + logPath + `: chain verified: 2 records, seq 1 to 2; 1 records of the shown containers</div>`,
		"<h2>audit history</h2>", "<td>" + s.ctrs[0] + "</td><td>oci-hook createRuntime</td><td>allow (enforce)</td>",
	} {
		if !strings.Contains(dom, want) {
			i := strings.Index(dom, `<div id="details">`)
			t.Errorf("the report with --audit-log lacks %q; details: %.1500s", want, dom[max(i, 0):])
		}
	}
	if strings.Contains(dom, "row-"+graphID(s.held)) {
		t.Errorf("--container shows the fd-held namespace")
	}

	// A screenshot: a PNG that is not blank.
	shot := filepath.Join(dir, "report.png")
	chromium(t, "--window-size=1400,1000", "--screenshot="+shot, "file://"+report+"#q=web-0")
	checkPNG(t, shot)
	if out := os.Getenv("NSREL_PICTURES"); out != "" {
		writePictures(t, src, out, s)
	}
}

func graphID(n nsrel.Name) string { return n.Type.String() + "_" + strconv.FormatUint(n.Ino, 10) }

// checkPNG fails unless path is a PNG of more than one colour.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			if img.At(x, y) != first {
				return
			}
		}
	}
	t.Errorf("%s is blank", path)
}

// writePictures writes the pictures of docs/pictures.md into dir (make
// pictures): the scenario's namespaces only (the host's others left out),
// as dot draws them (graph.png) and as the report shows them in Chromium,
// searched for the pod (report.png).
func writePictures(t *testing.T, src discover.ContainerSource, dir string, s *scenario) {
	t.Helper()
	m, err := discover.Discover(discover.Options{Comm: true})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := src.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lstool.Annotate(m, cs)
	want := make(map[nsrel.Name]bool)
	for _, n := range s.names {
		want[n] = true
	}
	g := graph.Build(m, graph.Options{Keep: func(n *discover.Namespace) bool { return want[n.Name()] }})
	var dotText bytes.Buffer
	if err := g.DOT(&dotText); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nstest.RequireCmd(t, "dot"), "-Tpng", "-Gdpi=80", "-o", filepath.Join(dir, "graph.png"))
	cmd.Stdin = &dotText
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("dot -Tpng: %v %s", err, out)
	}
	svg, _, err := g.SVG(context.Background(), nstest.RequireCmd(t, "dot"))
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := g.HTML(&page, graph.HTMLOptions{Title: "nsrel: the scenario of TestPicturesOfARealScenario", SVG: svg}); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(report, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	chromium(t, "--window-size=1500,1100", "--screenshot="+filepath.Join(dir, "report.png"), "file://"+report+"#q=web-0")
	for _, p := range []string{"graph.png", "report.png"} {
		checkPNG(t, filepath.Join(dir, p))
	}
}

// TestPIDFilter checks that --pid keeps the branches to a process's
// namespaces, in the trees and in the picture.
func TestPIDFilter(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.PIDChain(t, 2)
	users := chain(t, nstest.NSPath(p.Pid, "user"))
	pids := chain(t, nstest.NSPath(p.Pid, "pid"))
	nstest.UserChain(t, 1) // a branch --pid leaves out
	pidArg := strconv.Itoa(p.Pid)

	_, out, _ := run(t, tool(nsrel.TypeUser), "--no-containers", "--pid", pidArg)
	if got, want := strings.Count(out, "\n"), len(users); got != want {
		t.Errorf("lsuserns --pid: %d lines, want %d:\n%s", got, want, out)
	}
	_, out, _ = run(t, tool(nsrel.TypePID), "--no-containers", "--pid", pidArg)
	if got, want := strings.Count(out, "\n"), len(pids); got != want {
		t.Errorf("lspidns --pid: %d lines, want %d:\n%s", got, want, out)
	}
	code, out, errOut := run(t, tool(nsrel.TypePID), "--no-containers", "--pid", pidArg, "--format", "dot")
	if code != 0 {
		t.Fatalf("--format dot --pid: exit %d: %s", code, errOut)
	}
	var want []string
	for _, i := range users {
		want = append(want, graphID(nsrel.Name{Type: nsrel.TypeUser, Ino: i}))
	}
	for _, i := range pids {
		want = append(want, graphID(nsrel.Name{Type: nsrel.TypePID, Ino: i}))
	}
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if id, _, ok := strings.Cut(strings.TrimPrefix(l, "\t\t"), " [id="); ok && strings.HasPrefix(l, "\t\t") {
			got = append(got, id)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("--format dot --pid: nodes (-want +got):\n%s", diff)
	}
	code, out, _ = run(t, tool(nsrel.TypePID), "--no-containers", "--pid", pidArg, "--format", "svg")
	if code != 0 || !strings.Contains(out, "<svg") {
		t.Errorf("--format svg: exit %d, %.200s", code, out)
	}

	// A process of the initial user namespace in a PID namespace another
	// user namespace owns: lsuserns --pid shows its own user namespace
	// alone; it added the owner of its PID namespace.
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(nstest.HostIDBase(t)) + 700_000, Size: 1}}
	owner := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, UidMappings: m, GidMappings: m},
		nstest.RequireCmd(t, "sleep"), "infinity")
	joined := nstest.Start(t, nil, nstest.RequireCmd(t, "nsenter"), "--pid", "-t", strconv.Itoa(owner.Pid), "--", nstest.RequireCmd(t, "sleep"), "infinity")
	leaf := nstest.WaitLeaf(t, joined.Pid, "sleep")
	_, out, _ = run(t, tool(nsrel.TypeUser), "--no-containers", "--pid", strconv.Itoa(leaf))
	if want := fmt.Sprintf("user:[%d] ", uint64(nsrel.InitialUserNSIno)); strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, want) {
		t.Errorf("lsuserns --pid of a process in the initial user namespace, in another's PID namespace:\n%s\nwant one line, %s", out, want)
	}
}

// TestWithoutGraphviz checks the graph formats when dot is not on PATH:
// svg fails in one line, html is written without the picture and says so.
func TestWithoutGraphviz(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	code, out, errOut := run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "svg")
	if code != 1 || out != "" || !strings.Contains(errOut, "lsuserns: --format svg: Graphviz: exec: \"dot\": executable file not found in $PATH\n") {
		t.Errorf("svg without dot: exit %d, stdout %.100q, stderr %q", code, out, errOut)
	}
	code, out, errOut = run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "html")
	if code != 0 || !strings.Contains(out, "<p>No picture: Graphviz (dot) could not draw it: exec: &#34;dot&#34;: executable file not found in $PATH.") ||
		!strings.Contains(errOut, "; the report has no picture\n") || !strings.Contains(out, `<tr id="row-user_4026531837"`) {
		t.Errorf("html without dot: exit %d, stderr %q, stdout %.3000s", code, errOut, out)
	}
}

// TestGraphvizFailsEscaped: dot fails saying something a label holds (a
// container's name, a process's): the notice has it escaped once.
func TestGraphvizFailsEscaped(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dot"), []byte("#!/bin/sh\nprintf 'Error: near \"\\033[2Jx\"\\n' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	code, out, errOut := run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "html")
	if code != 0 || strings.Contains(errOut, "\x1b") || !strings.Contains(errOut, `: Error: near "\x1b[2Jx"; the report has no picture`) {
		t.Errorf("html with dot failing: exit %d, stderr %q; want dot's message escaped once", code, errOut)
	}
	// The report too: it escaped it a second time.
	if !strings.Contains(out, `: Error: near &#34;\x1b[2Jx&#34;. The table below`) {
		i := strings.Index(out, "No picture")
		t.Errorf("report: %.200q; want dot's message escaped once", out[max(i, 0):])
	}
}

// fakeDot puts a dot(1) that runs script (sh) first on PATH.
func fakeDot(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dot"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

// TestGraphvizFailsOnce: dot fails saying two lines: --format svg says
// so in one line (its first line was also printed as a notice), html in
// one notice.
func TestGraphvizFailsOnce(t *testing.T) {
	fakeDot(t, "printf 'Error: boom\\nsecond line\\n' >&2; exit 1")
	code, out, errOut := run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "svg")
	if code != 1 || out != "" || !strings.HasSuffix(errOut, ": exit status 1: Error: boom\n") || strings.Count(errOut, "boom") != 1 {
		t.Errorf("svg with dot failing: exit %d, stdout %.100q, stderr %q; want one line", code, out, errOut)
	}
	code, _, errOut = run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "html")
	if code != 0 || strings.Count(errOut, "boom") != 1 || strings.Contains(errOut, "second line") {
		t.Errorf("html with dot failing: exit %d, stderr %q; want one notice", code, errOut)
	}
}

// TestGraphvizNoSVG: a dot that exits 0 without drawing is no success:
// svg fails, html says it has no picture.
func TestGraphvizNoSVG(t *testing.T) {
	fakeDot(t, "cat >/dev/null; exit 0")
	code, out, errOut := run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "svg")
	if code != 1 || out != "" || !strings.HasSuffix(errOut, "-Tsvg: exit status 0 without an SVG document\n") {
		t.Errorf("svg with dot drawing nothing: exit %d, stdout %.100q, stderr %q", code, out, errOut)
	}
	code, out, errOut = run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "html")
	if code != 0 || !strings.Contains(errOut, "without an SVG document; the report has no picture\n") ||
		!strings.Contains(out, "<p>No picture: Graphviz (dot) could not draw it: ") {
		t.Errorf("html with dot drawing nothing: exit %d, stderr %q", code, errOut)
	}
}

// TestGraphvizTimeout: dot past DotTimeout (thousands of namespaces a
// user made) is said as such, with what to do, not as "signal: killed: ".
func TestGraphvizTimeout(t *testing.T) {
	fakeDot(t, "exec sleep 30")
	defer func(d time.Duration) { lstool.DotTimeout = d }(lstool.DotTimeout)
	lstool.DotTimeout = 200 * time.Millisecond
	code, out, errOut := run(t, tool(nsrel.TypeUser), "--no-containers", "--format", "svg")
	if code != 1 || out != "" || !regexp.MustCompile(`(?m)^lsuserns: --format svg: Graphviz: dot did not draw [0-9]+ namespaces within 200ms: narrow the picture with --container, --pid or --collapse\n\z`).MatchString(errOut) {
		t.Errorf("svg with dot too slow: exit %d, stdout %.100q, stderr %q", code, out, errOut)
	}
}

// writeReport writes the report of tl --format html with args to a file
// and returns its path.
func writeReport(t *testing.T, tl lstool.Tool, args ...string) string {
	t.Helper()
	code, page, errOut := run(t, tl, append([]string{"--format", "html"}, args...)...)
	if code != 0 {
		t.Fatalf("--format html %v: exit %d: %s", args, code, errOut)
	}
	report := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(report, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	return report
}

// TestReportKubernetesNames: in the report, a Kubernetes container
// "shop/web-0/app" shows its pod and its own name in its details, and a
// search for its whole name finds it (Chromium).
func TestReportKubernetesNames(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "chromium")
	p := nstest.UserChain(t, 1)
	src := &fakeSource{name: "containerd", cs: []discover.Container{{ID: "k8sctr-" + strconv.Itoa(p.Pid), Engine: "containerd", Namespace: "k8s.io", PID: p.Pid, Name: "shop/web-0/app"}}}
	report := writeReport(t, tool(nsrel.TypeUser, src), "-p", strconv.Itoa(p.Pid))
	id := graphID(nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, p.Pid, "user")})
	ctr := "k8sctr-" + strconv.Itoa(p.Pid)
	for frag, want := range map[string]string{
		"#ns=" + id:         "<dd>containerd k8s.io " + ctr + " pod shop/web-0 name app, PID " + strconv.Itoa(p.Pid) + "</dd>",
		"#q=shop/web-0/app": `<li class="result" data-id="` + id + `">container containerd k8s.io/` + ctr + " (pod shop/web-0, container app) in user:[",
	} {
		dom := string(chromium(t, "--dump-dom", "file://"+report+frag))
		if !strings.Contains(dom, want) {
			i := strings.Index(dom, `<div id="results">`)
			t.Errorf("%s: the report lacks %q: %.1500s", frag, want, dom[max(i, 0):])
		}
	}
}

// TestReportMalformedHash: a link whose search is not valid percent
// encoding (#q=%E0%A4%A) still searches, for the text as written, rather
// than stopping the page's script with "URI malformed" (Chromium).
func TestReportMalformedHash(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "chromium")
	p := nstest.UserChain(t, 1)
	report := writeReport(t, tool(nsrel.TypeUser), "--no-containers", "-p", strconv.Itoa(p.Pid))
	dom := string(chromium(t, "--dump-dom", "file://"+report+"#q=%E0%A4%A"))
	if want := "<p>Nothing matches \u201c%E0%A4%A\u201d.</p>"; !strings.Contains(dom, want) {
		i := strings.Index(dom, `<div id="results">`)
		t.Errorf("#q=%%E0%%A4%%A: the results lack %q: %.600s", want, dom[max(i, 0):])
	}
	// A valid one alongside still works: the namespace's details open.
	id := graphID(nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, p.Pid, "user")})
	dom = string(chromium(t, "--dump-dom", "file://"+report+"#ns="+id))
	if want := "<h2>user:[" + strconv.FormatUint(ino(t, p.Pid, "user"), 10) + "]</h2>"; !strings.Contains(dom, want) {
		t.Errorf("#ns=%s: no details %q", id, want)
	}
}

// cappedWays returns how many ways a namespace was found that the text
// names (the first group of pattern, separated by ", ") and the number
// of those left out (its second group, "+N more"); 0, 0 without a match.
func cappedWays(pattern, text string) (named, more int) {
	m := regexp.MustCompile(pattern).FindStringSubmatch(text)
	if m == nil {
		return 0, 0
	}
	more, _ = strconv.Atoi(m[2])
	return len(strings.Split(m[1], ", ")), more
}

// TestFoundViaCapped: a process holding many fds to a namespace: the
// --details line and the report's table name the first
// tree.MaxDetailProcs ways it was found and "+N more"; --json and the
// report's details (Chromium) list them all.
func TestFoundViaCapped(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "chromium")
	const fds = tree.MaxDetailProcs + 12
	p := nstest.UserChain(t, 1)
	holder := holdByFD(t, nstest.NSPath(p.Pid, "user"), fds)
	name := nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, p.Pid, "user")}
	pid := strconv.Itoa(p.Pid)
	fdWay := fmt.Sprintf("fd /proc/%d/fd/", holder)

	_, out, _ := run(t, tool(nsrel.TypeUser), "--details", "--no-containers", "-p", pid)
	line, _ := lineOf(t, out, name)
	// process PID, then 7 of the fds, and 13 more (or more: another
	// test package's scan, run alongside, holds fds of the namespace
	// while it runs, which are named too).
	if named, more := cappedWays(`found via: ([^;]*) \+(\d+) more;`, line); named != tree.MaxDetailProcs || more < 13 || !strings.Contains(line, "found via: process "+pid+", fd ") {
		t.Errorf("--details: %d ways named, want %d (the process, then fds), and +%d more, want 13 or more: %s", named, tree.MaxDetailProcs, more, line)
	}
	_, out, _ = run(t, tool(nsrel.TypeUser), "--json", "--no-containers", "-p", pid)
	if n := strings.Count(out, fmt.Sprintf(`"path": "/proc/%d/fd/`, holder)); n != fds {
		t.Errorf("--json: %d fds, want %d", n, fds)
	}

	report := writeReport(t, tool(nsrel.TypeUser), "--no-containers", "-p", pid)
	dom := string(chromium(t, "--dump-dom", "file://"+report+"#ns="+graphID(name)))
	row := regexp.MustCompile(`<tr id="row-` + graphID(name) + `"[^\n]*`).FindString(dom)
	if named, more := cappedWays(`<td>(process [^<]*) \+(\d+) more</td>`, row); named != tree.MaxDetailProcs || more < 13 || !strings.Contains(row, "<td>process "+pid+", fd ") {
		t.Errorf("the table: %d ways named, want %d, and +%d more, want 13 or more: %s", named, tree.MaxDetailProcs, more, row)
	}
	i := strings.Index(dom, `<div id="details">`)
	if n := strings.Count(dom[max(i, 0):], "<li>"+fdWay); n != fds {
		t.Errorf("the details: %d fds listed, want %d: %.3000s", n, fds, dom[max(i, 0):])
	}
}

// TestAuditLogRelative: --audit-log takes a path relative to the
// working directory, and the report names it as given.
func TestAuditLogRelative(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	l, err := audit.Open(filepath.Join(dir, "log", "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: vocab.StageCreateRuntime, ContainerID: "rel-1", Verdict: audit.VerdictAllow, Mode: "enforce"}); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	code, page, errOut := run(t, tool(nsrel.TypeUser), "--format", "html", "--no-containers", "-p", strconv.Itoa(os.Getpid()), "--audit-log", "log/audit.jsonl")
	if want := `<div id="audit" class="audit ok">Audit log log/audit.jsonl: chain verified: 1 records, seq 1 to 1;`; code != 0 || !strings.Contains(page, want) {
		t.Errorf("--audit-log log/audit.jsonl: exit %d, %s; want %q in the report", code, errOut, want)
	}
}

// TestPicturesAuditNoticeEscapedOnce: the notice of an audit log whose
// chain does not verify escaped its path and verdict twice (three times:
// the verdict was quoted too), so a path with ESC and a newline read
// "y\\x1b[31m\\x0az". Once now, as the page has them.
func TestPicturesAuditNoticeEscapedOnce(t *testing.T) {
	nstest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "y\x1b[31m\nz")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(logPath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: vocab.StageCreateRuntime, ContainerID: "n-1", Verdict: audit.VerdictAllow, Mode: "enforce"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not a record\n")
	f.Close()
	t.Setenv("PATH", t.TempDir()) // no dot
	_, _, stderr := run(t, tool(nsrel.TypeUser), "--format", "html", "--no-containers", "-p", strconv.Itoa(os.Getpid()), "--audit-log", logPath)
	want := "notice: audit log " + vocab.Escape(logPath) + ": chain NOT verified: "
	if !strings.Contains(stderr, want) || strings.Contains(stderr, `\\x`) {
		t.Errorf("stderr %q; want %q, nothing escaped twice", stderr, want)
	}
}
