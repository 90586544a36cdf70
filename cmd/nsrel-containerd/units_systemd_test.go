package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestShippedUnitsUnderSystemd runs the shipped units for real: systemd
// (Debian's, /lib/systemd/systemd) boots as PID 1 of new PID, mount, UTS
// and cgroup namespaces, a container of the host's file systems whose
// /etc, /var and /usr/local are overlays (written in the test's
// directory), whose /run and /tmp are its own and whose /sys and
// /proc/sys are read-only. nsrel-watch.service and nsrel-nri.service, as
// shipped, with a drop-in that only makes them run `nsrel-hook
// createRuntime` once (ExecStart=, Type=oneshot, Restart=no, its state
// on stdin, its output to a file, DefaultDependencies=no), record a
// process whose mount namespace has an idmapped mount: under the units'
// sandbox (CapabilityBoundingSet=CAP_SYS_PTRACE, SystemCallFilter=...)
// the record has the mount's ID maps, not why they could not be read.
// nsrel-checkpoint.service, as shipped but for its output and
// DefaultDependencies=no, emits a checkpoint due by time, ships it to
// /dev/log and exits 0.
//
// Nothing of it is left on the host: systemd is asked to exit (and
// killed if it does not), the cgroup it ran in is removed, the overlays'
// upper directories are in the test's directory.
func TestShippedUnitsUnderSystemd(t *testing.T) {
	t.Parallel()
	nstest.RequireRoot(t)
	requireMountNSFD(t)
	sd := bootSystemd(t)

	// The process the hook inspects, in systemd's PID namespace: a
	// container in a user namespace of its own (0-65535 as host
	// 100000-165535: not host root, so host_root_unmapped reads its
	// idmapped mounts) with a mount namespace of its own, made before
	// the user namespace (as a container's creator may): the initial
	// user namespace's, where the units' root lacks the CAP_SYS_ADMIN
	// that listing its mounts by the namespace's ID asks for. In it, an
	// idmapped mount of the same map.
	src, dst := filepath.Join(sd.dir, "src"), filepath.Join(sd.dir, "dst")
	nstest.Mkdirs(t, 0o755, src, dst)
	unshare := nstest.RequireCmd(t, "unshare")
	c := nstest.Start(t, nil, sd.nsenter, "--target", strconv.Itoa(sd.pid), "--pid", "--",
		unshare, "--mount", "--propagation", "private", "--", unshare, "--user", "--", nstest.RequireCmd(t, "sleep"), "infinity")
	leaf := nstest.WaitLeaf(t, c.Pid, "sleep")
	t.Cleanup(func() { endChild(t, leaf) })
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile("/proc/"+strconv.Itoa(leaf)+"/"+f, []byte("0 100000 65536\n"), 0); err != nil {
			t.Fatal(err)
		}
	}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	nstest.IDMappedMountIn(t, leaf, src, dst, m, m)
	inner := innerPID(t, leaf)

	// /dev/log in the units' private /dev is a link to
	// /run/systemd/journal/dev-log (no journald runs in the container):
	// the checkpoints' syslog destination in the shipped config.
	devLog, err := net.ListenPacket("unixgram", sd.root("/run/systemd/journal/dev-log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devLog.Close() })

	ids := map[string]string{}
	for _, unit := range []string{"nsrel-watch.service", "nsrel-nri.service"} {
		ids[unit] = fmt.Sprintf("sd-%s-%d-%d", strings.TrimSuffix(unit, ".service"), os.Getpid(), time.Now().UnixNano())
		state, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": ids[unit], "status": "creating", "pid": inner, "bundle": "/b"})
		sd.write(t, unit+".state.json", state)
		sd.start(t, unit)
	}
	logPath := sd.root(nstest.HostAuditLog)
	want := []audit.IDMappedMount{{
		Point:  dst,
		UIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}},
		GIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}},
	}}
	for unit, id := range ids {
		recs := audittest.Records(t, logPath, id)
		if len(recs) != 1 || recs[0].Stage != audit.StageCreateRuntime || recs[0].PID != inner {
			t.Errorf("%s: records of %s:\n%s\nwant one createRuntime record of PID %d", unit, id, audittest.Listing(recs), inner)
			continue
		}
		got := slices.DeleteFunc(slices.Clone(recs[0].IDMapped), func(m audit.IDMappedMount) bool { return m.Point != dst })
		if diff := cmp.Diff(want, got); diff != "" {
			line, _ := json.Marshal(recs[0])
			t.Errorf("%s: the idmapped mount in the record under the unit's sandbox (-want +got):\n%s\nthe record: %s", unit, diff, line)
		}
	}

	// A checkpoint due by time (its state, the last one's, gone: as on
	// a node quiet for longer than checkpoints.every_seconds).
	if err := os.Remove(logPath + ".checkpoint"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	sd.start(t, "nsrel-checkpoint.service")
	recs := audittest.Records(t, logPath, "")
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	last := recs[len(recs)-1]
	// The hook's checkpoint of the first record came before: only the
	// checkpoint unit makes one of the last (a checkpoint is due again
	// after 100 records or 300 s).
	if got, err := receiveCheckpoint(devLog, last.Seq); err != nil || got.Hash != last.Hash {
		t.Errorf("checkpoint of seq %d on /dev/log: %+v, %v; want hash %s", last.Seq, got, err, last.Hash)
	}
	// ... and in the shipped config's checkpoints file.
	var inFile []uint64
	for cp, err := range audit.ReadCheckpoints(sd.root("/var/log/nsrel/checkpoints.jsonl")) {
		if err != nil {
			t.Fatal(err)
		}
		inFile = append(inFile, cp.Seq)
	}
	if !slices.Contains(inFile, last.Seq) {
		t.Errorf("checkpoints of seq %v in the checkpoints file, want one of %d", inFile, last.Seq)
	}
	audittest.Verify(t, logPath)
}

