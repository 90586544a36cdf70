package containers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// ignoreStart leaves the containers' start times out of comparisons
// (TestStartTimes checks them).
var ignoreStart = cmpopts.IgnoreFields(discover.Container{}, "StartTime")

// TestAuditSource writes records about live and dead processes and checks
// that only started, not stopped containers whose process still runs with
// the recorded start time are listed.
func TestAuditSource(t *testing.T) {
	pid, anc, log, path := sleepingLog(t, audit.Options{})
	stale := *anc
	stale.StartTime++
	got := listAfter(t, log, path, []*audit.Record{
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "crio-1", Ancestry: anc,
			Annotations: map[string]string{"io.kubernetes.pod.name": "api-0", "io.kubernetes.pod.namespace": "prod"}},
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststart, ContainerID: "crio-1", Ancestry: anc},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "ev-1", Namespace: "moby", Ancestry: anc},
		// Hostile annotations that look like the fields the source
		// searches for must not be taken for them.
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "tricky", Ancestry: anc,
			Annotations: map[string]string{"stage": "poststop", "container_id": "ev-1", "x": `"stage":"poststop"`}},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "stopped", Ancestry: anc},
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "stopped"},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "exited", Ancestry: anc},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: "exited"},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "reused", Ancestry: &stale},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "no-process", Error: "gone"},
	})
	want := []discover.Container{
		{ID: "crio-1", Engine: EngineAuditLog, PID: pid, Name: "prod/api-0"},
		{ID: "ev-1", Engine: EngineAuditLog, Namespace: "moby", PID: pid},
		{ID: "tricky", Engine: EngineAuditLog, PID: pid},
	}
	if diff := cmp.Diff(Merge(want), got, ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, c := range got {
		if c.StartTime != anc.StartTime {
			t.Errorf("%s: start time %d; want the recorded %d", c.ID, c.StartTime, anc.StartTime)
		}
	}

	got, err := (&AuditSource{Path: filepath.Join(t.TempDir(), "absent.jsonl")}).List(context.Background())
	if err != nil || len(got) != 0 {
		t.Errorf("missing log: %v, %v; want nothing, no error", got, err)
	}
}

// TestAuditSourceUntrusted: the source believes the records it reads
// without verifying them, so a log the hook would not have written is
// refused: one in a directory anyone may write, with no lock file (a
// user's, planted where NSREL_AUDIT_LOG or a config names a shared
// directory, showed the user's process as a system pod: no lock was
// taken and nothing checked), one owned by another user, one others may
// write. It was read, its containers listed.
func TestAuditSourceUntrusted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, path string)
		want  string
	}{
		{"a sticky directory anyone may write, no lock", func(t *testing.T, path string) {
			os.Remove(path + ".lock")
			if err := os.Chmod(filepath.Dir(path), 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
		}, "writable by group and others (mode 1777): anyone could plant files"},
		{"owned by another user, no lock", func(t *testing.T, path string) {
			os.Remove(path + ".lock")
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
		{"writable by others", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
		}, "writable by group and others (mode 0666)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, anc, log, path := sleepingLog(t, audit.Options{})
			if got := listAfter(t, log, path, []*audit.Record{{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "kube-apiserver", Ancestry: anc,
				Annotations: map[string]string{"io.kubernetes.pod.name": "kube-apiserver-node1", "io.kubernetes.pod.namespace": "kube-system"}}}); len(got) != 1 {
				t.Fatalf("the log as written: %v; want its container", got)
			}
			tc.spoil(t, path)
			got, err := (&AuditSource{Path: path}).List(context.Background())
			if !errors.Is(err, safefile.ErrUntrusted) || !strings.Contains(err.Error(), tc.want) || len(got) != 0 {
				t.Errorf("List: %v, %v; want nothing, refused: %s", got, err, tc.want)
			}
		})
	}
}

