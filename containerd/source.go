package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	corecontainers "github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// Source lists the running containers of one containerd daemon, in every
// containerd namespace, through the containerd v2 Go client. It works
// against containerd 1.6 and 2.x. Source implements
// [discover.ContainerSource].
type Source struct {
	// Address is the daemon's gRPC socket
	// ([vocab.DefaultContainerdAddress] if empty).
	Address string
	// Timeout bounds each List call ([vocab.DefaultContainerdTimeout] if
	// zero).
	Timeout time.Duration
}

// NewSource returns a source for the daemon at address (see
// [vocab.ContainerdAddress]).
func NewSource(address string) *Source { return &Source{Address: address} }

// Name implements [discover.ContainerSource].
func (s *Source) Name() string { return "containerd" }

func (s *Source) address() string {
	if s.Address == "" {
		return vocab.DefaultContainerdAddress
	}
	return s.Address
}

// List implements [discover.ContainerSource]: it returns every container
// with a running (or paused) task, with the task's host PID. Containers
// without a task, and tasks whose process has already exited, are left
// out. The call gives up at ctx's deadline or after s.Timeout, whichever
// comes first; an unreachable daemon is an error wrapping the cause.
func (s *Source) List(ctx context.Context) ([]discover.Container, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = vocab.DefaultContainerdTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := strings.TrimPrefix(s.address(), "unix://")
	if err := containers.CheckSocket(addr); err != nil {
		return nil, err
	}
	// Its PIDs must be this namespace's (a containerd in a container seen
	// from the host would put its containers on other processes here).
	if err := CheckPeerPIDNamespace(addr); err != nil {
		return nil, err
	}
	c, err := client.New(s.address(), client.WithTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: list namespaces: %w", addr, err)
	}
	slices.Sort(nss)
	// Namespaces are listed in parallel: listing tasks makes the daemon
	// ask every shim for its state, which dominates the cost.
	lists := make([][]discover.Container, len(nss))
	errs := make([]error, len(nss))
	var wg sync.WaitGroup
	for i, ns := range nss {
		wg.Go(func() {
			lists[i], errs[i] = listNamespace(namespaces.WithNamespace(ctx, ns), c, ns)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: namespace %q: %w", addr, ns, errs[i])
			}
		})
	}
	wg.Wait()
	return slices.Concat(lists...), errors.Join(errs...)
}

// listNamespace lists one containerd namespace: three RPCs (containers
// with their labels, tasks with their PIDs before and after their
// processes' start times are read) whatever the number of containers.
func listNamespace(ctx context.Context, c *client.Client, ns string) ([]discover.Container, error) {
	var (
		ctrs    []corecontainers.Container
		ctrsErr error
		wg      sync.WaitGroup
	)
	wg.Go(func() { ctrs, ctrsErr = c.ContainerService().List(ctx) })
	resp, err := c.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	if ctrsErr != nil {
		return nil, fmt.Errorf("list containers: %w", ctrsErr)
	}
	pids, err := taskPIDs(ctx, c, ctrs, resp.Tasks)
	if err != nil {
		return nil, err
	}
	// The processes as containerd named them: a later one given the same
	// PID is told apart by its start time. Read after the list, it could
	// be that later process's (the task's exited meanwhile, and a user
	// forked onto its PID), which the start time check then passed: the
	// tasks are listed again, and a PID counts only if its task was alive
	// on it at both lists. That narrows the window to the shim's own lag
	// (it reports the task stopped once it handled the exit it reaped, a
	// moment after the PID is free), not closes it. A second list that
	// fails (the deadline spent by a slow first one) keeps the first's
	// answer, as before it was asked, rather than fail the namespace.
	starts := make(map[string]uint64, len(pids))
	for id, pid := range pids {
		if start, err := inspect.StartTime(pid); err == nil {
			starts[id] = start
		}
	}
	if len(starts) > 0 {
		if resp, err := c.TaskService().List(ctx, &tasksapi.ListTasksRequest{}); err == nil {
			if again, err := taskPIDs(ctx, c, ctrs, resp.Tasks); err == nil {
				for id, pid := range pids {
					if again[id] != pid {
						delete(starts, id)
					}
				}
			}
		}
	}
	var out []discover.Container
	for _, ctr := range ctrs {
		start, ok := starts[ctr.ID]
		if !ok {
			continue // no task, or its process gone
		}
		// The pod's and the container's names from the keys CRI sets
		// on the spec, decoded up to [MaxSpecNames] bytes (a spec may be
		// 4 MiB: padded specs made the list miss its deadline). Not
		// from the labels: where no kubelet sets the io.kubernetes.*
		// labels (crictl, ctr), they are the image's, which CRI and ctr
		// copy into its containers' (an image labelled
		// kube-system/coredns named a plain ctr container so, and a
		// crictl container of another pod); a CRI container is never
		// named by a label. Another's name is nerdctl's, from the spec's
		// annotations, into which nerdctl puts its labels too (and
		// where the state source reads it), not from its label: ctr
		// copies an image's labels into its containers' (an image
		// labelled nerdctl/name=registry named a plain ctr container
		// so), not into their specs.
		var name string
		if spec := ctr.Spec.GetValue(); len(spec) <= MaxSpecNames {
			name = specPodName(spec, ctr.Labels[vocab.LabelCRIKind] == "sandbox")
			if _, cri := ctr.Labels[vocab.LabelCRIKind]; name == "" && !cri && bytes.Contains(spec, []byte(vocab.LabelNerdctlName)) {
				a, _ := SpecAnnotations(spec) // a name is not worth more
				name = vocab.NerdctlName(a)
			}
		}
		out = append(out, discover.Container{
			ID:        ctr.ID,
			Engine:    containers.EngineContainerd,
			Namespace: ns,
			PID:       pids[ctr.ID],
			StartTime: start,
			Name:      name,
		})
	}
	return out, nil
}