// requireMountNSFD requires a kernel whose listmount(2) takes a mount
// namespace by its fd (mnt_id_req.mnt_ns_fd, newer than statmount's
// maps of idmapped mounts, Linux 6.15; Linux 6.18 has it): the units'
// root lacks CAP_SYS_ADMIN, which asking by the namespace's ID needs for
// a namespace of the initial user namespace.
func requireMountNSFD(t *testing.T) {
	t.Helper()
	fd, err := unix.Open("/proc/self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	req := struct {
		size, mntNsFd      uint32
		mntID, param, nsID uint64
	}{size: 32, mntNsFd: uint32(fd), mntID: ^uint64(0)}
	var id uint64
	_, _, e := unix.Syscall6(unix.SYS_LISTMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&id)), 1, 0, 0, 0)
	nstest.Require(t, e == 0, "needs listmount(2) that takes mnt_id_req.mnt_ns_fd: %v", e)
}

// endChild kills process pid, a child of nsenter in systemd's PID
// namespace, and waits (10 s) until nsenter reaped it. Killed with
// nsenter (nstest.Start's end kills the process group), its parent gone,
// it would be a zombie of the host's init, which systemd waits for
// (10 s) before it exits.
func endChild(t *testing.T, pid int) {
	t.Helper()
	start, err := inspect.StartTime(pid)
	if err != nil {
		return // gone
	}
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if now, err := inspect.StartTime(pid); err != nil || now != start {
			return // reaped (its PID another's now, maybe)
		}
		if time.Now().After(deadline) {
			t.Errorf("process %d not reaped 10 s after SIGKILL", pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// innerPID returns the PID of host process pid in its own PID namespace
// (the last field of its status's NSpid line).
func innerPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "NSpid:" {
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("process %d: no NSpid in another PID namespace:\n%s", pid, b)
	return 0
}

// receiveCheckpoint returns the checkpoint of seq that reaches c within
// 10 s (those of others passed over).
func receiveCheckpoint(c net.PacketConn, seq uint64) (audit.Checkpoint, error) {
	buf := make([]byte, 64<<10)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return audit.Checkpoint{}, err
	}
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return audit.Checkpoint{}, err
		}
		if cp, ok := audit.ParseCheckpoint(buf[:n]); ok && cp.Seq == seq {
			return cp, nil
		}
	}
}

// sdContainer is systemd running as PID 1 of a container of the test
// (bootSystemd).
type sdContainer struct {
	pid       int    // systemd's PID on the host
	dir       string // the test's directory, the container's /run/nsrel-test
	nsenter   string
	systemctl string
	done      chan struct{} // closed when systemd exited
	exitErr   error
	console   nstest.LockedBuffer // what systemd wrote to its console
}