// TestAuditSourceUnderLock checks that the log is read under its shared
// lock: while a writer holds the lock (mid-append or mid-rotation) the
// source waits for it, and a writer that rotates the log all the time
// never makes it miss a container whose start is in the log.
func TestAuditSourceUnderLock(t *testing.T) {
	pid, anc, log, path := sleepingLog(t, audit.Options{RotateBytes: 4 << 10})
	ctx := context.Background()
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c1", Ancestry: anc}); err != nil {
		t.Fatal(err)
	}
	src := &AuditSource{Path: path}
	want := []discover.Container{{ID: "c1", Engine: EngineAuditLog, PID: pid}}

	// A writer holding the lock: the source waits until its context ends.
	lf, err := os.Open(path + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	got, err := src.List(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("List while a writer holds the lock: %v, %v; want it to wait until its context ends", got, err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}

	// A writer rotating all the time (all files kept, fewer bytes than
	// MaxAuditTail): every pass sees the container.
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			r := &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: fmt.Sprintf("other-%d", i)}
			if err := log.Append(ctx, r); err != nil {
				done <- err
				return
			}
		}
		<-stop
		done <- nil
	}()
	for range 100 {
		got, err := src.List(ctx)
		if err != nil {
			t.Error(err)
			break
		}
		if diff := cmp.Diff(want, got, ignoreStart); diff != "" {
			t.Errorf("while the log rotates (-want +got):\n%s", diff)
			break
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// sleepingLog starts a process (stopped at the end of the test) and
// opens a log in a fresh directory: the process's pid and ancestry, the
// log and its path.
func sleepingLog(tb testing.TB, opts audit.Options) (int, *audit.Ancestry, *audit.Log, string) {
	tb.Helper()
	nstest.RequireRoot(tb)
	p := nstest.Sleep(tb, nil)
	anc, err := inspect.Process(p.Pid)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "audit.jsonl")
	log, err := audit.Open(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return p.Pid, anc, log, path
}

// FuzzDecodeStart checks that a line taken for a start names a process
// that can exist and a valid container ID.
func FuzzDecodeStart(f *testing.F) {
	anc := &audit.Ancestry{PID: 5, StartTime: 7, User: []audit.UserNS{{Ino: 1}}, PIDNS: []audit.PIDNS{{Ino: 2}}}
	for _, r := range []*audit.Record{
		{Seq: 1, Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "a", Ancestry: anc,
			Annotations: map[string]string{"io.kubernetes.pod.name": "p"}},
		{Seq: 2, Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "../x", Ancestry: anc},
		{Seq: 3, Source: audit.SourceOCIHook, Stage: audit.StageStart, ContainerID: "b", Ancestry: &audit.Ancestry{PID: -1}},
	} {
		line, err := r.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(line, r.ContainerID)
	}
	f.Fuzz(func(t *testing.T, line []byte, id string) {
		r := decodeStart(line, id)
		if r == nil {
			return
		}
		if r.PID <= 0 || r.PID >= vocab.PIDLimit || !validID(r.ContainerID) || r.ContainerID != id || r.Stage == "" {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// TestAuditSourceTornStart: a running container's poststart record torn
// by a crash, which the next append ends with the torn mark, does not
// hide the container: its head is whole, but the line is no record.
func TestAuditSourceTornStart(t *testing.T) {
	_, anc, log, path := sleepingLog(t, audit.Options{})
	cr := &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "crio-1", Ancestry: anc}
	if err := log.Append(context.Background(), cr); err != nil {
		t.Fatal(err)
	}
	ps := &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststart, ContainerID: "crio-1", Ancestry: anc, Seq: cr.Seq + 1, Prev: cr.Hash, Time: cr.Time, Host: cr.Host, Version: cr.Version}
	line, err := ps.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(line[:200])
	f.Close()
	if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "other"}); err != nil {
		t.Fatal(err)
	}
	got, err := (&AuditSource{Path: path}).List(context.Background())
	if err != nil || len(got) != 1 || got[0].ID != "crio-1" {
		t.Fatalf("listed %+v (%v), want crio-1", got, err)
	}
}

// listAfter appends recs to log and returns what an AuditSource of path
// lists.
func listAfter(t *testing.T, log *audit.Log, path string, recs []*audit.Record) []discover.Container {
	t.Helper()
	for _, r := range recs {
		if err := log.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := (&AuditSource{Path: path}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAuditSourceNamespaces checks that a container ID is one container
// per engine namespace: a stop of the same ID in another containerd
// namespace does not hide a running container, while a stop without a
// namespace (the hook's poststop) or in the start's own namespace ends it.
func TestAuditSourceNamespaces(t *testing.T) {
	pid, anc, log, path := sleepingLog(t, audit.Options{})
	hookStart := func(id string) *audit.Record {
		return &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: id, Ancestry: anc,
			Annotations: map[string]string{vocab.AnnotationContainerName: "web"}}
	}
	start := func(id, ns string) *audit.Record {
		return &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: id, Namespace: ns, Ancestry: anc}
	}
	exit := func(id, ns string) *audit.Record {
		return &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: id, Namespace: ns}
	}
	got := listAfter(t, log, path, []*audit.Record{
		// Runs in "b"; the same ID exits in "a" later.
		hookStart("shared"), start("shared", "b"), exit("shared", "a"),
		// Started in "a" and in "b"; only "a"'s exited.
		start("two", "a"), start("two", "b"), exit("two", "a"),
		// Exited in its own namespace.
		hookStart("own"), start("own", "b"), exit("own", "b"),
		// The hook's poststop ends it whatever the namespace.
		start("hook-stop", "b"), {Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "hook-stop"},
		// A hook-only container whose exit the recorder saw.
		hookStart("hook-only"), exit("hook-only", "k8s.io"),
		// Restarted in "b" after its exit there.
		start("again", "b"), exit("again", "b"), start("again", "b"),
	})
	want := []discover.Container{
		{ID: "shared", Engine: EngineAuditLog, Namespace: "b", PID: pid},
		{ID: "two", Engine: EngineAuditLog, Namespace: "b", PID: pid},
		{ID: "again", Engine: EngineAuditLog, Namespace: "b", PID: pid},
	}
	if diff := cmp.Diff(Merge(want), got, ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestAuditSourceEarlierBoot: a start time counts clock ticks from
// boot, so after a crash (no stop recorded) a process of this boot can
// have the PID and start time of a container of an earlier one; a user
// can aim for both. A start record naming another boot is not listed,
// however well its process matches; one naming this boot (the log names
// it in every record) is. Without boot IDs in records the earlier boot's
// container was listed on the process, named by its annotations. (A
// record naming no boot, written before format 1.4, is believed:
// TestBootID.)
func TestAuditSourceEarlierBoot(t *testing.T) {
	pid, anc, log, path := sleepingLog(t, audit.Options{})
	const earlier = audittest.OtherBoot
	got := listAfter(t, log, path, []*audit.Record{
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "before-crash", Ancestry: anc, BootID: earlier,
			Annotations: map[string]string{"io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "prod"}},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "this-boot", Ancestry: anc},
		// An earlier boot's start of the process does not name the
		// container that runs now either.
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "named-late", Ancestry: anc, BootID: earlier,
			Annotations: map[string]string{"io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "prod"}},
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststart, ContainerID: "named-late", Ancestry: anc},
	})
	want := []discover.Container{
		{ID: "this-boot", Engine: EngineAuditLog, PID: pid},
		{ID: "named-late", Engine: EngineAuditLog, PID: pid},
	}
	if diff := cmp.Diff(Merge(want), got, ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestAuditSourceLatePoststop: runc frees a container's ID before it
// runs the poststop hooks, so an earlier container's poststop record can
// come after the start records of a new container of the ID, whose
// process runs. That poststop refers to the earlier container's start
// record and ends it alone (and, through a poststart record, its
// createRuntime record): any later stop of an ID ended every earlier
// start, and the running container was not listed.
func TestAuditSourceLatePoststop(t *testing.T) {
	pid, anc, log, path := sleepingLog(t, audit.Options{})
	// The earlier container's process is gone: its start time differs.
	gone := *anc
	gone.StartTime++
	ctx := context.Background()
	appendRec := func(r *audit.Record) *audit.Record {
		t.Helper()
		if err := log.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	refTo := func(r *audit.Record) *audit.Ref { return &audit.Ref{Seq: r.Seq, Stage: r.Stage, Hash: r.Hash} }
	hookRec := func(stage, id string, a *audit.Ancestry, ref *audit.Record) *audit.Record {
		r := &audit.Record{Source: audit.SourceOCIHook, Stage: stage, ContainerID: id, Ancestry: a}
		if ref != nil {
			r.Ref = refTo(ref)
		}
		return appendRec(r)
	}
	// "web": the earlier container, then the new one, then the earlier
	// one's poststop.
	a := hookRec(audit.StageCreateRuntime, "web", &gone, nil)
	hookRec(audit.StageCreateRuntime, "web", anc, nil)
	hookRec(audit.StagePoststop, "web", nil, a)
	// "api": the same with poststart records; the earlier container's
	// poststop refers to its poststart record.
	a = hookRec(audit.StageCreateRuntime, "api", &gone, nil)
	aps := hookRec(audit.StagePoststart, "api", &gone, a)
	b := hookRec(audit.StageCreateRuntime, "api", anc, nil)
	hookRec(audit.StagePoststart, "api", anc, b)
	hookRec(audit.StagePoststop, "api", nil, aps)
	// "job": a poststop referring to the poststart record ends the
	// createRuntime record too (the process here runs: the stop alone
	// ends it).
	a = hookRec(audit.StageCreateRuntime, "job", anc, nil)
	hookRec(audit.StagePoststop, "job", nil, hookRec(audit.StagePoststart, "job", anc, a))
	// "db": the new container's own poststop ends it too.
	a = hookRec(audit.StageCreateRuntime, "db", &gone, nil)
	b = hookRec(audit.StageCreateRuntime, "db", anc, nil)
	hookRec(audit.StagePoststop, "db", nil, a)
	hookRec(audit.StagePoststop, "db", nil, b)
	// "recorded": the recorder's exit ends the start it refers to.
	b = appendRec(&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "recorded", Namespace: "k8s.io", Ancestry: anc})
	appendRec(&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: "recorded", Namespace: "k8s.io", Ref: refTo(b)})
	// "refused": the NRI plugin's refusal refers to the recorder's start
	// it overrides; the exit that ends the refusal ends both (the
	// recorder's start, in its own namespace, was listed).
	b = appendRec(&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "refused", Namespace: "k8s.io", Ancestry: anc})
	b = appendRec(&audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "refused", Ancestry: anc, Verdict: audit.VerdictDeny, Ref: refTo(b)})
	appendRec(&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: "refused", Namespace: "k8s.io", Ref: refTo(b)})
	got, err := (&AuditSource{Path: path}).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{
		{ID: "web", Engine: EngineAuditLog, PID: pid},
		{ID: "api", Engine: EngineAuditLog, PID: pid},
	}
	if diff := cmp.Diff(Merge(want), got, ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestAuditSourceListedStart: an older start record again after its
// container's stop (a stale block a crash exposed, or a line written
// there), which the next append files as damage, is no start: the
// container stays stopped. It was listed as running again, its pod
// name the old record's.
func TestAuditSourceListedStart(t *testing.T) {
	_, anc, log, path := sleepingLog(t, audit.Options{})
	ctx := context.Background()
	start := &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "old", Ancestry: anc,
		Annotations: map[string]string{"io.kubernetes.pod.name": "api-0", "io.kubernetes.pod.namespace": "prod"}}
	for _, r := range []*audit.Record{start, {Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "old"}} {
		if err := log.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	audittest.AppendAgain(t, path, start)
	// A record of no container after it (a state that named none): the
	// damage record is the first the source meets that lists a line.
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, Error: "no ID"}); err != nil {
		t.Fatal(err)
	}
	recs := audittest.Records(t, path, "")
	if n := audittest.Count(recs, "", "audit/damaged"); n != 1 {
		t.Fatalf("%d damage records, want 1:\n%s", n, audittest.Listing(recs))
	}
	got, err := (&AuditSource{Path: path}).List(ctx)
	if err != nil || len(got) != 0 {
		t.Errorf("got %+v, %v; want no container (old stopped, its start again listed as damage)", got, err)
	}
}

// TestAuditSourceListedStartStaleTail: TestAuditSourceListedStart with
// a stale block at the end of the log after it (a crash: an earlier
// record again, which no damage record lists yet): the start again
// stays left out. (Readers that counted only the damage records linked
// into the chain from the log's last record lost the chain there, and
// listed the stopped container as running.)
func TestAuditSourceListedStartStaleTail(t *testing.T) {
	_, anc, log, path := sleepingLog(t, audit.Options{})
	ctx := context.Background()
	start := &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "old", Ancestry: anc}
	for _, r := range []*audit.Record{start, {Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "x", Error: "gone"},
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "old"}} {
		if err := log.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	audittest.AppendAgain(t, path, start)
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "other", Error: "gone"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	audittest.AppendBytes(t, path, bytes.SplitAfter(data, []byte("\n"))[1])
	if got, err := (&AuditSource{Path: path}).List(ctx); err != nil || len(got) != 0 {
		t.Errorf("after a stale tail: got %+v, %v; want no container", got, err)
	}
}

// TestRefOf: the reference of a record line is read without decoding
// it, and text that looks like one inside a string is not taken for it.
func TestRefOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		ref  *audit.Ref
		want uint64
	}{
		{"reference", nil, &audit.Ref{Seq: 42, Stage: audit.StageCreateRuntime, Hash: "x"}, 42},
		{"none", nil, nil, 0},
		{"look-alike key and value", map[string]string{`,"ref":{"seq":7,`: `,"ref":{"seq":8,`}, nil, 0},
		{"look-alike and reference", map[string]string{"ref": `,"ref":{"seq":8,`}, &audit.Ref{Seq: 42, Stage: audit.StagePoststart, Hash: "x"}, 42},
	} {
		r := &audit.Record{Seq: 50, Time: "2026-12-05T00:00:00Z", Host: "h", Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "web", Annotations: tc.ann, Ref: tc.ref, Version: "x"}
		line, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got := refOf(line); got != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, got, tc.want, line)
		}
	}
}

