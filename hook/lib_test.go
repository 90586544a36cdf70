package hook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

// TestHookAsLibrary uses hook.Hook as another writer would (an NRI
// plugin): its own source, and here an injected inspector standing in
// for a container in the host user namespace.
func TestHookAsLibrary(t *testing.T) {
	cfg, err := policy.Parse("lib.json", []byte(`{"version":1,"audit_log":"/x","default":{"name":"strict","mode":"enforce","rules":{"require_user_namespace":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	host := &audit.Ancestry{PID: 77, StartTime: 5,
		User:  []audit.UserNS{{Ino: nsrel.InitialUserNSIno}},
		PIDNS: []audit.PIDNS{{Ino: 4026532100}, {Ino: nsrel.InitialPIDNSIno}}}
	h := &hook.Hook{Config: cfg, Log: log, Source: audit.SourceNRI,
		Inspect: func(_ int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
			if live == nil || live.Scanned() {
				t.Errorf("the inspection got live %v: want the decision's own scan, not made yet", live)
			}
			return host, nil
		}}
	res, err := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: "k8s-pod-1", Pid: 77})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Deny || res.Record == nil || res.Record.Source != audit.SourceNRI || res.Record.Seq != 1 {
		t.Fatalf("result %+v", res)
	}
	if d := cmp.Diff([]string{policy.RuleRequireUserNS}, audittest.Rules(res.Record)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if ok, err := log.HasStart("k8s-pod-1", 77, 5); !ok || err != nil {
		t.Errorf("HasStart: %v %v", ok, err)
	}
	if _, err := h.Run(context.Background(), "prestart", &specs.State{ID: "x"}); err == nil {
		t.Error("unknown stage accepted")
	}
}

// TestPoststartSearchFails: at poststart the search for the
// createRuntime record stops at the deadline (here one already passed
// when the uncontended lock was taken, behind the lines of 100 other
// containers): the comparison is not made, the record says why, and
// on_error decides, as for what could not be inspected. With on_error
// deny it was allowed.
func TestPoststartSearchFails(t *testing.T) {
	for _, onError := range []string{policy.OnErrorAllow, policy.OnErrorDeny} {
		cfg, log, _ := auditOnly(t, onError)
		anc := &audit.Ancestry{PID: 77, StartTime: 5, User: []audit.UserNS{{Ino: nsrel.InitialUserNSIno}}, PIDNS: []audit.PIDNS{{Ino: nsrel.InitialPIDNSIno}}}
		h := &hook.Hook{Config: cfg, Log: log, Inspect: func(int, *inspect.LiveOnce) (*audit.Ancestry, error) { return anc, nil }}
		if _, err := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: "c", Pid: 77}); err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: fmt.Sprint("other-", i)}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := h.Run(ctx, audit.StagePoststart, &specs.State{ID: "c", Pid: 77})
		if res == nil || res.Record == nil {
			t.Fatalf("%s: %+v, %v", onError, res, err)
		}
		if !strings.Contains(res.Record.Error, "searching the createRuntime record") || res.Deny != (onError == policy.OnErrorDeny) {
			t.Errorf("on_error %s: deny %v, record error %q; want the search's failure recorded and on_error to decide", onError, res.Deny, res.Record.Error)
		}
	}
}

// TestPoststopUnrecordedMessage: a poststop whose record cannot be
// written (here the log's lock is held past the deadline) says that
// poststop never refuses, not what on_error would decide: with
// on_error=deny it said "on_error=allow: allowed".
func TestPoststopUnrecordedMessage(t *testing.T) {
	cfg, log, path := auditOnly(t, policy.OnErrorDeny)
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err := (&hook.Hook{Config: cfg, Log: log}).Run(ctx, audit.StagePoststop, &specs.State{ID: "web"})
	if err == nil || res.Deny || res.Record != nil || !strings.Contains(res.Message, "cannot write the audit record (poststop never refuses)") {
		t.Errorf("result %+v, %v; want the record unwritten, not refused, and a message that says poststop never refuses", res, err)
	}
}

// auditOnly parses a config whose one block, the default "d", audits,
// under on_error onError, and opens an audit log in a new temporary
// directory; it returns the config, the log and the log's path.
func auditOnly(t *testing.T, onError string) (*policy.Config, *audit.Log, string) {
	t.Helper()
	cfg, err := policy.Parse("lib.json", []byte(`{"version":1,"audit_log":"/x","on_error":"`+onError+`","default":{"name":"d","mode":"audit"}}`))
	if err != nil {
		t.Fatal(err)
	}
	log, path := tempLog(t)
	return cfg, log, path
}

// tempLog opens an audit log, audit.jsonl, in a new temporary
// directory, and returns it and its path.
func tempLog(t *testing.T) (*audit.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	log, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return log, path
}

// TestFactsOfExitedProcess: host_root_unmapped reads the IDs the
// container's process holds and its mounts after its inspection; a
// process gone by then is a short job at poststart (recorded, with a
// note, as one gone before its inspection), but at createRuntime the
// rule is not checked, and the enforcing block refuses (a process taken
// for gone there passed it unchecked).
func TestFactsOfExitedProcess(t *testing.T) {
	nstest.RequireRoot(t)
	for _, stage := range []string{audit.StageCreateRuntime, audit.StagePoststart} {
		cfg, err := policy.Parse("lib.json", []byte(`{"version":1,"audit_log":"/x","on_error":"allow","default":{"name":"d","mode":"enforce","rules":{"host_root_unmapped":true}}}`))
		if err != nil {
			t.Fatal(err)
		}
		log, _ := tempLog(t)
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(nstest.HostIDBase(t)) + 990_000, Size: 1000}}
		p := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Credential: &syscall.Credential{}}, nstest.RequireCmd(t, "sleep"), "infinity")
		h := &hook.Hook{Config: cfg, Log: log, Inspect: func(pid int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
			a, err := inspect.ProcessWith(pid, live)
			p.Cmd.Process.Kill()
			p.Cmd.Process.Wait()
			return a, err
		}}
		if stage == audit.StagePoststart {
			if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c", Verdict: audit.VerdictAllow}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := h.Run(context.Background(), stage, &specs.State{ID: "c", Pid: p.Pid})
		if res == nil || res.Record == nil {
			t.Fatalf("%s: %+v, %v", stage, res, err)
		}
		r := res.Record
		switch stage {
		case audit.StageCreateRuntime:
			if !res.Deny || len(r.Violations) != 1 || !strings.Contains(r.Violations[0].Reason, "exited before they were read") {
				t.Errorf("createRuntime: deny %v, violations %+v; want refused, not checked", res.Deny, r.Violations)
			}
		default:
			if res.Deny || len(r.Violations) != 0 || !strings.Contains(r.Error, "exited before the IDs it holds and its mounts were read") {
				t.Errorf("poststart: deny %v, violations %+v, error %q; want recorded with the note", res.Deny, r.Violations, r.Error)
			}
		}
	}
}
