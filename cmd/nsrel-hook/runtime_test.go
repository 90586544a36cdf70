package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
)

// oci is an OCI runtime binary (runc or crun) with a private state root.
type oci struct {
	bin  string
	name string
	// wrap, if set, runs the runtime through it (see requireRuntime).
	wrap []string
	// groups, if set, are the runtime's supplementary groups.
	groups []uint32
}

func requireRuntime(t *testing.T, name string) oci {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.Require(t, setupErr == nil, "busybox rootfs: %v", setupErr)
	o := oci{bin: nstest.RequireCmd(t, name), name: name}
	if name == "crun" && hybridCgroups() {
		// crun (1.8) refuses hosts whose cgroup v2 hierarchy in
		// /sys/fs/cgroup/unified has controllers next to the v1 ones
		// ("cgroups in hybrid mode not supported"), as this VM's has.
		// Hide that mount from crun alone, in a private mount namespace,
		// so it uses cgroup v1 like runc; the host stays untouched.
		unshare := nstest.RequireCmd(t, "unshare")
		o.wrap = []string{unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", `umount -l /sys/fs/cgroup/unified && exec "$0" "$@"`}
	}
	return o
}

// hybridCgroups reports whether a cgroup v2 hierarchy with controllers is
// mounted at /sys/fs/cgroup/unified beside cgroup v1.
func hybridCgroups() bool {
	data, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return err == nil && len(strings.TrimSpace(string(data))) > 0
}

// command returns the command for the runtime with args.
func (o oci) command(ctx context.Context, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if o.wrap == nil {
		cmd = exec.CommandContext(ctx, o.bin, args...)
	} else {
		full := append(append(append([]string(nil), o.wrap[1:]...), o.bin), args...)
		cmd = exec.CommandContext(ctx, o.wrap[0], full...)
	}
	if o.groups != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Groups: o.groups}}
	}
	return cmd
}

// uniqueID returns a container ID no other test (or package) uses.
func uniqueID(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
}

// run creates a bundle for id in the env and runs it (detached or to
// completion). stdio goes to files: a detached runc whose output is a
// pipe dies when the pipe closes. It returns runc's stderr.
func (o oci) run(t *testing.T, e *env, id string, opts bundle.Options, detach bool) (string, error) {
	t.Helper()
	opts.Rootfs = sharedRootfs
	if opts.Hooks == nil {
		opts.Hooks = e.runcHooks(t)
	}
	dir := filepath.Join(e.dir, "bundles", id)
	if _, err := bundle.Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.delete(e, id) })
	args := []string{"--root", e.root, "run", "--bundle", dir}
	if detach {
		args = append(args, "--detach")
	}
	args = append(args, id)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := o.command(ctx, args...)
	errFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd.Stdout, cmd.Stderr = nil, errFile // stdout: /dev/null
	cmd.Dir = dir
	err = cmd.Run()
	stderr, _ := os.ReadFile(errFile.Name())
	return string(stderr), err
}

// delete force-deletes id, which runs the poststop hooks.
func (o oci) delete(e *env, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := o.command(ctx, "--root", e.root, "delete", "--force", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s delete %s: %v: %s", o.name, id, err, out)
	}
	return nil
}

// pid returns the container's init PID, or an error if it does not exist.
func (o oci) pid(e *env, id string) (int, error) {
	out, err := o.command(context.Background(), "--root", e.root, "state", id).Output()
	if err != nil {
		return 0, err
	}
	var st struct {
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, err
	}
	return st.Pid, nil
}