// sdShared is where the container sees the test's directory.
const sdShared = "/run/nsrel-test"

// sdBoot is PID 1 of the container until it execs systemd: it makes the
// container's mounts (private to its mount namespace), then becomes
// systemd in a cgroup namespace of the cgroup it was started in.
const sdBoot = `set -eu
mount --make-rprivate /
mount -t proc -o nosuid,nodev,noexec proc /proc
# The host's kernel settings and devices: read-only.
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
awk '$5 == "/sys" || index($5, "/sys/") == 1 { print $5 }' /proc/self/mountinfo | while read -r m; do
	mount -o remount,bind,ro "$m"
done
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
# systemd takes /dev/console: a terminal of the test's, not the host's console.
mount --bind "$CONSOLE" /dev/console
for d in etc var usr/local; do
	n=$(echo "$d" | tr / _)
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/ov/$n/upper,workdir=$W/ov/$n/work" "/$d"
done
# A fresh audit log and sealing state, whatever the host has.
rm -rf /var/log/nsrel /var/lib/nsrel
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/nsrel-test /run/systemd/journal
mount --bind "$W/shared" /run/nsrel-test
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
exec setpriv --bounding-set=-sys_module,-sys_time,-sys_boot,-wake_alarm,-sys_rawio \
	unshare --cgroup env -i container=nsrel-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	/lib/systemd/systemd --unit=nsrel-test.target --log-target=console --log-level=info
`

// sdDropIn is the drop-in of nsrel-watch.service and nsrel-nri.service
// (%N: the unit's name without .service): nsrel-hook createRuntime once,
// the state of a container on stdin, the config at the path the units
// name.
const sdDropIn = `[Unit]
DefaultDependencies=no
[Service]
Type=oneshot
Restart=no
ExecStart=
ExecStart=/usr/local/sbin/nsrel-hook --config /etc/nsrel/hook.json createRuntime
StandardInput=file:` + sdShared + `/%N.service.state.json
StandardOutput=file:` + sdShared + `/%N.service.out
`