// taskPIDs returns the PIDs of the live tasks of ctrs, from a task list.
// containerd 2.x leaves out of the list, without an error, a task whose
// shim did not answer its state call in time (a stopped or stuck shim):
// a container without a listed task is asked for its own, and one whose
// task does not answer fails the namespace, as a list that fails does.
// (Usually none: containers without a task have none to find, at one
// quick call each.)
func taskPIDs(ctx context.Context, c *client.Client, ctrs []corecontainers.Container, tasks []*task.Process) (map[string]int, error) {
	pids := make(map[string]int, len(tasks))
	listed := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		listed[t.ID] = true
		if t.Pid == 0 || !TaskAlive(t.Status) {
			continue
		}
		pids[t.ID] = int(t.Pid)
	}
	var ask []string
	for _, ctr := range ctrs {
		if !listed[ctr.ID] {
			ask = append(ask, ctr.ID)
		}
	}
	// Asked side by side, a few at a time: a node keeps every exited
	// container the kubelet has not removed (a Job's), thousands of
	// them, at some 0.3 ms a call asked one after the other (5,000 took
	// 1.9 s of the 2 s deadline).
	type answer struct {
		id  string
		pid int
		err error
	}
	ids := make(chan string)
	answers := make(chan answer, len(ask)) // no worker waits to answer
	workers := min(len(ask), maxTaskGets)
	for range workers {
		go func() {
			for id := range ids {
				got, err := c.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: id})
				a := answer{id: id}
				switch {
				case errdefs.IsNotFound(errgrpc.ToNative(err)):
				case err != nil:
					a.err = fmt.Errorf("task of container %s: %w", vocab.Printable(id), err)
				case got.Process != nil && got.Process.Pid != 0 && TaskAlive(got.Process.Status):
					a.pid = int(got.Process.Pid) // started since the list
				}
				answers <- a
			}
		}()
	}
	go func() {
		defer close(ids)
		for _, id := range ask {
			select {
			case ids <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	var first error
	for range ask {
		var a answer
		select {
		case a = <-answers:
		case <-ctx.Done():
			// The workers' calls end with the context too; their
			// answers are not waited for.
			return nil, fmt.Errorf("tasks of %d container(s) not listed: %w", len(ask), ctx.Err())
		}
		if a.err != nil && first == nil {
			first = a.err
		}
		if a.pid != 0 {
			pids[a.id] = a.pid
		}
	}
	if first != nil {
		return nil, first
	}
	return pids, nil
}

// maxTaskGets bounds the task calls taskPIDs makes at once.
const maxTaskGets = 16

// specPodName returns the pod and container name (see
// [vocab.ContainerName]) from the annotations CRI sets on a container's
// OCI spec (JSON; io.kubernetes.cri.sandbox-namespace, sandbox-name,
// container-name, none other: a pod's annotation of a kubelet key that
// containerd's pod_annotations passes is its author's), decoding it only
// when it mentions them. A sandbox has no container name.
func specPodName(spec []byte, sandbox bool) string {
	if !bytes.Contains(spec, []byte(vocab.AnnotationSandboxName)) {
		return ""
	}
	a, _ := SpecAnnotations(spec) // a name is not worth more
	cri := map[string]string{}
	for _, k := range []string{vocab.AnnotationSandboxName, vocab.AnnotationSandboxNamespace, vocab.AnnotationContainerName} {
		if v, ok := a[k]; ok {
			cri[k] = v
		}
	}
	if sandbox || a[vocab.CRIAnnotationPrefix+"container-type"] == "sandbox" {
		vocab.DropSandboxContainerName(cri)
	}
	return vocab.ContainerName(cri)
}

// MaxSpecNames bounds the spec a listing decodes for a container's pod
// name (a larger one is listed without its name): 1 MiB, about 8 ms to
// decode; a container's spec is some 30 KiB, and one a user padded to
// [MaxSpec] took 26 ms, 40 of them a second.
const MaxSpecNames = 1 << 20

// MaxSpec bounds the container spec read for annotations.
const MaxSpec = 4 << 20

// ErrSpecUnread is the error of a spec whose annotations are unknown:
// larger than [MaxSpec], or not JSON.
var ErrSpecUnread = errors.New("container spec not read for its annotations")

// SpecAnnotations returns the annotations of an OCI spec (JSON). A spec
// larger than [MaxSpec] or that does not decode has none known: nil and
// an error wrapping [ErrSpecUnread] (a caller choosing a policy by
// annotation must not take that for a spec without annotations).
func SpecAnnotations(spec []byte) (map[string]string, error) {
	if len(spec) > MaxSpec {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrSpecUnread, len(spec), MaxSpec)
	}
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrSpecUnread, vocab.Printable(err.Error()))
	}
	return s.Annotations, nil
}

// TaskAlive says whether a task in this status has its process: running,
// or paused (or pausing), which freezes the process without ending it.
func TaskAlive(s task.Status) bool {
	return s == task.Status_RUNNING || s == task.Status_PAUSED || s == task.Status_PAUSING
}