// checkAncestry compares a record's chains with the real namespaces of
// pid, read independently of package inspect.
func checkAncestry(t *testing.T, r *audit.Record, pid int, userDepth int) {
	t.Helper()
	if r.Ancestry == nil {
		t.Fatalf("seq %d %s: no ancestry", r.Seq, r.Stage)
	}
	a := r.Ancestry
	start, err := inspect.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if a.PID != pid || a.StartTime != start {
		t.Errorf("seq %d: pid %d start %d, want %d %d", r.Seq, a.PID, a.StartTime, pid, start)
	}
	if a.UserDepth() != userDepth {
		t.Errorf("seq %d: user depth %d, want %d", r.Seq, a.UserDepth(), userDepth)
	}
	for _, typ := range []string{"user", "pid"} {
		ref := nsrel.Path(nstest.NSPath(pid, typ))
		ident, err := nsrel.Identify(ref)
		if err != nil {
			t.Fatal(err)
		}
		var gotIno, gotDev uint64
		var gotID *uint64
		if typ == "user" {
			gotIno, gotDev, gotID = a.User[0].Ino, a.User[0].Dev, a.User[0].ID
			uid, err := nsrel.OwnerUID(ref)
			if err != nil || uid != a.User[0].OwnerUID {
				t.Errorf("seq %d: owner uid %d, real %d (%v)", r.Seq, a.User[0].OwnerUID, uid, err)
			}
		} else {
			gotIno, gotDev, gotID = a.PIDNS[0].Ino, a.PIDNS[0].Dev, a.PIDNS[0].ID
			owner, err := nsrel.OwnerUserNS(ref)
			if err != nil {
				t.Fatal(err)
			}
			oid, _ := nsrel.Identify(owner)
			owner.Close()
			if a.PIDNS[0].OwnerUserIno == nil || *a.PIDNS[0].OwnerUserIno != oid.Ino {
				t.Errorf("seq %d: pid namespace owner %v, real %d", r.Seq, a.PIDNS[0].OwnerUserIno, oid.Ino)
			}
		}
		if gotIno != ident.Ino || gotDev != ident.Dev {
			t.Errorf("seq %d: %s namespace %d/%d, real %d/%d", r.Seq, typ, gotDev, gotIno, ident.Dev, ident.Ino)
		}
		id, err := nsrel.ID(ref)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			if gotID != nil {
				t.Errorf("seq %d: %s id %d recorded without NS_GET_ID", r.Seq, typ, *gotID)
			}
		case err != nil:
			t.Fatal(err)
		case gotID == nil || *gotID != id:
			t.Errorf("seq %d: %s namespace id %v, real %d", r.Seq, typ, gotID, id)
		}
	}
	self, _ := os.Readlink("/proc/self/ns/user")
	top := a.User[len(a.User)-1]
	if want := (nsrel.Name{Type: nsrel.TypeUser, Ino: top.Ino}).String(); self != want {
		t.Errorf("seq %d: user chain ends at %s, the hook runs in %s", r.Seq, want, self)
	}
}

