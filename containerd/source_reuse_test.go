package containerd

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc"

	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// reuseNamespaces, reuseTasks and reuseContainers are a containerd's
// services that list one namespace, k8s.io, with one pod container,
// "web", whose task runs as pid until exited is set; the container list
// runs between before it answers.
type reuseNamespaces struct {
	namespacesapi.UnimplementedNamespacesServer
}

func (reuseNamespaces) List(context.Context, *namespacesapi.ListNamespacesRequest) (*namespacesapi.ListNamespacesResponse, error) {
	return &namespacesapi.ListNamespacesResponse{Namespaces: []*namespacesapi.Namespace{{Name: "k8s.io"}}}, nil
}

type reuseTasks struct {
	tasksapi.UnimplementedTasksServer
	pid    uint32
	exited *atomic.Bool
	// hangSecond makes every list after the first wait for the
	// caller's deadline.
	hangSecond bool
	lists      atomic.Int32
}

func (s *reuseTasks) List(ctx context.Context, _ *tasksapi.ListTasksRequest) (*tasksapi.ListTasksResponse, error) {
	if s.lists.Add(1) > 1 && s.hangSecond {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	status := task.Status_RUNNING
	if s.exited.Load() {
		status = task.Status_STOPPED
	}
	return &tasksapi.ListTasksResponse{Tasks: []*task.Process{{ID: "web", Pid: s.pid, Status: status}}}, nil
}

type reuseContainers struct {
	containersapi.UnimplementedContainersServer
	between func()
}

func (s *reuseContainers) List(context.Context, *containersapi.ListContainersRequest) (*containersapi.ListContainersResponse, error) {
	s.between()
	return &containersapi.ListContainersResponse{Containers: []*containersapi.Container{{ID: "web", Labels: map[string]string{
		vocab.LabelPodName: "web-0", vocab.LabelPodNamespace: "shop", vocab.LabelContainerName: "app"}}}}, nil
}

// TestListPIDReusedAfterTaskList: the task's process exits after the task
// list and another process (anyone's: a user forking onto the freed PID)
// takes its PID before the source reads the process's start time. The
// container was reported on that process, with its start time, which
// the trees' start time check then passed: the pod shown on the other
// process's namespaces. The tasks are listed again now; a task no longer
// alive on its PID is not reported. (The exit between the lists is
// made deterministic here by a containerd of the test's; a real one
// reports the task stopped a moment after its shim reaped the process,
// which frees the PID: the second list narrows the window to that
// moment, it does not close it.)
func TestListPIDReusedAfterTaskList(t *testing.T) {
	nstest.RequireRoot(t)
	victim := nstest.StartReused(t, nstest.RequireCmd(t, "sleep"), "1000")
	pid := victim.Pid
	var exited atomic.Bool
	// Reported by the test: the handler may outlive it.
	took := make(chan error, 1)
	var once sync.Once
	between := func() {
		once.Do(func() { // a second list has nothing to take
			victim.End()
			exited.Store(true)
			took <- victim.Take(nstest.RequireCmd(t, "sleep"), "1000")
		})
	}
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	namespacesapi.RegisterNamespacesServer(srv, reuseNamespaces{})
	tasksapi.RegisterTasksServer(srv, &reuseTasks{pid: uint32(pid), exited: &exited})
	containersapi.RegisterContainersServer(srv, &reuseContainers{between: between})
	go srv.Serve(ln)
	defer srv.Stop()

	// Time for the PID to be taken (the default 2 s is the daemon's).
	got, err := (&Source{Address: sock, Timeout: time.Minute}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-took:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("the containers were listed before the PID was taken")
	}
	if !victim.Taken() {
		t.Fatal("the PID was not taken again")
	}
	now, _ := inspect.StartTime(pid)
	for _, c := range got {
		if c.PID == pid {
			t.Errorf("container %s/%s (%s) reported on pid %d (start time %d; the process now there started at %d): its task exited, another process took the PID", c.Namespace, c.ID, c.Name, c.PID, c.StartTime, now)
		}
	}
}

// TestListSecondTaskListFails: the second task list, which shares the
// first's deadline, does not answer in time (a slow shim): the first
// list's answer stands, as before the second was asked; failing the
// namespace left every container of it unshown.
func TestListSecondTaskListFails(t *testing.T) {
	nstest.RequireRoot(t)
	sleeper := exec.Command(nstest.RequireCmd(t, "sleep"), "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tasks := &reuseTasks{pid: uint32(sleeper.Process.Pid), exited: new(atomic.Bool), hangSecond: true}
	namespacesapi.RegisterNamespacesServer(srv, reuseNamespaces{})
	tasksapi.RegisterTasksServer(srv, tasks)
	containersapi.RegisterContainersServer(srv, &reuseContainers{between: func() {}})
	go srv.Serve(ln)
	defer srv.Stop()
	got, err := (&Source{Address: sock, Timeout: 500 * time.Millisecond}).List(context.Background())
	if err != nil || len(got) != 1 || got[0].PID != sleeper.Process.Pid || tasks.lists.Load() != 2 {
		t.Errorf("%d task lists, containers %+v, err %v; want the second list asked and the running container from the first", tasks.lists.Load(), got, err)
	}
}
