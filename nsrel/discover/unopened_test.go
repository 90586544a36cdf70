package discover_test

import (
	"cmp"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// TestUnopenedCounted bind-mounts six namespaces in a mount namespace
// of its own, covers them with a tmpfs, and copies that mount namespace
// (unshare -m inside it): every mount is listed twice and opened never.
// Four of the namespaces (net, user, PID, mount) are held by live processes,
// two (user, PID) by the covered mounts alone. Only the two are missing
// from the model, and only when the scan reads the processes' links of
// their type are they counted, once each. The count took every covered
// mount of a type the scan reads from no process (net and user for
// lspidns, net and PID for lsuserns --no-other-types: "could not open 2
// namespace bind mounts" for nothing) and each mount of a namespace in
// each mount namespace that lists it.
func TestUnopenedCounted(t *testing.T) {
	nstest.RequireRoot(t)
	live := map[string]*nstest.Proc{
		"net":  nstest.Sleep(t, nil, "-n"),
		"user": nstest.Sleep(t, nil, "-U"),
		"pid":  nstest.Sleep(t, nil, "-p", "-f"),
	}
	gone := map[string]*nstest.Proc{
		"user": nstest.Sleep(t, nil, "-U"),
		"pid":  nstest.Sleep(t, nil, "-p", "-f"),
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/user", &st); err != nil {
		t.Fatal(err)
	}
	key := func(p *nstest.Proc, typ string) discover.Key {
		return discover.Key{Dev: st.Dev, Ino: nstest.Ino(t, p.Pid, typ)}
	}
	liveKeys := []discover.Key{key(live["net"], "net"), key(live["user"], "user"), key(live["pid"], "pid")}
	goneUser, gonePID := key(gone["user"], "user"), key(gone["pid"], "pid")
	// A mount namespace can be bind-mounted only in an older one: the
	// live one is made here.
	script := `set -e; d=$1; shift
newmnt() {
	unshare -m --propagation unchanged sleep infinity & p=$!
	while [ "$(readlink /proc/$p/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ]; do sleep 0.01; done
}
newmnt; m=$p
mkdir $d/c
i=0
for ns in "$@" /proc/$m/ns/mnt; do i=$((i+1)); touch $d/c/$i; mount --bind $ns $d/c/$i; done
mount -t tmpfs cover $d/c
newmnt
echo ok $(stat -L -c %i /proc/$m/ns/mnt)
exec sleep infinity`
	args := []string{t.TempDir()}
	for _, p := range []struct {
		p   *nstest.Proc
		typ string
	}{{live["net"], "net"}, {live["user"], "user"}, {live["pid"], "pid"}, {gone["user"], "user"}, {gone["pid"], "pid"}} {
		args = append(args, "/proc/"+strconv.Itoa(p.p.Pid)+"/ns/"+p.typ)
	}
	// On one CPU: this kernel (6.18) numbers mount namespaces from
	// per-CPU batches, so one made on another CPU after the script's
	// own can have the lower number, and binding its file then fails
	// with EINVAL (the check against mount namespace loops takes the
	// lower number for the older namespace): about one run in ten did.
	line := firstLine(t, exec.Command(nstest.RequireCmd(t, "taskset"), append([]string{"-c", oneCPU(t), nstest.RequireCmd(t, "unshare"), "-m", "--propagation", "private", nstest.RequireCmd(t, "sh"), "-c", script, "sh"}, args...)...))
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "ok" {
		t.Fatalf("set-up: %q", line)
	}
	mntIno, _ := strconv.ParseUint(f[1], 10, 64)
	liveKeys = append(liveKeys, discover.Key{Dev: st.Dev, Ino: mntIno})
	for _, p := range gone {
		killWait(t, p, p.Pid)
	}
	mine := append([]discover.Key{goneUser, gonePID}, liveKeys...)
	for _, c := range []struct {
		name string
		opts discover.Options
		want []discover.Key
	}{
		{"lspidns", discover.Options{Types: []nsrel.Type{nsrel.TypePID}}, []discover.Key{gonePID}},
		{"lsuserns --no-other-types", discover.Options{Types: []nsrel.Type{nsrel.TypeUser}, NoOtherTypes: true}, []discover.Key{goneUser}},
		{"lsuserns", discover.Options{Types: []nsrel.Type{nsrel.TypeUser}}, []discover.Key{goneUser, gonePID}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := discoverT(t, c.opts)
			// Other tests' mounts may be counted too.
			got := slices.DeleteFunc(slices.Clone(discover.UnopenedKeys(m)), func(k discover.Key) bool { return !slices.Contains(mine, k) })
			byIno := func(a, b discover.Key) int { return cmp.Compare(a.Ino, b.Ino) }
			slices.SortFunc(got, byIno)
			// One another package's scan holds, alongside, is in the
			// model through it: its mount hides nothing.
			want := slices.SortedFunc(slices.Values(slices.DeleteFunc(slices.Clone(c.want), func(k discover.Key) bool {
				return m.Namespaces[k] != nil && heldHere(m, m.Namespaces[k]) == nil
			})), byIno)
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("namespaces counted as unopened (-want +got):\n%s\nnotice %q", diff, m.Notice())
			}
			if m.UnopenedNS != len(discover.UnopenedKeys(m)) {
				t.Errorf("UnopenedNS %d, %d namespaces", m.UnopenedNS, len(discover.UnopenedKeys(m)))
			}
			for _, k := range []discover.Key{goneUser, gonePID} {
				if n := heldHere(m, m.Namespaces[k]); n != nil {
					t.Errorf("%v, held only by covered mounts, found via %+v", k, n.FoundVia)
				}
			}
		})
	}
}

// firstLine starts cmd, in a process group of its own killed when the
// test ends, and returns the first line it writes to stdout, without its
// newline, or what it said on stderr when it wrote none.
func firstLine(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return nstest.FirstLine(t, cmd, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
}

// oneCPU returns a CPU this process may run on, for taskset -c.
func oneCPU(t *testing.T) string {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for cpu := range 1024 {
		if set.IsSet(cpu) {
			return strconv.Itoa(cpu)
		}
	}
	t.Fatal("no CPU in this process's affinity mask")
	return ""
}