// TestRecordsRealContainers runs busybox containers with runc and crun,
// with and without a user namespace, under the shipped audit-mode config
// and the shipped runc hooks snippet (and the opt-in one with poststart),
// and checks that the records name the container process's real
// namespaces and that poststop follows, referring to the start record.
func TestRecordsRealContainers(t *testing.T) {
	for _, rt := range []string{"runc", "crun"} {
		for _, userns := range []bool{false, true} {
			for _, poststart := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/userns=%v/poststart=%v", rt, userns, poststart), func(t *testing.T) {
					o := requireRuntime(t, rt)
					e := newEnv(t, "hook.json", nil)
					e.poststart = poststart
					stages := e.stages()
					id := uniqueID(t, rt)
					if stderr, err := o.run(t, e, id, bundle.Options{UserNS: userns}, true); err != nil {
						t.Fatalf("%s run: %v\n%s", rt, err, stderr)
					}
					pid, err := o.pid(e, id)
					if err != nil {
						t.Fatal(err)
					}
					recs := e.records(t, id)
					if d := cmp.Diff(stages[:len(stages)-1], audittest.Stages(recs)); d != "" {
						t.Fatalf("stages while running (-want +got):\n%s", d)
					}
					depth := 0
					wantRules := []string{policy.RuleRequireUserNS}
					if userns {
						depth, wantRules = 1, nil
					}
					for _, r := range recs {
						checkAncestry(t, r, pid, depth)
						if r.Verdict != audit.VerdictAllow || r.Policy != "default" || r.Mode != policy.ModeAudit || r.Source != audit.SourceOCIHook {
							t.Errorf("seq %d: verdict %q policy %q mode %q source %q", r.Seq, r.Verdict, r.Policy, r.Mode, r.Source)
						}
						if d := cmp.Diff(wantRules, audittest.Rules(r)); d != "" {
							t.Errorf("seq %d violations (-want +got):\n%s", r.Seq, d)
						}
						if r.Bundle != filepath.Join(e.dir, "bundles", id) {
							t.Errorf("seq %d: bundle %q", r.Seq, r.Bundle)
						}
					}
					if poststart && (recs[1].Ref == nil || recs[1].Ref.Seq != recs[0].Seq || recs[1].Ref.Hash != recs[0].Hash) {
						t.Errorf("poststart does not refer to createRuntime: %+v", recs[1].Ref)
					}
					if err := o.delete(e, id); err != nil {
						t.Fatal(err)
					}
					recs = e.records(t, id)
					if d := cmp.Diff(stages, audittest.Stages(recs)); d != "" {
						t.Fatalf("stages after delete (-want +got):\n%s", d)
					}
					start, stop := recs[len(recs)-2], recs[len(recs)-1]
					if stop.Ref == nil || stop.Ref.Seq != start.Seq || stop.Ref.Hash != start.Hash || stop.Ancestry != nil {
						t.Errorf("poststop record %+v does not refer to the start record", stop)
					}
					e.verify(t)
				})
			}
		}
	}
}

