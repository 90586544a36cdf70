package hook

import "testing"

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
