package discover_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// lowNofile is the RLIMIT_NOFILE (soft and hard) of the scans that hold
// fewer descriptors than namespaces; manyUserNS is how many user
// namespaces the tests hold, more than that.
const (
	lowNofile  = 64
	manyUserNS = 2 * lowNofile
)

// lowNofileHelper lowers RLIMIT_NOFILE to NSREL_NOFILE (lowNofile if
// unset), before anything has opened a file, and prints what a scan
// found: how many opens found no descriptor left, the user namespaces,
// whether the user namespace NSREL_BOUND (an inode) is among them, and
// the notice. NSREL_BOUND may list several, comma-separated: BOUND says
// whether all are. NSREL_NOIDS=1 plays a kernel without NS_GET_ID, on which
// the scan holds every namespace open.
func lowNofileHelper() {
	limit := uint64(lowNofile)
	if n, err := strconv.ParseUint(os.Getenv("NSREL_NOFILE"), 10, 64); err == nil {
		limit = n
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		fmt.Println("ERROR: setrlimit:", err)
		os.Exit(1)
	}
	if os.Getenv("NSREL_NOIDS") == "1" {
		discover.SetNoPinIDs()
	}
	// Descriptors the program holds already (inherited, say) count
	// against the limit as the scan's do.
	held, _ := strconv.Atoi(os.Getenv("NSREL_HELD"))
	for range held {
		if _, err := os.Open(os.DevNull); err != nil {
			fmt.Println("ERROR:", err)
			os.Exit(1)
		}
	}
	m, err := discover.Discover(discover.Options{})
	if err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(1)
	}
	found := true
	for b := range strings.SplitSeq(os.Getenv("NSREL_BOUND"), ",") {
		ino, _ := strconv.ParseUint(b, 10, 64)
		found = found && m.Lookup(nsrel.TypeUser, ino) != nil
	}
	fmt.Printf("OUTOFFDS: %d\nUSERNS: %d\nBOUND: %t\nNOTICE: %s\n", m.OutOfFDs, len(m.Of(nsrel.TypeUser)), found, m.Notice())
}

// nofileScan runs lowNofileHelper with env and returns what it printed:
// the count of opens out of descriptors, of user namespaces, whether the
// bound one was found, and the whole output.
func nofileScan(t *testing.T, env ...string) (outOf, users int, bound bool, out string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), "NSREL_DISCOVER_HELPER=nofile"), env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scan with %q: %v\n%s", env, err, b)
	}
	if _, err := fmt.Sscanf(string(b), "OUTOFFDS: %d\nUSERNS: %d\nBOUND: %t\n", &outOf, &users, &bound); err != nil {
		t.Fatalf("helper output %q: %v", b, err)
	}
	return outOf, users, bound, string(b)
}

// boundOnlyInFDHeldMountNS bind-mounts a user namespace that nothing
// else holds in a mount namespace that only an fd of another process
// holds (no task in it: the scan reads its mounts through a helper that
// joins it), until the test ends, and returns the user namespace's inode.
func boundOnlyInFDHeldMountNS(t *testing.T) uint64 {
	t.Helper()
	script := `set -e; touch "$1/x"
unshare -U sleep 1000 & p=$!
while [ "$(readlink /proc/$p/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do sleep 0.01; done
mount --bind /proc/$p/ns/user "$1/x"
kill $p; wait $p || true
echo ok $(stat -L -c %i "$1/x")
exec sleep infinity`
	cmd := exec.Command(nstest.RequireCmd(t, "unshare"), "-m", "--propagation", "private", nstest.RequireCmd(t, "sh"), "-c", script, "sh", t.TempDir())
	ino := okInode(t, cmd)
	mnt, err := os.Open(nstest.NSPath(cmd.Process.Pid, "mnt"))
	if err != nil {
		t.Fatal(err)
	}
	defer mnt.Close()
	holder := exec.Command(nstest.RequireCmd(t, "sleep"), "infinity")
	holder.ExtraFiles = []*os.File{mnt}
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	// The mount namespace's last task ends (FirstLine reaps it): the
	// holder's fd 3 keeps the namespace.
	cmd.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(cmd.Process.Pid, 0) == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there 10 s after SIGKILL", cmd.Process.Pid)
		}
	}
	return ino
}