// TestEnforceRefuses runs containers under the shipped enforcing config:
// one without a user namespace is refused at createRuntime (runc's error
// names the rule; nothing is left running; the record says deny), and so
// is one whose user namespace maps host root (0 0 65536: it passed, and
// its root was the host's), one with a user namespace of its own runs.
func TestEnforceRefuses(t *testing.T) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			o := requireRuntime(t, rt)
			e := newEnv(t, "hook-enforce.json", nil)
			bad := uniqueID(t, rt+"-bad")
			stderr, err := o.run(t, e, bad, bundle.Options{}, true)
			if err == nil {
				t.Fatalf("%s run of a container without user namespace succeeded under enforce", rt)
			}
			// crun does not pass hook output on; runc does.
			if rt == "runc" && !strings.Contains(stderr, policy.RuleRequireUserNS) {
				t.Errorf("runc's error does not name the rule:\n%s", stderr)
			}
			if _, err := o.pid(e, bad); err == nil {
				t.Errorf("refused container %s still exists", bad)
			}
			recs := e.records(t, bad)
			if len(recs) == 0 || recs[0].Stage != audit.StageCreateRuntime {
				t.Fatalf("records %v", audittest.Stages(recs))
			}
			r := recs[0]
			if r.Verdict != audit.VerdictDeny || r.Policy != "userns-required" || r.Mode != policy.ModeEnforce {
				t.Errorf("record verdict %q policy %q mode %q", r.Verdict, r.Policy, r.Mode)
			}
			// The initial user namespace maps host root (UID and GID).
			if d := cmp.Diff([]string{policy.RuleRequireUserNS, policy.RuleUserDepthMin, policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}, audittest.Rules(r)); d != "" {
				t.Errorf("violations (-want +got):\n%s", d)
			}
			if slices.Contains(audittest.Stages(recs), audit.StagePoststart) {
				t.Errorf("a refused container was recorded as started: %v", audittest.Stages(recs))
			}

			root := uniqueID(t, rt+"-hostroot")
			if _, err := o.run(t, e, root, bundle.Options{UserNS: true, Mappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}}, true); err == nil {
				t.Errorf("%s run of a container whose user namespace maps host root succeeded under enforce", rt)
			}
			if recs := e.records(t, root); len(recs) == 0 || recs[0].Verdict != audit.VerdictDeny ||
				!cmp.Equal([]string{policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}, audittest.Rules(recs[0])) {
				t.Errorf("host root mapped: records %+v; want refused for host_root_unmapped (UID and GID)", recs)
			}

			// Host root in the 200th line: a map file returns 124 lines
			// a read, and the first read was taken for the whole file.
			var long []specs.LinuxIDMapping
			for i := range 199 {
				long = append(long, specs.LinuxIDMapping{ContainerID: uint32(i), HostID: uint32(100000 + 2*i), Size: 1})
			}
			long = append(long, specs.LinuxIDMapping{ContainerID: 1000, HostID: 0, Size: 1})
			late := uniqueID(t, rt+"-lateroot")
			if _, err := o.run(t, e, late, bundle.Options{UserNS: true, Mappings: long}, true); err == nil {
				t.Errorf("%s run of a container whose user namespace maps host root in its 200th line succeeded under enforce", rt)
			}
			if recs := e.records(t, late); len(recs) == 0 || recs[0].Verdict != audit.VerdictDeny ||
				!cmp.Equal([]string{policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}, audittest.Rules(recs[0])) {
				t.Errorf("host root mapped in the 200th line: records %+v; want refused for host_root_unmapped (UID and GID)", recs)
			}

			// The runtime's caller holds host GID 0 as a supplementary
			// group: the container must not keep it. crun keeps its
			// caller's groups when the container's creator asks
			// (run.oci.keep_original_groups), and the container passed
			// host_root_unmapped, reading files of the host's group 0;
			// runc ignores the annotation, and neither keeps them
			// without it.
			og := o
			og.groups = []uint32{0, 42}
			kept := uniqueID(t, rt+"-groups")
			_, err = og.run(t, e, kept, bundle.Options{UserNS: true, Annotations: map[string]string{"run.oci.keep_original_groups": "1"}}, true)
			recs = e.records(t, kept)
			if rt == "crun" {
				if err == nil || len(recs) == 0 || recs[0].Verdict != audit.VerdictDeny ||
					!cmp.Equal([]string{policy.RuleHostRootUnmapped, policy.RuleHeldIDsMapped}, audittest.Rules(recs[0])) || !strings.Contains(recs[0].Violations[0].Reason, "holds host GID 0") ||
					!strings.Contains(recs[0].Violations[1].Reason, "holds host GIDs 0 42 ") {
					t.Errorf("crun keeping its caller's group 0: run %v, records %+v; want refused for host_root_unmapped (holds host GID 0) and held_ids_mapped (0 42)", err, recs)
				}
			} else if err != nil || len(recs) == 0 || recs[0].Verdict != audit.VerdictAllow {
				t.Errorf("runc, whose caller holds group 0, with keep_original_groups: run %v, records %+v; want allowed (runc drops the groups)", err, recs)
			}
			// A host group other than 0 kept (disk, shadow, docker):
			// host_root_unmapped judges ID 0 alone, and the container
			// ran with the group's access to host files;
			// held_ids_mapped refuses it.
			o42 := o
			o42.groups = []uint32{42}
			kept42 := uniqueID(t, rt+"-group42")
			_, err = o42.run(t, e, kept42, bundle.Options{UserNS: true, Annotations: map[string]string{"run.oci.keep_original_groups": "1"}}, true)
			recs = e.records(t, kept42)
			if rt == "crun" {
				if err == nil || len(recs) == 0 || recs[0].Verdict != audit.VerdictDeny ||
					!cmp.Equal([]string{policy.RuleHeldIDsMapped}, audittest.Rules(recs[0])) || !strings.Contains(recs[0].Violations[0].Reason, "holds host GIDs 42 ") {
					t.Errorf("crun keeping its caller's group 42: run %v, records %+v; want refused for held_ids_mapped (holds host GID 42)", err, recs)
				}
				// The record says what the process held (format 1.5).
				if len(recs) > 0 && (recs[0].Held == nil || !slices.Contains(recs[0].Held.Groups, 42)) {
					t.Errorf("crun keeping its caller's group 42: the record's held IDs %+v lack group 42", recs[0].Held)
				}
			} else if err != nil || len(recs) == 0 || recs[0].Verdict != audit.VerdictAllow {
				t.Errorf("runc, whose caller holds group 42, with keep_original_groups: run %v, records %+v; want allowed (runc drops the groups)", err, recs)
			}
			// An idmapped bind mount of a host directory (crun's "idmap"
			// option, which the container's creator sets): the
			// container's root wrote files owned by host UID 0 there, a
			// setuid-root one too, and host_root_unmapped passed it.
			// So with a mount table past 16 KiB (250 more mounts): its
			// read failed, and the check passed the container by.
			if rt == "crun" {
				idmapMounts := []specs.Mount{{Destination: "/root", Type: "bind", Source: t.TempDir(), Options: []string{"bind", "rw", "idmap"}}}
				many := append([]specs.Mount{{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"}}, idmapMounts...)
				for i := range 250 {
					many = append(many, specs.Mount{Destination: fmt.Sprintf("/tmp/m%d", i), Type: "tmpfs", Source: "tmpfs"})
				}
				for name, mounts := range map[string][]specs.Mount{"idmap": idmapMounts, "idmap-many": many} {
					idm := uniqueID(t, rt+"-"+name)
					_, err := o.run(t, e, idm, bundle.Options{UserNS: true, Mounts: mounts}, true)
					recs := e.records(t, idm)
					if err == nil || len(recs) == 0 || recs[0].Verdict != audit.VerdictDeny ||
						!cmp.Equal([]string{policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}, audittest.Rules(recs[0])) || !strings.Contains(recs[0].Violations[0].Reason, "maps UID 0 of its file system to host UID 100000, which the container holds") {
						t.Errorf("crun with an idmapped bind mount (%s): run %v, records %+v; want refused for host_root_unmapped (the idmapped mount's UID and GID 0)", name, err, recs)
					}
					// The record holds the mount and its maps.
					if len(recs) > 0 && (len(recs[0].IDMapped) != 1 || !strings.HasSuffix(recs[0].IDMapped[0].Point, "/root") || len(recs[0].IDMapped[0].UIDMap) == 0 || len(recs[0].IDMapped[0].GIDMap) == 0) {
						t.Errorf("crun with an idmapped bind mount (%s): the record's idmapped mounts %+v; want the one at /root, with its maps", name, recs[0].IDMapped)
					}
				}
				// An idmapped mount whose own map keeps UID and GID 0 of
				// the host directory away from the container (its root
				// writes there as UID 1000): refused whatever its map
				// said, before its map was read. It runs.
				toUser := uniqueID(t, rt+"-idmapuser")
				userMount := []specs.Mount{{Destination: "/root", Type: "bind", Source: t.TempDir(), Options: []string{"bind", "rw", "idmap=uids=1000-100000-1;gids=1000-100000-1"}}}
				if stderr, err := o.run(t, e, toUser, bundle.Options{UserNS: true, Mounts: userMount}, true); err != nil {
					t.Errorf("crun with an idmapped bind mount mapping the container's root to UID 1000: refused: %v\n%s\n%+v", err, stderr, e.records(t, toUser))
				}
				// An idmapped mount of the host's own (a systemd-homed
				// home), which the container's mount table holds at
				// createRuntime as a copy of the runtime's: not the
				// container's, not refused.
				hostIdmapMount(t)
				hostIdm := uniqueID(t, rt+"-hostidmap")
				if stderr, err := o.run(t, e, hostIdm, bundle.Options{UserNS: true}, true); err != nil {
					t.Errorf("crun on a host with an idmapped mount of its own: refused: %v\n%s\n%+v", err, stderr, e.records(t, hostIdm))
				}
			}
			plain := uniqueID(t, rt+"-callergroups")
			if stderr, err := og.run(t, e, plain, bundle.Options{UserNS: true}, true); err != nil {
				t.Errorf("%s run by a caller holding group 0, without keep_original_groups, refused: %v\n%s", rt, err, stderr)
			}

			good := uniqueID(t, rt+"-good")
			if stderr, err := o.run(t, e, good, bundle.Options{UserNS: true}, true); err != nil {
				t.Fatalf("container with a user namespace refused: %v\n%s", err, stderr)
			}
			recs = e.records(t, good)
			if d := cmp.Diff([]string{audit.StageCreateRuntime}, audittest.Stages(recs)); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
			for _, r := range recs {
				if r.Verdict != audit.VerdictAllow || len(r.Violations) > 0 {
					t.Errorf("seq %d: verdict %q violations %+v", r.Seq, r.Verdict, r.Violations)
				}
				// The IDs its rules judged, recorded: mapped ones, no
				// supplementary group the maps leave out.
				if r.Held == nil || r.Held.UIDs[0] == 0 || r.Held.GIDs[0] == 0 || slices.Contains(r.Held.Groups, 0) || r.IDMapped != nil {
					t.Errorf("seq %d: held IDs %+v, idmapped mounts %+v; want the container's mapped IDs, none of host root's, no idmapped mount", r.Seq, r.Held, r.IDMapped)
				}
			}
			e.verify(t)
		})
	}
}

