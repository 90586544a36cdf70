package ctrdtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StopShim stops (SIGSTOP) the shim of the container process pid until
// the test ends: the daemon's requests to it get no answer. It returns
// once every thread of the shim is stopped (a stop takes effect when a
// thread next runs: on a loaded machine, after a query began, which the
// shim then answered), waiting at most 10 s.
func StopShim(t testing.TB, pid int) {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	shim, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("parent of %d: %v", pid, err)
	}
	if err := syscall.Kill(shim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(shim, syscall.SIGCONT) })
	for i := 0; ; i++ {
		if allStopped(shim) {
			return
		}
		if i == 10000 {
			t.Fatalf("shim %d not stopped 10 s after SIGSTOP", shim)
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped says whether every thread of process pid is stopped (state
// T in its stat).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		if fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(fields) == 0 || fields[0] != "T" {
			return false
		}
	}
	return true
}
