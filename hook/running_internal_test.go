package hook

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPickCgroup: cgroup v2's path when the process has one, else a v1
// hierarchy the runtimes and the kubelet always set, not a controller
// that leaves every process at / (rdma, misc): the pod's cgroup decides
// whether a process shares the container's pod.
func TestPickCgroup(t *testing.T) {
	for _, tc := range []struct{ cg, want string }{
		{"0::/kubepods/pod1/c1\n", "/kubepods/pod1/c1"},
		{"12:rdma:/\n11:misc:/\n5:memory:/kubepods/pod1/c1\n1:name=systemd:/kubepods/pod1/c1\n", "/kubepods/pod1/c1"},
		{"12:rdma:/\n4:cpu,cpuacct:/x\n3:pids:/kubepods/pod1/c1\n", "/kubepods/pod1/c1"},
		{"9:name=systemd:/a\n4:memory:/b\n0::/c\n", "/c"},
		{"12:rdma:/x\n11:misc:/y\n", "/x"},
		{"", ""},
	} {
		if got := pickCgroup([]byte(tc.cg)); got != tc.want {
			t.Errorf("pickCgroup(%q) = %q, want %q", tc.cg, got, tc.want)
		}
	}
}

// TestProcessNameQuoted: a process's command (and cgroup) are the
// container's to choose, and were printed as they are when printable:
// a command "s; ok (x" passed in a refusal line for more than a name.
func TestProcessNameQuoted(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "s; ok (x")
	if err := os.Symlink("/bin/sleep", exe); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	want := `"s; ok (x"`
	for range 100 { // comm is set at exec
		if name := processName(cmd.Process.Pid); strings.HasPrefix(name, want+", cgroup ") || name == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("processName = %q, want it to start %s", processName(cmd.Process.Pid), want)
}