// TestConcurrentContainers starts 50 runc containers at once: exactly one
// record per container per stage, and the chain verifies.
func TestConcurrentContainers(t *testing.T) {
	o := requireRuntime(t, "runc")
	// A 2-CPU machine starting 50 containers while other packages' tests
	// run: 50 hooks queue on the log's lock, each append synced and
	// sealed, and the last ones in the queue passed 4 s (what is counted
	// here is records, not time: a minute, and runc's hook timeout past
	// it; the shipped 5 s is the shipped configuration's business).
	e := newEnv(t, "hook.json", func(c map[string]any) { c["deadline_ms"] = 60000 })
	hooks := e.runcHooks(t)
	long := 120
	for _, hs := range []*[]specs.Hook{&hooks.CreateRuntime, &hooks.Poststart, &hooks.Poststop} {
		for i := range *hs {
			(*hs)[i].Timeout = &long
		}
	}
	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%02d", uniqueID(t, "par"), i)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if stderr, err := o.run(t, e, id, bundle.Options{UserNS: i%2 == 0, Hooks: hooks}, true); err != nil {
				errs[i] = fmt.Errorf("%s: %v: %s", id, err, stderr)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = o.delete(e, id)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	count := map[string]int{}
	for _, r := range e.records(t, "") {
		count[r.ContainerID+" "+r.Stage]++
	}
	for _, id := range ids {
		for _, st := range vocab.ShippedStages {
			if c := count[id+" "+st]; c != 1 {
				t.Errorf("%s %s: %d records, want 1", id, st, c)
			}
		}
	}
	if s := e.verify(t); s.Records != len(vocab.ShippedStages)*n {
		t.Errorf("%d records, want %d", s.Records, len(vocab.ShippedStages)*n)
	}
}

// hostIdmapMount makes an idmapped bind mount of a directory of the test
// on another in the host's mount namespace (mapping 100000-165535),
// until the test ends.
func hostIdmapMount(t *testing.T) {
	t.Helper()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	dir := nstest.PrivateDir(t)
	nstest.Mkdirs(t, 0o755, dir+"/src", dir+"/dst")
	nstest.IDMappedMount(t, dir+"/src", dir+"/dst", m, m)
}