// bootSystemd boots systemd as PID 1 of new PID, mount, UTS and cgroup
// namespaces (in a cgroup of its own below the test's), with the shipped
// units nsrel-watch.service, nsrel-nri.service (config/containerd) and
// nsrel-checkpoint.service (config/systemd) installed where `make
// install` puts them (/usr/local/lib/systemd/system), nsrel-hook in
// /usr/local/sbin and /etc/nsrel/hook.json the shipped one judging
// idmapped mounts too (host_root_unmapped: the hook reads their maps
// only for that rule). It waits until systemd has booted; at the test's
// end systemd exits (systemctl exit, else SIGKILL) and its cgroup is
// removed.
func bootSystemd(t *testing.T) *sdContainer {
	t.Helper()
	systemd := "/lib/systemd/systemd"
	_, err := os.Stat(systemd)
	nstest.Require(t, err == nil, "needs systemd (%v); `make test` installs it", err)
	for _, c := range []string{"mount", "awk", "setpriv", "unshare", "env"} {
		nstest.RequireCmd(t, c)
	}
	sd := &sdContainer{
		dir:       t.TempDir(),
		nsenter:   nstest.RequireCmd(t, "nsenter"),
		systemctl: nstest.RequireCmd(t, "systemctl"),
		done:      make(chan struct{}),
	}
	hook := nstest.Tool(t, "nsrel-hook")
	leftBefore := sdLeftovers(t)

	upper := func(d string) string { return filepath.Join(sd.dir, "ov", strings.ReplaceAll(d, "/", "_"), "upper") }
	for _, d := range []string{"etc", "var", "usr/local"} {
		for _, sub := range []string{"upper", "work"} {
			p := filepath.Join(sd.dir, "ov", strings.ReplaceAll(d, "/", "_"), sub)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// The overlay's root takes the upper directory's owner and mode.
		fi, err := os.Stat("/" + d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(upper(d), fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"shared"} {
		if err := os.Mkdir(filepath.Join(sd.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	put := func(path string, data []byte, perm os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, perm); err != nil {
			t.Fatal(err)
		}
	}
	read := func(rel string) []byte {
		t.Helper()
		b, err := os.ReadFile(nstest.RepoFile(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	units := filepath.Join(upper("usr/local"), "lib/systemd/system")
	for _, u := range []string{"config/containerd/nsrel-watch.service", "config/containerd/nsrel-nri.service", "config/systemd/nsrel-checkpoint.service"} {
		put(filepath.Join(units, filepath.Base(u)), read(u), 0o644)
	}
	bin, err := os.ReadFile(hook)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(upper("usr/local"), "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := nstest.WriteExecutable(filepath.Join(upper("usr/local"), "sbin/nsrel-hook"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(read("config/hook.json"), &cfg); err != nil {
		t.Fatal(err)
	}
	rules, ok := cfg["default"].(map[string]any)["rules"].(map[string]any)
	if !ok {
		t.Fatal("config/hook.json: no default rules")
	}
	rules["host_root_unmapped"] = true
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	put(filepath.Join(upper("etc"), "nsrel/hook.json"), b, 0o644)
	sys := filepath.Join(upper("etc"), "systemd/system")
	put(filepath.Join(sys, "nsrel-test.target"), []byte("[Unit]\nDescription=nsrel test: nothing to start\nDefaultDependencies=no\n"), 0o644)
	for _, u := range []string{"nsrel-watch.service", "nsrel-nri.service"} {
		put(filepath.Join(sys, u+".d/zz-nsrel-test.conf"), []byte(sdDropIn), 0o644)
	}
	put(filepath.Join(sys, "nsrel-checkpoint.service.d/zz-nsrel-test.conf"), []byte("[Unit]\nDefaultDependencies=no\n[Service]\nStandardOutput=file:"+sdShared+"/%N.service.out\n"), 0o644)
	// What the units want or the host may have enabled: never started
	// in the container.
	for _, u := range []string{"containerd.service", "crio.service", "docker.service", "systemd-journald.service", "systemd-journald.socket", "systemd-udevd.service", "systemd-sysctl.service"} {
		if err := os.Symlink("/dev/null", filepath.Join(sys, u)); err != nil {
			t.Fatal(err)
		}
	}
	boot := filepath.Join(sd.dir, "boot.sh")
	put(boot, []byte(sdBoot), 0o644)

	master, console := nstest.OpenPTY(t, 200)
	cg := sdCgroup(t)
	cgfd, err := unix.Open(cg, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Its console, a terminal whose output the test keeps (systemd
	// takes /dev/console for its own, or /dev/null when that is not a
	// terminal).
	go io.Copy(&sd.console, master) // until the terminal is closed
	cmd := exec.Command("/bin/sh", boot)
	cmd.Env = append(os.Environ(), "W="+sd.dir, "CONSOLE="+console.Name())
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP,
		UseCgroupFD: true,
		CgroupFD:    cgfd,
		// Killed, and with it every process of its PID namespace,
		// should the test binary die. The signal follows the thread
		// that started it: that thread is kept until systemd exited.
		Pdeathsig: syscall.SIGKILL,
	}
	started := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		sd.exitErr = cmd.Wait()
		close(sd.done)
	}()
	err = <-started
	unix.Close(cgfd)
	if err != nil {
		t.Fatalf("start systemd: %v", err)
	}
	sd.pid = cmd.Process.Pid
	t.Cleanup(func() {
		// After the other cleanups: the test's processes in the
		// container's PID namespace end with systemd.
		sd.exit(t)
		if t.Failed() {
			sd.logOutputs(t)
		}
		if left := slices.DeleteFunc(sdLeftovers(t), func(p string) bool { return slices.Contains(leftBefore, p) }); len(left) > 0 {
			t.Errorf("left on the host: %q", left)
		}
	})
	sd.waitBooted(t)
	return sd
}

// sdLeftovers lists the private /tmp and /var/tmp (PrivateTmp=) of the
// nsrel units in the host's /tmp and /var/tmp: systemd would leave them
// there had it used the host's.
func sdLeftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, g := range []string{"/tmp/systemd-private-*-nsrel-*", "/var/tmp/systemd-private-*-nsrel-*"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// sdCgroup makes a cgroup (v2) of its own below the test's, for systemd
// and what it starts, removed at the test's end.
func sdCgroup(t *testing.T) string {
	t.Helper()
	mnt := ""
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(mi)) {
		_, after, ok := strings.Cut(line, " - ")
		if f := strings.Fields(line); ok && strings.HasPrefix(after, "cgroup2 ") && len(f) > 4 {
			mnt = f[4]
			break
		}
	}
	nstest.Require(t, mnt != "", "needs cgroup v2 mounted (unified or hybrid)")
	own := ""
	cgs, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(cgs)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			own = p
		}
	}
	if own == "" {
		t.Fatalf("no cgroup v2 line in /proc/self/cgroup:\n%s", cgs)
	}
	rel := filepath.Join(own, fmt.Sprintf("nsrel-test-systemd-%d-%d", os.Getpid(), time.Now().UnixNano()))
	cg := filepath.Join(mnt, rel)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	// Once systemd exited (a cleanup registered before its).
	t.Cleanup(func() {
		if left := ctrdtest.RemoveCgroups(rel); len(left) > 0 {
			t.Errorf("cgroups not removed: %q", left)
		} else if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s not removed (its hierarchy is not below /sys/fs/cgroup)", cg)
		}
	})
	return cg
}

// root returns path as the test sees the container's path.
func (sd *sdContainer) root(path string) string {
	return "/proc/" + strconv.Itoa(sd.pid) + "/root" + path
}

// write writes name in the test's directory, the container's sdShared.
func (sd *sdContainer) write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(sd.dir, "shared", name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctl runs systemctl in the container (its mount and PID namespaces).
func (sd *sdContainer) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, sd.nsenter, append([]string{"--target", strconv.Itoa(sd.pid), "--mount", "--pid", "--", sd.systemctl, "--no-pager", "--no-ask-password"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// waitBooted waits (60 s at most) until systemd has started, its
// initial job done.
func (sd *sdContainer) waitBooted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-sd.done:
			t.Fatalf("systemd exited while booting: %v", sd.exitErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		state, err := sd.ctl(ctx, "is-system-running")
		cancel()
		switch state {
		case "running":
			return
		case "degraded":
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			failed, _ := sd.ctl(ctx, "--failed")
			cancel()
			t.Fatalf("systemd booted degraded:\n%s", failed)
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd did not boot within 60 s: systemctl is-system-running: %q, %v", state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start starts unit (a oneshot: systemctl returns once it ran) and fails
// the test unless it succeeded.
func (sd *sdContainer) start(t *testing.T, unit string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if out, err := sd.ctl(ctx, "start", unit); err != nil {
		st, _ := sd.ctl(ctx, "status", unit)
		t.Fatalf("systemctl start %s: %v: %s\n%s", unit, err, out, st)
	}
	// The unit as shipped, with the test's drop-in only.
	show, err := sd.ctl(ctx, "show", "--property=Result,ExecMainStatus,FragmentPath,DropInPaths", unit)
	if err != nil {
		t.Fatalf("systemctl show %s: %v: %s", unit, err, show)
	}
	got := map[string]string{}
	for line := range strings.Lines(show) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		got[k] = v
	}
	want := map[string]string{
		"Result":         "success",
		"ExecMainStatus": "0",
		"FragmentPath":   "/usr/local/lib/systemd/system/" + unit,
		"DropInPaths":    "/etc/systemd/system/" + unit + ".d/zz-nsrel-test.conf",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", unit, diff)
	}
}

// exit asks systemd to exit and waits for it (30 s), else kills it.
func (sd *sdContainer) exit(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := sd.ctl(ctx, "exit")
	select {
	case <-sd.done:
	case <-ctx.Done():
		t.Errorf("systemd did not exit within 30 s (systemctl exit: %v: %s): killed", err, out)
		syscall.Kill(sd.pid, syscall.SIGKILL)
		select {
		case <-sd.done:
		case <-time.After(10 * time.Second):
			t.Errorf("systemd (%d) did not die of SIGKILL", sd.pid)
		}
	}
}

// logOutputs logs systemd's console and the units' output.
func (sd *sdContainer) logOutputs(t *testing.T) {
	t.Helper()
	t.Logf("systemd's console:\n%s", lastLines([]byte(sd.console.String()), 80))
	for _, f := range []string{"shared/nsrel-watch.service.out", "shared/nsrel-nri.service.out", "shared/nsrel-checkpoint.service.out"} {
		f = filepath.Join(sd.dir, f)
		if b, err := os.ReadFile(f); err == nil {
			t.Logf("%s:\n%s", f, lastLines(b, 60))
		}
	}
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	var lines []string
	s := bufio.NewScanner(strings.NewReader(string(b)))
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
