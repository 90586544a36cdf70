package nriplugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/vocab"
)

// DefaultSocket is the runtime's default NRI socket.
const DefaultSocket = "/var/run/nri/nri.sock"

// DefaultTimeout bounds the check of one NRI request: below
// containerd's plugin_request_timeout (2 s by default). A plugin that
// answers later is disconnected by containerd, and the container starts
// unchecked.
const DefaultTimeout = 1500 * time.Millisecond

// Plugin is an NRI (Node Resource Interface) plugin for containerd 1.7+
// and CRI-O: at RunPodSandbox and StartContainer, when the container's
// namespaces exist but its process has not run yet, it inspects the
// process, evaluates the nsrel-hook policy, appends a start record (source
// [audit.SourceNRI]) unless nsrel-hook already recorded this process, and in
// enforce mode refuses a violating container by failing the request, so
// the runtime does not start it. NRI only sees CRI (Kubernetes)
// containers, not ctr or Go client ones.
type Plugin struct {
	// Config is the nsrel-hook configuration (policy, annotations, on_error).
	Config *policy.Config
	// Log is the audit log to append to.
	Log *audit.Log
	// Logger receives diagnostics; nil discards them.
	Logger logrus.FieldLogger
	// Inspect reads a process's ancestry; nil means [inspect.Process].
	Inspect func(pid int) (*audit.Ancestry, error)
	// Registered, if set, is called once the runtime accepted the plugin.
	Registered func()
	// Timeout bounds the check of one request, waiting for the audit
	// log's lock included ([DefaultTimeout] if zero); a check that
	// runs out of time counts as an error that on_error decides, so a
	// slow audit log refuses containers under on_error=deny instead of
	// getting the plugin dropped.
	Timeout time.Duration
}

// Run registers the plugin as "nsrel" (index idx, e.g. "10") on the
// runtime's NRI socket and serves until ctx is done (then it returns nil)
// or the runtime closes the connection (an error: restart the plugin).
func (p *Plugin) Run(ctx context.Context, socket, idx string) error {
	if socket == "" {
		socket = DefaultSocket
	}
	closed := make(chan struct{})
	s, err := stub.New(p, stub.WithPluginName("nsrel"), stub.WithPluginIdx(idx), stub.WithSocketPath(socket),
		stub.WithOnClose(func() { close(closed) }))
	if err != nil {
		return fmt.Errorf("nri: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("nri: register on %s: %w", socket, err)
	}
	p.logger().WithField("socket", socket).Info("registered as NRI plugin")
	if p.Registered != nil {
		p.Registered()
	}
	select {
	case <-ctx.Done():
		s.Stop()
		s.Wait()
		return nil
	case <-closed:
		s.Stop()
		return fmt.Errorf("nri: the runtime closed the connection on %s", socket)
	}
}

// RunPodSandbox records (and may refuse) the pod's sandbox container.
func (p *Plugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	md := maps.Clone(pod.GetAnnotations())
	if md == nil {
		md = map[string]string{}
	}
	maps.Copy(md, pod.GetLabels())
	md[vocab.AnnotationSandboxName], md[vocab.AnnotationSandboxNamespace] = pod.GetName(), pod.GetNamespace()
	return p.start(ctx, pod.GetId(), int(pod.GetPid()), md)
}

// StartContainer records (and may refuse) a container of a pod.
func (p *Plugin) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	md := maps.Clone(ctr.GetLabels())
	if md == nil {
		md = map[string]string{}
	}
	maps.Copy(md, ctr.GetAnnotations())
	// The pod's name and namespace come from the runtime, the container's
	// labels and annotations from whoever made the container: always take
	// the pod's, over anything the container claims, so that a policy
	// block selected by the trusted io.kubernetes.cri.sandbox-namespace
	// (trusted_selectors in docs/hook.md) cannot be picked by a container
	// of another pod.
	md[vocab.AnnotationSandboxName], md[vocab.AnnotationSandboxNamespace] = pod.GetName(), pod.GetNamespace()
	return p.start(ctx, ctr.GetId(), int(ctr.GetPid()), md)
}

func (p *Plugin) start(ctx context.Context, id string, pid int, md map[string]string) error {
	log := p.logger().WithFields(logrus.Fields{"container": id, "pid": pid})
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A missing pid (a runtime too old to send it) cannot be inspected:
	// the record says so and on_error decides, as for any other
	// inspection failure.
	rec, _ := hook.Decide(p.Config, hook.Input{Stage: audit.StageStart, Source: audit.SourceNRI, ID: id, PID: pid, Meta: md, Inspect: p.Inspect})
	var startTime uint64
	if rec.Ancestry != nil {
		startTime = rec.StartTime
	}
	got, err := p.Log.AppendStart(ctx, rec, pid, startTime)
	if err != nil {
		log.WithError(err).Error("audit log append failed")
		if p.Config.OnError == policy.OnErrorDeny {
			return fmt.Errorf("nsrel: container %s: cannot write the audit record (on_error=deny): %w", vocab.Printable(id), err)
		}
		return nil
	}
	if got == nil {
		log.Debug("start already recorded (nsrel-hook)")
		return nil
	}
	log = log.WithFields(logrus.Fields{"seq": got.Seq, "verdict": got.Verdict})
	if got.Verdict == audit.VerdictDeny {
		msg := hook.DenyMessage(got)
		log.Warn(msg)
		return errors.New("nsrel: " + msg)
	}
	log.Info("recorded start")
	return nil
}

func (p *Plugin) logger() logrus.FieldLogger { return logging.OrDiscard(p.Logger) }