// TestAuditSourceTail: a log with more of this boot's records than the
// source reads says so (a container started before them that only the
// log names is not listed); one whose unread records are all of an
// earlier boot does not.
func TestAuditSourceTail(t *testing.T) {
	pid, anc, log, path := sleepingLog(t, audit.Options{})
	old := auditTail
	t.Cleanup(func() { auditTail = old })
	start := func(id, boot string) *audit.Record {
		return &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: id, Ancestry: anc, BootID: boot}
	}
	stop := func(id, boot string) *audit.Record {
		return &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: id, BootID: boot}
	}
	recs := []*audit.Record{start("early", audittest.OtherBoot), stop("early", audittest.OtherBoot), start("before-tail", ""), start("in-tail", "")}
	for range 20 {
		recs = append(recs, stop("other", ""))
	}
	got := listAfter(t, log, path, recs)
	if len(got) != 2 {
		t.Fatalf("whole log read: %v, want both containers", got)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	// size is the bytes of the log from the line of id's start on.
	size := func(id string) int64 {
		for i, l := range lines {
			if strings.Contains(l, `"container_id":"`+id+`"`) {
				return int64(len(strings.Join(lines[i:], "")))
			}
		}
		t.Fatalf("no record of %s in %s", id, data)
		return 0
	}
	cutAt := audittest.Records(t, path, "before-tail")[0].Seq
	src := &AuditSource{Path: path}

	// The tail reaches in-tail's start, not before-tail's.
	auditTail = size("in-tail")
	got, err = src.List(context.Background())
	want := []discover.Container{{ID: "in-tail", Engine: EngineAuditLog, PID: pid}}
	if diff := cmp.Diff(want, got, ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var pe *PartialError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "only its last") || !strings.Contains(err.Error(), fmt.Sprintf("seq %d,", cutAt)) {
		t.Errorf("List of a log cut in this boot's records: %v, want a PartialError naming seq %d", err, cutAt)
	}

	// Cut in the earlier boot's records: nothing left unread names a
	// container that runs now.
	auditTail = size("before-tail")
	got, err = src.List(context.Background())
	if err != nil || len(got) != 2 {
		t.Errorf("List of a log cut in an earlier boot's records: %v, %v; want both containers and no error", got, err)
	}
}