// okInode starts the set-up cmd, which runs until the test ends, and
// returns the inode of its first line, "ok INODE".
func okInode(t *testing.T, cmd *exec.Cmd) uint64 {
	t.Helper()
	line := nstest.FirstLine(t, cmd, func() { cmd.Process.Kill() })
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "ok" {
		t.Fatalf("setup: %q", line)
	}
	ino, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// boundTwoDeep bind-mounts a user namespace U that nothing else holds in
// a mount namespace MI no task is in, bound itself in a mount namespace
// MO that only an fd holds, until the test ends, and returns U's inode:
// the scan reads MO's mounts through a helper that joins it, finds MI
// there (through no process) and must join MI too.
func boundTwoDeep(t *testing.T) uint64 {
	t.Helper()
	script := `set -e; D=$1; touch "$D/bu" "$D/mi"
MO= U= MI=
trap 'kill $MO $U $MI 2>/dev/null' EXIT
# w waits up to 10 s for the condition $1.
w() { i=0; until eval "$1"; do i=$((i+1)); [ $i -lt 1000 ] || { echo "not after 10 s: $1" >&2; exit 1; }; sleep 0.01; done; }
self=$(readlink /proc/self/ns/user); selfm=$(readlink /proc/self/ns/mnt)
# A mount namespace may hold only newer ones (the kernel refuses loops):
# MO first, then MI, then MO binds MI.
unshare -m --propagation private sh -c "while [ ! -s $D/go ]; do sleep 0.01; done; mount --bind \$(cat $D/go) $D/mi && exec sleep 1000" & MO=$!
w '[ "$(readlink /proc/$MO/ns/mnt)" != "$selfm" ]'
unshare -U sleep 1000 & U=$!
w '[ "$(readlink /proc/$U/ns/user)" != "$self" ]'
unshare -m --propagation private sh -c "mount --bind /proc/$U/ns/user $D/bu && exec sleep 1000" & MI=$!
w 'grep -q " $D/bu " /proc/$MI/mountinfo 2>/dev/null'
echo /proc/$MI/ns/mnt >"$D/go"
w 'grep -q " $D/mi " /proc/$MO/mountinfo 2>/dev/null'
exec 3</proc/$MO/ns/mnt
ino=$(stat -L -c %i /proc/$U/ns/user)
kill $U $MI $MO; wait $U $MI $MO 2>/dev/null || true
echo ok $ino
exec sleep infinity`
	// On one CPU, as in TestUnopenedCounted: this kernel (6.18) numbers
	// mount namespaces from per-CPU batches, so MI made on another CPU
	// than MO can have the lower number, and MO's bind of it then fails
	// with EINVAL (the loop check takes the lower number for the older
	// namespace): one run in three did while other tests loaded both
	// CPUs.
	cmd := exec.Command(nstest.RequireCmd(t, "taskset"), "-c", oneCPU(t), nstest.RequireCmd(t, "sh"), "-c", script, "sh", t.TempDir())
	ino := okInode(t, cmd)
	return ino
}

// TestMoreNamespacesThanFDs scans, in a child process that has opened
// no file before (the Go runtime's poller is not set up yet), with
// RLIMIT_NOFILE lower than the number of user namespaces, and one user
// namespace held only by a bind mount in a mount namespace held only by
// an fd. With NS_GET_ID the scan holds open only what its budget allows
// (none at a limit of 64, half at the other) and checks every other reference
// by ID: it finds every namespace and runs out of nothing. Before, it
// held every namespace open: it ran out of descriptors, and the bound
// namespace, which only the mount namespace's helper could open, was
// missing. On a kernel without NS_GET_ID it still holds every one, and
// must count the opens that found no descriptor left, which the notice
// says, instead of leaving namespaces out silently.
func TestMoreNamespacesThanFDs(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := nsrel.ID(nsrel.Path("/proc/self/ns/user"))
	nstest.Require(t, err == nil, "NS_GET_ID (Linux 6.18): %v", err)
	nstest.HoldUserNamespaces(t, manyUserNS)
	// Nested chains, two of them as deep as the kernel allows: each
	// level being resolved held two descriptors, and such chains ran
	// the scan out at a limit of 64.
	nstest.UserChain(t, 31)
	nstest.UserChain(t, 31)
	nstest.PIDChain(t, 31)
	// The second is bound in a mount namespace found only through a
	// mount a helper read: it could not be opened again when not held,
	// and its namespace was missing below any budget.
	bound := strconv.FormatUint(boundOnlyInFDHeldMountNS(t), 10) + "," + strconv.FormatUint(boundTwoDeep(t), 10)
	// 64: no namespace held open; the next, about half of them; the
	// last, room for them all but for the descriptors the program
	// holds (the budget ignored those, and the scan ran out).
	reserve := discover.ReserveFDs(runtime.GOMAXPROCS(0))
	for _, c := range []struct{ limit, held int }{{64, 0}, {reserve + manyUserNS/2, 0}, {reserve + manyUserNS + 24, reserve + manyUserNS - 76}} {
		outOf, users, found, out := nofileScan(t, "NSREL_NOFILE="+strconv.Itoa(c.limit), "NSREL_HELD="+strconv.Itoa(c.held), "NSREL_BOUND="+bound)
		if outOf != 0 || users < manyUserNS+2 || !found || strings.Contains(out, "ran out of file descriptors") {
			t.Errorf("RLIMIT_NOFILE %d, %d descriptors held, %d user namespaces held by processes and user:[%s] by bind mounts: %d opens out of descriptors, %d user namespaces, the bound one found: %t; want none, more than %d, found:\n%s",
				c.limit, c.held, manyUserNS, bound, outOf, users, found, manyUserNS+1, out)
		}
	}
	outOf, _, _, out := nofileScan(t, "NSREL_NOIDS=1")
	if outOf == 0 {
		t.Errorf("without NS_GET_ID, %d user namespaces held with RLIMIT_NOFILE %d, and no open counted as out of descriptors:\n%s", manyUserNS, lowNofile, out)
	}
	if want := "ran out of file descriptors (too many open files): could not open "; !strings.Contains(out, want) {
		t.Errorf("without NS_GET_ID: notice does not say %q:\n%s", want, out)
	}
}
