package nriplugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/containerd/nri/pkg/stub"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
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

// StageInjectionRefused is the stage of the record [Plugin] writes when
// the runtime refused its hook injection (containerd's default validator
// with reject_oci_hook_adjustment, or another validator): the record's
// ContainerID names the container whose creation failed, its Error says
// why, and from then on the plugin no longer injects and validates at
// StartContainer only.
const StageInjectionRefused = "hook-injection-refused"

// StageHookMissing is the stage of the record [Plugin] writes for a
// container that reaches StartContainer without the injected hook in its
// final spec (a runtime that drops hook adjustments): the plugin
// validates it at StartContainer instead.
const StageHookMissing = "hook-missing"

// StageInjectionResumed is the stage of the record [Plugin] writes when
// the runtime took an injection again after the plugin stopped
// injecting on the node (see [Plugin.ProbeAfter]).
const StageInjectionResumed = "hook-injection-resumed"

// DefaultProbeAfter is [Plugin.ProbeAfter] when zero.
const DefaultProbeAfter = 5 * time.Minute

// Injection says which nsrel-hook the plugin injects, as host paths:
// the runtime runs the hook on the host, not in the plugin's container.
type Injection struct {
	// Hook is nsrel-hook's path on the host.
	Hook string
	// Config is the hook's config file on the host.
	Config string
}

// Plugin is an NRI (Node Resource Interface) plugin for containerd 1.7+
// and CRI-O: at RunPodSandbox and StartContainer, when the container's
// namespaces exist but its process has not run yet, it inspects the
// process, evaluates the nsrel-hook policy, appends a start record (source
// [audit.SourceNRI]) unless nsrel-hook already recorded this process, and in
// enforce mode refuses a violating container by failing the request, so
// the runtime does not start it. A container it refuses has a deny record
// in the log, its own after another writer's record that allowed the
// start; one it lets start has an allow record, its own after another
// writer's record that refused the start (which that writer could not
// enforce). NRI only sees CRI (Kubernetes) containers, not ctr or Go
// client ones.
type Plugin struct {
	// Config is the nsrel-hook configuration (policy, annotations, on_error).
	Config *policy.Config
	// Log is the audit log to append to.
	Log *audit.Log
	// Logger receives diagnostics, the NRI stub's included; nil discards
	// them. Entries are logged inside requests and the registration: a
	// logger must not wait for its target, stderr included
	// (logging.Service queues them).
	Logger logrus.FieldLogger
	// Inspect reads a process's ancestry; nil means
	// [inspect.ProcessWith] (see [hook.Input]).
	Inspect inspect.Func
	// Registered, if set, is called once the runtime accepted the plugin.
	Registered func()
	// Inject, if set, makes CreateContainer add nsrel-hook at the
	// createRuntime and poststop stages of every container through the
	// NRI adjustment, so that the runtime runs the hook's check, veto
	// and record at the stage that can refuse. StartContainer still
	// checks; it records nothing when the hook did (one start record
	// per container), and refuses by its own check and on_error
	// whatever the hook's record says, appending a deny record of its
	// own after the hook's allow record. When the runtime undoes an injected creation
	// before PostCreateContainer, the plugin writes a
	// [StageInjectionRefused] record and stops injecting into that pod
	// (on the node: see [Plugin.RemoveContainer]).
	Inject *Injection
	// Timeout bounds the check of one request, waiting for the audit
	// log's lock included ([DefaultTimeout] if zero); a check that
	// runs out of time counts as an error that on_error decides, so a
	// slow audit log refuses containers under on_error=deny instead of
	// getting the plugin dropped. While [Plugin.Run] runs, checkpoints
	// are shipped after the answer ([audit.Log.ShipInBackground]).
	Timeout time.Duration
	// ProbeAfter is how long after it stopped injecting on the node
	// the plugin injects into one container again, to see whether the
	// runtime takes it now ([DefaultProbeAfter] if zero): undone
	// creations in two pods look like a validator refusing every hook,
	// but a pod author can cause them at will (on a plugin that just
	// started, before any injection was confirmed), and injection must
	// not stay off for the node's other pods.
	ProbeAfter time.Duration
	// ProbeGiveUp is how long after a probe of which nothing more was
	// heard (its PostCreateContainer, start and removal all missed) the
	// plugin gives it up and may try another (ProbeAfter, at least
	// [DefaultProbeAfter], if zero).
	ProbeGiveUp time.Duration
	// CheckpointEvery is how often [Plugin.Run] asks whether a
	// checkpoint is due by time although nothing was appended
	// ([audit.Log.CheckpointIfDue]), so that a quiet node still ships
	// its chain's head; [DefaultCheckpointEvery] if zero.
	CheckpointEvery time.Duration

	mu sync.Mutex
	// pending holds the containers whose injection the runtime has
	// not confirmed yet (CreateContainer seen, PostCreateContainer not),
	// with their pods' IDs.
	pending map[string]string
	// confirmed is set once the runtime took an injection.
	confirmed bool
	// refusedPods are the pods in which the runtime undid the creation
	// of a container the plugin injected into; refused is set once that
	// happened in two pods while no injection was ever confirmed.
	refusedPods map[string]bool
	refused     bool
	// refusedAt is when injection stopped on the node, or the last
	// probe was undone; probing is the container of the probe under
	// way ("" when none).
	refusedAt time.Time
	probing   string
	probedAt  time.Time
	// injected are the containers the plugin injected into, until they
	// start or are removed: only those can lack the hook at start.
	injected map[string]bool
	// late are starts whose append failed, allowed under on_error=allow
	// or refused, and the plugin's own records whose append failed or
	// that came while records waited ([Plugin.note]), oldest first,
	// appended later in that order (see
	// [Plugin.appendLater]); retrying says the goroutine that appends
	// them runs.
	late     []lateStart
	retrying bool
	// stopLate, closed when [Plugin.Run] returns, stops the goroutine
	// that appends late starts (retried, which Run waits for), so that
	// Run appends what is left itself.
	stopLate chan struct{}
	retried  sync.WaitGroup
	// flushing is set once Run appends the late records itself.
	flushing bool
	// active counts the requests under way ([Plugin.handle]), each
	// from its handler's entry, before any work, until the handler
	// returns: Run waits for them before it appends the late records,
	// since one cut short by the stop may add one, also one that had
	// not reached its check when the stop came. stopped is set once
	// Run counted what it could not append: a record queued later is
	// lost, and counted so among the requests still under way then.
	active  int
	stopped bool
	// entered, set by tests, is called by each handler once it counts
	// itself under way, before any work.
	entered func()
	// synced, set by tests, is called once Synchronize's records are
	// written (or queued to be written late).
	synced func()
	// syncing counts Synchronize's goroutines under way, unsynced the
	// containers they have yet to record (mu).
	syncing, unsynced int
	// writing is the late record being appended, which a drop beyond
	// MaxLate must not take.
	writing *audit.Record
	// unreported counts starts dropped beyond MaxLate whose count no
	// record carries (the record that should have said it was another
	// writer's already): Run counts them as lost.
	unreported lateCount
	// droppedNew counts the refusals dropped as they came, beyond
	// MaxLate (and the drops their records were to carry), for the
	// next start queued to say; Run counts them as lost if none is.
	droppedNew lateCount
	// shipping is Log as [Plugin.Run] uses it: shipping checkpoints in
	// the background, so that no answer waits for their destinations.
	shipping *audit.Log
}

// lateStart is a start record to append later, with what AppendStart
// needs to tell whether another writer recorded the start meanwhile, or
// a record of the plugin's own (note), appended as it is.
type lateStart struct {
	rec       *audit.Record
	pid       int
	startTime uint64
	// note says rec is a record of the plugin's own ([Plugin.note]):
	// hook-injection-refused, hook-injection-resumed or hook-missing.
	note bool
	// running says rec is the start of a container found running at
	// registration ([Plugin.Synchronize]): it ran, whatever its verdict;
	// it is appended as [Plugin.recordRunning] appends it, checked
	// being what its check said (rec's error before the notes).
	running bool
	checked string
	// late is what queueLate added to rec's error: why it is late.
	late string
	// dropped counts the records dropped before this one (beyond
	// [MaxLate]): its record says so.
	dropped lateCount
}

// lateCount counts late records dropped or lost: ran, the starts
// allowed (their containers ran), refused, the refusals (their
// containers did not run, though another writer's record may say
// allowed), and notes, the plugin's own records (where it stopped or
// resumed injecting, or found the hook missing); unfinished, only at
// the stop, counts the requests still under way when Run stopped
// waiting for them, whose records, if they make any, may be lost;
// unsynced, only at the stop, the containers found running at
// registration ([Plugin.Synchronize]) not recorded yet.
type lateCount struct{ ran, refused, notes, unfinished, unsynced int }

// countOf is the count of l, one record.
func countOf(l lateStart) lateCount {
	switch {
	case l.note:
		return lateCount{notes: 1}
	case l.running:
		// Its container runs, and the next registration records it.
		return lateCount{unsynced: 1}
	case l.rec.Verdict == audit.VerdictDeny:
		return lateCount{refused: 1}
	}
	return lateCount{ran: 1}
}

func (c lateCount) plus(o lateCount) lateCount {
	return lateCount{ran: c.ran + o.ran, refused: c.refused + o.refused, notes: c.notes + o.notes, unfinished: c.unfinished + o.unfinished, unsynced: c.unsynced + o.unsynced}
}

func (c lateCount) zero() bool { return c == lateCount{} }

// dropped says, for a record's error, that the records c counts were
// dropped before it.
func (c lateCount) dropped() string {
	var s string
	if c.ran > 0 {
		s = fmt.Sprintf("%d starts waiting before it were dropped (more than %d waited): their containers ran unrecorded", c.ran, MaxLate)
	}
	if c.refused > 0 {
		s = vocab.JoinErrors(s, fmt.Sprintf("%d refusals waiting before it were dropped (more than %d waited): their containers did not run, which no record of the NRI plugin says", c.refused, MaxLate))
	}
	if c.notes > 0 {
		s = vocab.JoinErrors(s, fmt.Sprintf("%d records of the NRI plugin's own waiting before it were dropped (more than %d waited): where it stopped or resumed injecting nsrel-hook, or found it missing, is not recorded", c.notes, MaxLate))
	}
	if c.unsynced > 0 {
		s = vocab.JoinErrors(s, fmt.Sprintf("%d records of containers found running at registration waiting before it were dropped (more than %d waited): the next registration records them", c.unsynced, MaxLate))
	}
	return s
}

// lost says that the records c counts are lost at the stop.
func (c lateCount) lost() error {
	var msgs []string
	if c.ran > 0 {
		msgs = append(msgs, fmt.Sprintf("stopping with %d start records the audit log did not take; they are lost", c.ran))
	}
	if c.refused > 0 {
		msgs = append(msgs, fmt.Sprintf("stopping with %d refusal records the audit log did not take (their containers did not run); they are lost", c.refused))
	}
	if c.notes > 0 {
		msgs = append(msgs, fmt.Sprintf("stopping with %d records of the plugin's own (hook injection refused or resumed, hook missing) the audit log did not take; they are lost", c.notes))
	}
	if c.unfinished > 0 {
		msgs = append(msgs, fmt.Sprintf("stopping with %d requests still under way past the wait for them; a record they do not append at once is lost", c.unfinished))
	}
	if c.unsynced > 0 {
		msgs = append(msgs, fmt.Sprintf("stopping with %d containers found running at registration, which the audit log may lack, not recorded yet; the next registration records them", c.unsynced))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// shipWait bounds how long [Plugin.Run] waits, when it stops, for the
// checkpoints still being shipped.
const shipWait = 5 * time.Second

// DefaultCheckpointEvery is how often the plugin checks whether a
// checkpoint is due by time, as the event recorder does at each resync.
const DefaultCheckpointEvery = 30 * time.Second

// MaxLate bounds the records the plugin keeps to append later (starts,
// and its own: see [Plugin.note]); beyond it the oldest refusal waiting
// is dropped, else the refusal that comes, else the oldest record (the
// start of a container that ran goes only for another start or note),
// with an error in the diagnostics, and the record queued after the one
// dropped says so.
const MaxLate = 10000

// Run registers the plugin as "nsrel" (index idx, e.g. "10") on the
// runtime's NRI socket and serves until ctx is done (then it returns nil)
// or the runtime closes the connection (an error: restart the plugin).
func (p *Plugin) Run(ctx context.Context, socket, idx string) (err error) {
	if socket == "" {
		socket = DefaultSocket
	}
	p.warnImageName()
	// The runtime's PIDs must be this process's: it pins them.
	if err := containerd.CheckPeerPIDNamespace(socket); err != nil {
		return fmt.Errorf("nri: %w", err)
	}
	// A record is durable when its append returns; the checkpoint an
	// append emits is shipped after the answer, not before: a collector
	// that hangs must not make the plugin answer after the runtime's
	// plugin timeout (the runtime then drops the answer and starts the
	// container unchecked).
	bg, stopShipping := p.Log.ShipInBackground()
	p.mu.Lock()
	p.shipping = bg
	p.stopLate = make(chan struct{})
	p.mu.Unlock()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shipWait)
		stopShipping(sctx)
		cancel()
	}()
	// Starts and notes still waiting for the log get a last try (after
	// the runtime's connection is gone: no new request comes then, and
	// flushLate waits for those under way); those the log does not take
	// are lost, and Run says so, as it does of requests still under way
	// past the wait.
	defer func() {
		if lost := p.flushLate(); !lost.zero() {
			lerr := lost.lost()
			if err == nil {
				err = fmt.Errorf("nri: %w", lerr)
			} else {
				err = fmt.Errorf("%w; %w", err, lerr)
			}
		}
	}()
	closed := make(chan struct{})
	// The stub's own diagnostics go to the plugin's logger: left to
	// itself it logs through logrus's standard logger, straight to
	// stderr and waiting for it, in its registration and Configure too.
	s, err := stub.New(p, stub.WithPluginName("nsrel"), stub.WithPluginIdx(idx), stub.WithSocketPath(socket),
		stub.WithOnClose(func() { close(closed) }), stub.WithLogger(stubLogger{p.logger()}))
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
	every := p.CheckpointEvery
	if every <= 0 {
		every = DefaultCheckpointEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Stop()
			s.Wait()
			return nil
		case <-closed:
			s.Stop()
			return fmt.Errorf("nri: the runtime closed the connection on %s", socket)
		case <-tick.C:
			// A quiet node still ships its chain's head when one is due.
			cctx, cancel := context.WithTimeout(ctx, p.timeout())
			if err := bg.CheckpointIfDue(cctx); err != nil {
				p.logger().WithError(err).Warn("checkpoint")
			}
			cancel()
		}
	}
}

// warnImageName says, at the start, what the config asks of
// [vocab.AnnotationImageName] that the plugin cannot do: it has no
// trustworthy value of it (see criKeys), so a block selecting on it
// that enforces judges, here, every container its other selectors
// select, one in audit mode exempts none, and records lack the key.
func (p *Plugin) warnImageName() {
	var blocks []string
	for _, b := range p.Config.Policies {
		if b.Match != nil && slices.ContainsFunc(b.Match.Annotations, func(m policy.AnnotationMatch) bool { return m.Key == vocab.AnnotationImageName }) {
			blocks = append(blocks, vocab.Quote(b.Name))
		}
	}
	recorded := slices.Contains(p.Config.RecordAnnotations, vocab.AnnotationImageName)
	if len(blocks) == 0 && !recorded {
		return
	}
	log := p.logger().WithField("annotation", vocab.AnnotationImageName)
	if len(blocks) > 0 {
		log = log.WithField("blocks", strings.Join(blocks, ","))
	}
	log.Warn("the NRI plugin has no trustworthy image name (NRI sends one of containerd's names of the image's content, which whoever pulls or tags the same content chooses): a block that selects on it and enforces refuses here every container its other selectors select and it refuses (it may be the container's block), one in audit mode exempts none, and the plugin's records lack the name")
}

// RunPodSandbox records (and may refuse) the pod's sandbox container.
func (p *Plugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	defer p.handle()()
	ctx, cancel := p.requestContext(ctx)
	defer cancel()
	// CRI sets no image name on a sandbox's spec: a block selecting on
	// it does not select a sandbox, in the hook or here.
	return p.start(ctx, pod.GetId(), int(pod.GetPid()), sandboxMeta(pod), kubeletNames(pod, nil), pod.GetAnnotations(), nil)
}

// sandboxMeta returns what selects a pod sandbox's block: its
// annotations but the kubelet's keys ([dropKubeletKeys]), and the keys
// CRI sets from the runtime's pod.
func sandboxMeta(pod *api.PodSandbox) map[string]string {
	// No other label: nsrel-hook never sees labels, and the pod's author
	// writes them (a label of a key the config trusts, one an admission
	// webhook guards on the pod's annotations, picked the pod's block).
	// The kubelet's keys select nothing: the records name the pod the
	// runtime sends ([kubeletNames]).
	md := maps.Clone(pod.GetAnnotations())
	if md == nil {
		md = map[string]string{}
	}
	dropKubeletKeys(md)
	// The pod's author writes its annotations: the keys CRI
	// sets (io.kubernetes.cri.*, which trusted_selectors may trust) come
	// from the runtime's pod only, as CRI sets them on the sandbox's
	// spec; a sandbox has no container name.
	sandboxKeys(md, pod)
	return md
}

// sandboxKeys sets in md, a pod's annotations as NRI sends them, the
// keys containerd's CRI sets on a sandbox's spec
// (io.kubernetes.cri.*), from the pod the runtime sends, and removes
// every other key of theirs (and a container name, which a sandbox has
// not): container-type sandbox, and the pod's ID, UID, name and
// namespace, each when the runtime sends it (see [setSent]).
func sandboxKeys(md map[string]string, pod *api.PodSandbox) {
	maps.DeleteFunc(md, func(k, _ string) bool { return strings.HasPrefix(k, vocab.CRIAnnotationPrefix) })
	vocab.DropSandboxContainerName(md)
	md[vocab.CRIAnnotationPrefix+"container-type"] = "sandbox"
	setSent(md, map[string]string{
		vocab.AnnotationSandboxID: pod.GetId(), vocab.CRIAnnotationPrefix + "sandbox-uid": pod.GetUid(),
		vocab.AnnotationSandboxName: pod.GetName(), vocab.AnnotationSandboxNamespace: pod.GetNamespace(),
	})
}

// setSent sets in md each key of kv whose value the runtime sent (not
// empty); one it did not send is left out, as from a spec CRI wrote,
// so that a block selecting on it (even with a pattern that matches
// the empty string) selects as it would in nsrel-hook.
func setSent(md, kv map[string]string) {
	for k, v := range kv {
		if v != "" {
			md[k] = v
		}
	}
}

// CreateContainer adds nsrel-hook at createRuntime and poststop to the
// container's spec when [Plugin.Inject] is set and the runtime has not
// refused an injection in its pod (or on the node) before.
func (p *Plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	if p.Inject == nil {
		return nil, nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refusedPods[pod.GetId()] {
		return nil, nil, nil
	}
	probeAfter := cmp.Or(p.ProbeAfter, DefaultProbeAfter)
	if p.probing != "" && time.Since(p.probedAt) >= cmp.Or(p.ProbeGiveUp, max(probeAfter, DefaultProbeAfter)) {
		// Neither taken, undone nor started since (its events were
		// missed): given up, so that another can be tried.
		delete(p.pending, p.probing)
		delete(p.injected, p.probing)
		p.probeFailed()
	}
	if p.refused && (p.probing != "" || time.Since(p.refusedAt) < probeAfter) {
		return nil, nil, nil
	}
	// A spec that runs nsrel-hook already (containerd's
	// base_runtime_spec, at whatever path: [Plugin.isHook]) is not given
	// it a second time.
	if slices.ContainsFunc(ctr.GetHooks().GetCreateRuntime(), p.isHook) {
		return nil, nil, nil
	}
	if p.refused {
		p.probing, p.probedAt = ctr.GetId(), time.Now() // one container, to see whether the runtime takes it now
	}
	if p.injected == nil {
		p.injected = map[string]bool{}
	}
	p.injected[ctr.GetId()] = true
	if p.pending == nil {
		p.pending = map[string]string{}
	}
	p.pending[ctr.GetId()] = pod.GetId()
	h := containerd.Hooks(p.Inject.Hook, p.Inject.Config)
	adj := &api.ContainerAdjustment{}
	adj.AddHooks(&api.Hooks{CreateRuntime: api.FromOCIHooks(&h).CreateRuntime, Poststop: api.FromOCIHooks(&h).Poststop})
	return adj, nil, nil
}

// PostCreateContainer confirms that the runtime took the injection; a
// probe that got through turns injection on again on the node.
func (p *Plugin) PostCreateContainer(ctx context.Context, _ *api.PodSandbox, ctr *api.Container) error {
	defer p.handle()()
	p.mu.Lock()
	resumed := false
	if _, ok := p.pending[ctr.GetId()]; ok {
		resumed = p.taken(ctr.GetId())
	}
	p.mu.Unlock()
	if resumed {
		p.noteResumed(ctx, ctr.GetId())
	}
	return nil
}

// taken notes, under p.mu, that the runtime took the injection into
// the pending container id, and reports whether that turned injection
// on again on the node: the probe, or a container injected before it
// stopped.
func (p *Plugin) taken(id string) bool {
	delete(p.pending, id)
	p.confirmed = true
	if !p.refused {
		return false
	}
	p.refused, p.probing = false, ""
	return true
}

// noteResumed records that injection is on again on the node, as the
// runtime took the injection into container id.
func (p *Plugin) noteResumed(ctx context.Context, id string) {
	p.note(ctx, id, StageInjectionResumed, "the runtime took an injection again after injection had stopped on this node: injecting again")
}

// probeFailed notes, under p.mu, that the probe under way was refused
// or is given up: another is tried ProbeAfter from now.
func (p *Plugin) probeFailed() {
	p.probing, p.refusedAt = "", time.Now()
}

// StopContainer notices a creation the runtime undid after an injection
// (see [Plugin.RemoveContainer]).
func (p *Plugin) StopContainer(ctx context.Context, _ *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	defer p.handle()()
	p.undone(ctx, ctr.GetId())
	return nil, nil
}

// RemovePodSandbox forgets the pod: whether injection stopped in it.
func (p *Plugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.mu.Lock()
	delete(p.refusedPods, pod.GetId())
	p.mu.Unlock()
	return nil
}

// RemoveContainer notices a creation the runtime undid after an
// injection: containerd undoes a failed creation with StopContainer and
// RemoveContainer, and a container the plugin injected that is removed
// before PostCreateContainer failed for a reason the plugin is not told:
// a validator that rejects OCI hook adjustments, or anything else about
// that container (another plugin, a required plugin its pod names, a
// timeout), which its pod's author may cause at will. The plugin records
// it and stops injecting into that pod's containers, which it validates
// at StartContainer only (the runtime's client retries the creation, as
// the kubelet does); it stops injecting on the node only once that
// happened in two pods while the runtime never took an injection, which
// is what a validator refusing every hook looks like. A pod cannot turn
// injection off for others where injection works.
func (p *Plugin) RemoveContainer(ctx context.Context, _ *api.PodSandbox, ctr *api.Container) error {
	defer p.handle()()
	p.undone(ctx, ctr.GetId())
	return nil
}

func (p *Plugin) undone(ctx context.Context, id string) {
	p.mu.Lock()
	podID, wasPending := p.pending[id]
	delete(p.pending, id)
	delete(p.injected, id)
	if wasPending && id == p.probing {
		// Still refused: try again later, not in this pod (a pod author
		// whose creations always fail would otherwise take every probe).
		p.probeFailed()
		if p.refusedPods == nil {
			p.refusedPods = map[string]bool{}
		}
		p.refusedPods[podID] = true
		p.mu.Unlock()
		return
	}
	firstInPod := wasPending && !p.refused && !p.refusedPods[podID]
	if firstInPod {
		if p.refusedPods == nil {
			p.refusedPods = map[string]bool{}
		}
		p.refusedPods[podID] = true
	}
	node := firstInPod && !p.confirmed && len(p.refusedPods) >= 2
	if node {
		p.refused, p.refusedAt = true, time.Now()
	}
	p.mu.Unlock()
	switch {
	case node:
		p.note(ctx, id, StageInjectionRefused, "the runtime undid the creation of a container nsrel-hook was injected into, in a second pod, and never took an injection (a validator refusing OCI hook adjustments?): no more injection on this node, validating at StartContainer; one container is injected again now and then to see whether the runtime takes it")
	case firstInPod:
		p.note(ctx, id, StageInjectionRefused, "the runtime undid the creation of a container nsrel-hook was injected into (a validator refusing OCI hook adjustments, or another failure of this container): no more injection into its pod "+vocab.Printable(podID)+", validating at StartContainer")
	}
}

// isHook reports whether h runs nsrel-hook: at the path the plugin
// injects, or at any other path (a base_runtime_spec's, a host install
// beside the DaemonSet's), told by the file name of its path or its
// args[0] ([vocab.HookName]).
func (p *Plugin) isHook(h *api.Hook) bool {
	if p.Inject != nil && h.GetPath() == p.Inject.Hook {
		return true
	}
	if path.Base(h.GetPath()) == vocab.HookName {
		return true
	}
	args := h.GetArgs()
	return len(args) > 0 && path.Base(args[0]) == vocab.HookName
}

// Refused reports whether the plugin stopped injecting on the node, so
// that it validates at StartContainer only.
func (p *Plugin) Refused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// RefusedIn reports whether the plugin stopped injecting into the
// containers of pod podID (or on the node).
func (p *Plugin) RefusedIn(podID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused || p.refusedPods[podID]
}

// note appends a record of the plugin's own (no verdict) and logs it;
// one the log does not take in time is written late, in the queue of
// the late starts ([Plugin.appendLater]), and so is one that comes
// while records wait there, behind them without trying the log: the
// plugin's records are written in the order they were due (appended at
// once, a hook-injection-resumed would come before the refusals it
// ends, and the node would read as refused from then on).
func (p *Plugin) note(ctx context.Context, id, stage, msg string) {
	log := p.logger().WithFields(logrus.Fields{"container": id, "stage": stage})
	log.Warn(msg)
	rec := audit.Record{Source: audit.SourceNRI, Stage: stage, ContainerID: id, Error: msg, Version: vocab.Version}
	p.mu.Lock()
	waiting := len(p.late)
	p.mu.Unlock()
	if waiting > 0 {
		log.WithField("waiting", waiting).Info("written late, behind the records waiting")
		p.queueLate(lateStart{rec: &rec, note: true}, "records the audit log had not taken waited before it", nil)
		return
	}
	// Within the runtime's time for the request, as a check.
	ctx, cancel := p.requestContext(ctx)
	defer cancel()
	c := rec // the append fills in what it writes
	if err := p.log().Append(ctx, &c); err != nil {
		log.WithError(err).Error("audit log append failed")
		p.queueLate(lateStart{rec: &rec, note: true}, "the audit log could not be written then", err)
	}
}

// handle counts a request under way ([Plugin.flushLate] waits for them)
// until the function it returns is called. Each handler that may write
// a record calls it first, before any work: a request counted only
// once it reached its check or note (after the stub decoded it, and
// the handler copied the pod's labels and annotations) was not waited
// for by a stop that came before that, and the record it queued then
// was neither written nor counted as lost.
func (p *Plugin) handle() (done func()) {
	p.mu.Lock()
	p.active++
	entered := p.entered
	p.mu.Unlock()
	if entered != nil {
		entered()
	}
	return func() {
		p.mu.Lock()
		p.active--
		p.mu.Unlock()
	}
}

// StartContainer records (and may refuse) a container of a pod.
func (p *Plugin) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	defer p.handle()()
	// One deadline for the whole request, the note included.
	ctx, cancel := p.requestContext(ctx)
	defer cancel()
	hasHook := p.Inject != nil && slices.ContainsFunc(ctr.GetHooks().GetCreateRuntime(), p.isHook)
	p.mu.Lock()
	injected := p.injected[ctr.GetId()]
	delete(p.injected, ctr.GetId())
	resumed := false
	if _, ok := p.pending[ctr.GetId()]; ok {
		// Injected, and its PostCreateContainer was not seen (containerd
		// ignores a plugin's failure there): its final spec tells
		// whether the runtime took the injection. (Left pending, its
		// normal stop would read as a refused injection.)
		if hasHook {
			resumed = p.taken(ctr.GetId())
		} else if delete(p.pending, ctr.GetId()); ctr.GetId() == p.probing {
			p.probeFailed()
		}
	}
	p.mu.Unlock()
	if resumed {
		p.noteResumed(ctx, ctr.GetId())
	}
	if injected && !hasHook {
		p.note(ctx, ctr.GetId(), StageHookMissing, "the container's final spec lacks the injected nsrel-hook: validating at StartContainer")
	}
	return p.start(ctx, ctr.GetId(), int(ctr.GetPid()), containerMeta(pod, ctr), kubeletNames(pod, ctr), ctr.GetAnnotations(), containerUnknown)
}

// containerUnknown are the keys of a container's that the plugin cannot
// trust (see [Plugin.start]).
var containerUnknown = []string{vocab.AnnotationImageName}

// containerMeta returns what selects a container's block: its
// annotations but the kubelet's keys ([dropKubeletKeys]), and the keys
// CRI sets from the runtime's pod and container ([criKeys]). No label:
// nsrel-hook never sees labels, and CRI copies an image's labels into
// its containers' (whoever built the image picked the block of a key
// the config trusts that no annotation set).
func containerMeta(pod *api.PodSandbox, ctr *api.Container) map[string]string {
	md := maps.Clone(ctr.GetAnnotations())
	if md == nil {
		md = map[string]string{}
	}
	dropKubeletKeys(md)
	criKeys(md, pod, ctr)
	return md
}

// dropKubeletKeys removes from md, annotations NRI sends, the keys the
// kubelet puts on a container's labels (io.kubernetes.pod.name,
// .namespace, io.kubernetes.container.name): NRI sends every CRI
// annotation of the pod's or the container's, which the pod's author
// writes, while the spec the hook and the recorder read holds none of
// them (but those containerd's pod_annotations passes). A pod annotated
// io.kubernetes.pod.namespace=kube-system picked its sandbox's block in
// the plugin alone, where the config trusted that key.
func dropKubeletKeys(md map[string]string) {
	for _, k := range []string{vocab.LabelPodName, vocab.LabelPodNamespace, vocab.LabelContainerName} {
		delete(md, k)
	}
}

// Synchronize records the pod sandboxes and containers that run when
// the plugin registers (the runtime sends them all) and whose start the
// audit log lacks: started while no plugin was connected (containerd
// restarted, or the plugin), unchecked. Their records say so; the
// plugin cannot refuse a container that runs. It answers at once and
// records them in the background (a check each, and a search of the log
// for the start of a container another writer recorded: the
// registration must not wait for hundreds of them), as requests under
// way (Run's stop waits for them, as for the records written late).
// They were never recorded by the plugin, and nothing in the log said
// the plugin had been away.
func (p *Plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	// The processes containerd names run now: one that started after
	// took the PID of one that exited since (they are checked one after
	// the other, each up to the timeout), on the boot clock, which the
	// wall clock stepping meanwhile does not move.
	listed := inspect.Now()
	type running struct {
		id              string
		pid             int
		md, names, sent map[string]string
		unknown         []string
	}
	var todo []running
	byID := make(map[string]*api.PodSandbox, len(pods))
	for _, pod := range pods {
		byID[pod.GetId()] = pod
		if pod.GetPid() > 0 {
			todo = append(todo, running{pod.GetId(), int(pod.GetPid()), sandboxMeta(pod), kubeletNames(pod, nil), pod.GetAnnotations(), nil})
		}
	}
	for _, ctr := range ctrs {
		pod := byID[ctr.GetPodSandboxId()]
		if ctr.GetState() != api.ContainerState_CONTAINER_RUNNING || ctr.GetPid() <= 0 || pod == nil {
			continue
		}
		todo = append(todo, running{ctr.GetId(), int(ctr.GetPid()), containerMeta(pod, ctr), kubeletNames(pod, ctr), ctr.GetAnnotations(), containerUnknown})
	}
	if len(todo) == 0 {
		if p.synced != nil {
			p.synced()
		}
		return nil, nil
	}
	p.mu.Lock()
	if p.flushing {
		// Run is stopping: not recorded now, but counted (the next
		// registration records them), or said once the count is made.
		stopped := p.stopped
		if !stopped {
			p.unsynced += len(todo)
		}
		p.mu.Unlock()
		if stopped {
			p.logger().WithField("unsynced", len(todo)).Error("stopped with containers found running at registration, which the audit log may lack, not recorded; the next registration records them")
		}
		if p.synced != nil {
			p.synced()
		}
		return nil, nil
	}
	p.syncing++ // Run's stop waits for it as for a request under way
	p.unsynced += len(todo)
	p.mu.Unlock()
	go func() {
		defer func() {
			p.mu.Lock()
			p.syncing--
			p.mu.Unlock()
			if p.synced != nil {
				p.synced()
			}
		}()
		for _, r := range todo {
			// Not after Run's stop began: the rest are counted as not
			// recorded (the next registration records them).
			p.mu.Lock()
			stop := p.flushing
			p.mu.Unlock()
			if stop {
				return
			}
			if !p.recordRunning(r.id, r.pid, r.md, r.names, r.sent, r.unknown, listed) {
				// (One queued to append later left the count when
				// queued: it is counted among those.)
				p.mu.Lock()
				p.unsynced--
				p.mu.Unlock()
			}
		}
	}()
	return nil, nil
}

// recordRunning records the start of container id, found running when
// the plugin registered ([Plugin.Synchronize]) at listed, unless the log
// holds a start of its process: judged as at its start, but not refused, which
// the record says. It reports whether it queued the record to append
// later ([Plugin.queueLate]).
func (p *Plugin) recordRunning(id string, pid int, md, names, sent map[string]string, unknown []string, listed inspect.Moment) (queued bool) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout())
	defer cancel()
	log := p.logger().WithFields(logrus.Fields{"container": id, "pid": pid})
	rec, startTime, ierr := p.check(ctx, id, pid, md, names, sent, unknown)
	if ierr == nil && startTime != 0 && inspect.StartedAfter(startTime, listed) {
		// The PID is a process's that started after containerd listed
		// the container: it exited, and another took its PID, whose
		// namespaces were the container's in the record.
		ierr = fmt.Errorf("pid %d is a process started after the registration: %w", pid, inspect.ErrGone)
	}
	if errors.Is(ierr, inspect.ErrGone) {
		// Ended since the runtime listed it: no start to record that
		// an exit could end (the recorder records such a task).
		log.Debug("container found running at registration is gone")
		return false
	}
	checked := rec.Error
	rec.Error = vocab.JoinErrors(checked, NotCheckedAtStart)
	got, err := p.appendRunning(ctx, rec, checked, "", pid, startTime)
	switch {
	case err != nil:
		log.WithError(err).Error("audit log append failed")
		p.queueLate(lateStart{rec: rec, pid: pid, startTime: startTime, running: true, checked: checked}, "the audit log could not be written when the plugin registered", err)
		return true
	case got != nil && got.Ref != nil:
		log.WithFields(logrus.Fields{"seq": got.Seq, "refused_by": got.Ref.Seq}).Error("recorded a container running although its start was refused")
	case got != nil:
		log.WithFields(logrus.Fields{"seq": got.Seq, "verdict": got.Verdict}).Warn("recorded a start the plugin was not connected for")
	}
	return false
}

// appendRunning appends rec, the start of a container found running at
// registration whose check said checked, unless the log holds a start
// of its process. A start of the process, or one of the container's
// that names no process (its inspection failed; a CRI container ID
// names one container), is its start: nothing is recorded again (a
// start recorded without its process was recorded again at every
// registration), unless it refused the start: the container runs all
// the same, which its last start record must say (an allow that names
// the refusal; more, when not empty, is said after: why it is late).
// A record queued late is appended so too (it was appended as a start
// checked at its start: a refusal that ran got none, and another
// writer's allow a refusal).
func (p *Plugin) appendRunning(ctx context.Context, rec *audit.Record, checked, more string, pid int, startTime uint64) (*audit.Record, error) {
	same := audit.StartMatcher(pid, startTime)
	return p.log().AppendAfterLast(ctx, rec.ContainerID, func(r *audit.Record) bool {
		return same(r) || audit.IsStart(r.Stage) && r.Ancestry == nil && r.OfThisBoot()
	}, func(prev *audit.Record) (*audit.Record, error) {
		switch {
		case prev == nil:
			return rec, nil
		case !refusedRan(prev):
			return nil, nil
		}
		ran := *rec
		ran.Verdict = audit.VerdictAllow
		ran.Error = vocab.JoinErrors(checked, fmt.Sprintf(RanAfterRefusal, prev.Source, prev.Seq))
		if rec.Verdict == audit.VerdictDeny {
			ran.Error = vocab.JoinErrors(ran.Error, "the check now refuses it too")
		}
		ran.Error = vocab.JoinErrors(ran.Error, more)
		// As appendStart's record over another writer's: the exit that
		// ends it ends both.
		ran.Ref = &audit.Ref{Seq: prev.Seq, Stage: prev.Stage, Hash: prev.Hash}
		return &ran, nil
	})
}

// refusedRan reports whether prev, the last start record of a container
// found running, refused its start where a refusal stops a container:
// nsrel-hook's or the plugin's (the event recorder's verdicts stop
// nothing). The plugin's refusal answered past
// containerd's deadline (a write or sync of the log that stalled)
// reached nobody: containerd dropped the plugin and started the
// container, whose only record said it was refused.
func refusedRan(prev *audit.Record) bool {
	return prev.Verdict == audit.VerdictDeny && (prev.Source == audit.SourceNRI || prev.Source == audit.SourceOCIHook)
}

// RanAfterRefusal, with the source and seq of the refusal, is said by
// the record of a container found running when the plugin registered
// whose last start record refused it. The record allows the start (the
// container runs) and names the refusal.
const RanAfterRefusal = "found running when the NRI plugin registered, although the %s record seq %d refused its start: the refusal did not stop it (answered after the runtime's deadline, say, when the runtime drops the plugin and starts the container)"

// NotCheckedAtStart is said by the record of a container that ran
// before the plugin registered, whose start the log lacked.
const NotCheckedAtStart = "started while the NRI plugin was not connected (containerd or the plugin restarting), or its start is not in the log's files searched: recorded when the plugin registered, not checked at its start (its verdict is what the check would have said)"

// criKeys sets in md, a container's annotations as NRI sends them, the
// keys containerd's CRI sets on a container's spec
// (io.kubernetes.cri.*), from the pod and container the runtime sends,
// and removes every other key of theirs. A trusted selector
// (trusted_selectors in docs/hook.md) may name them, and none can come
// from the container's creator: CRI sets them as the container's
// annotations over the author's, but labels never carry them, and the
// annotations NRI sends are the spec's with the container's CRI config
// annotations copied over them (containerd 2.4), so that a container
// claiming io.kubernetes.cri.container-name or container-type could
// pick a block meant for others. container-type is "container"; a key
// the runtime sends no value for (a name, an ID) is left out
// ([setSent]), and so is the image's name
// ([vocab.AnnotationImageName]), which the plugin has no trustworthy
// value of: the name NRI sends is one of the names containerd holds for
// the image's content, which whoever pulls or tags the same content
// chooses (not the name the container was created with, which the spec
// and nsrel-hook have), and the annotations NRI sends may be a CRI
// client's. A block selecting on it is never the one the plugin
// selects; it may be the container's all the same, so each such block
// whose other selectors match that comes before the one selected is
// weighed too, failing closed: an enforcing one that refuses the
// container refuses it ([hook.Input.Unknown]), an audit one exempts
// nothing ([Plugin.Run] says so at its start).
func criKeys(md map[string]string, pod *api.PodSandbox, ctr *api.Container) {
	maps.DeleteFunc(md, func(k, _ string) bool { return strings.HasPrefix(k, vocab.CRIAnnotationPrefix) })
	md[vocab.CRIAnnotationPrefix+"container-type"] = "container"
	setSent(md, map[string]string{
		vocab.AnnotationContainerName: ctr.GetName(), vocab.AnnotationSandboxID: pod.GetId(),
		vocab.CRIAnnotationPrefix + "sandbox-uid": pod.GetUid(), vocab.AnnotationSandboxName: pod.GetName(),
		vocab.AnnotationSandboxNamespace: pod.GetNamespace(),
	})
}

// kubeletNames returns, under the keys the kubelet puts on a container's
// labels (io.kubernetes.pod.name, .namespace, io.kubernetes.container.name;
// a sandbox, ctr nil, has no container name), the names the runtime
// sends for the pod and the container, the ones the kubelet's labels
// carry: for the records ([hook.Input.Names]), never to select a block,
// which the hook and the recorder select by the spec's annotations (a
// block trusting io.kubernetes.pod.namespace was picked by the plugin
// alone). Not from the labels: where no kubelet sets them (crictl, any
// other CRI client) they are the image's, whose labels CRI copies into
// its containers' (an image labelled io.kubernetes.pod.namespace
// kube-system named another pod in the record); nor from an annotation
// of the key (a pod's, which containerd's pod_annotations copies into
// the spec), which named another pod in the record, which the trees
// show. A name the runtime does not send is left out.
func kubeletNames(pod *api.PodSandbox, ctr *api.Container) map[string]string {
	names := map[string]string{}
	for k, v := range map[string]string{vocab.LabelPodName: pod.GetName(), vocab.LabelPodNamespace: pod.GetNamespace(), vocab.LabelContainerName: ctr.GetName()} {
		if v != "" {
			names[k] = v
		}
	}
	return names
}

// start checks the process pid of container id (its annotations md,
// without the keys unknown, whose values the plugin cannot trust; sent,
// the annotations the runtime sent, which the hook's limits count),
// records the start unless another writer did, and refuses what is to be
// refused: by its own check and on_error, whatever another writer
// (nsrel-hook, the event recorder) recorded. Whatever the plugin refuses
// has a deny record in the log: its own, appended now (after another
// writer's record that allowed the start, naming it) or written late
// (unless dropped beyond [MaxLate] or lost at the stop, which the
// diagnostics say), or another writer's refusal there already. Likewise
// whatever it lets start has an allow record: another writer's, or its
// own, after another writer's record that refused the start, naming it.
func (p *Plugin) start(ctx context.Context, id string, pid int, md, names, sent map[string]string, unknown []string) error {
	log := p.logger().WithFields(logrus.Fields{"container": id, "pid": pid})
	ctx, cancel := context.WithTimeout(ctx, p.timeout()) // the callers' requestContext's, or shorter
	defer cancel()
	rec, startTime, _ := p.check(ctx, id, pid, md, names, sent, unknown)
	// Appended now even while late records wait, ahead of them (unlike
	// a note): the check must not wait for them, and under
	// on_error=deny the container runs only once its record is in the
	// log. Those written late keep the time they were due.
	got, prev, err := p.appendStart(ctx, rec, pid, startTime)
	if err != nil {
		log.WithError(err).Error("audit log append failed")
		if rec.Verdict == audit.VerdictDeny {
			// A refusal stands whatever on_error says (as in the
			// hook); its record is written once the log takes it.
			msg := hook.UnrecordedDenyMessage(rec, err)
			p.appendLater(rec, pid, startTime, err)
			return errors.New("nsrel: " + msg)
		}
		if p.Config.OnError == policy.OnErrorDeny {
			// Refused: the record says so once the log takes it (the
			// hook, or the event recorder, may have recorded the start
			// allowed meanwhile).
			refused := *rec
			refused.Verdict = audit.VerdictDeny
			refused.Error = vocab.JoinErrors(rec.Error, "refused (on_error=deny): the audit record could not be written at the start")
			p.appendLater(&refused, pid, startTime, err)
			return fmt.Errorf("nsrel: container %s: cannot write the audit record (on_error=deny): %w", vocab.Printable(id), err)
		}
		// The container runs: its record is written late, not lost.
		p.appendLater(rec, pid, startTime, err)
		return nil
	}
	if got == nil {
		// Another writer recorded this start first: nsrel-hook, or the
		// event recorder, which sees a sandbox's task start before the
		// runtime asks the plugin and cannot refuse anything itself.
		// Where the plugin's verdict and the other writer's differ,
		// the plugin's record was appended after it (got); here both
		// refused, or both allowed, and the other writer's record
		// stands for the plugin's.
		if rec.Verdict == audit.VerdictDeny {
			msg := hook.DenyMessage(prev)
			log.WithFields(logrus.Fields{"seq": prev.Seq, "source": prev.Source, "verdict": prev.Verdict}).Warn(msg + ", written by another writer")
			return errors.New("nsrel: " + msg)
		}
		log.Debug("start already recorded (nsrel-hook or the event recorder)")
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

// check judges the start of container id, its process pid (see
// [Plugin.start] for md, sent and unknown): the record to append, and
// the process's start time (0: unknown).
func (p *Plugin) check(ctx context.Context, id string, pid int, md, names, sent map[string]string, unknown []string) (*audit.Record, uint64, error) {
	// The hook's limits on a state's annotations, so that the plugin
	// decides as the hook would for the same container. They count the
	// annotations the runtime sent, as the hook counts its state's,
	// which are the spec's: containerd sends the spec's, its
	// io.kubernetes.cri.* keys included (the plugin's own values of
	// those keys replace them in md, adding none), merged with the pod's
	// or container's CRI config annotations (those the runtime does not
	// pass to the spec, through pod_annotations or
	// container_annotations, are counted all the same: the plugin cannot
	// tell them apart). The labels, which md holds too, are not in the
	// spec and are not counted: a pod within the limits was refused for
	// its labels, or for the keys the plugin adds.
	limitErr := hook.LimitAnnotations(sent, md, hook.SalvageKeep(p.Config))
	// A missing pid (a runtime too old to send it) cannot be inspected:
	// the record says so and on_error decides, as for any other
	// inspection failure.
	// The scan of the running processes gets what fits in the request's
	// time (half of deadline_ms would overrun containerd's request
	// timeout once deadline_ms passes 4 s, and containerd would drop the
	// plugin: containers started unchecked).
	rec, ierr := hook.Decide(p.Config, hook.Input{Stage: audit.StageStart, Source: audit.SourceNRI, ID: id, PID: pid, Meta: md, Names: names, Unknown: unknown, Inspect: p.Inspect,
		Budget: hook.BudgetWithin(ctx, p.Config)})
	if limitErr != nil {
		hook.RefusedInput(p.Config, rec, "the container's annotations were refused ("+limitErr.Error()+"); the record keeps what the limits allow",
			fmt.Errorf("%w: %w", hook.ErrInput, limitErr))
	}
	var startTime uint64
	if rec.Ancestry != nil {
		startTime = rec.StartTime
	}
	return rec, startTime, ierr
}

// appendStart appends rec, the start of the process pid (startTime 0:
// unknown), under the log's lock, unless the log holds a start record
// of the same process already (prev, whoever wrote it): then it returns
// nil, except when rec and prev disagree on whether the start was
// refused. The log's last start record of the process must say what
// happened to it, so rec is appended after prev, noting it: a refusal
// of a start prev allowed (the container did not run), or a start
// allowed that prev refused (another writer's refusal, which it could
// not enforce: the container runs).
func (p *Plugin) appendStart(ctx context.Context, rec *audit.Record, pid int, startTime uint64) (got, prev *audit.Record, err error) {
	got, err = p.log().AppendAfterLast(ctx, rec.ContainerID, audit.StartMatcher(pid, startTime), func(last *audit.Record) (*audit.Record, error) {
		prev = last
		if prev == nil {
			return rec, nil
		}
		refuses := rec.Verdict == audit.VerdictDeny
		if refuses == (prev.Verdict == audit.VerdictDeny) {
			return nil, nil
		}
		over := *rec
		if refuses {
			over.Error = vocab.JoinErrors(rec.Error, fmt.Sprintf("refused by the NRI plugin at the start, although the %s record seq %d allowed it", prev.Source, prev.Seq))
		} else {
			over.Error = vocab.JoinErrors(rec.Error, fmt.Sprintf("allowed by the NRI plugin at the start, although the %s record seq %d refused it", prev.Source, prev.Seq))
		}
		// It refers to that record, as a poststart to its createRuntime
		// record: the exit that ends it (the event recorder's, which
		// finds it first) ends both, and the other writer's start does
		// not stay open for good.
		over.Ref = &audit.Ref{Seq: prev.Seq, Stage: prev.Stage, Hash: prev.Hash}
		return &over, nil
	})
	return got, prev, err
}

// appendLater keeps a start whose append failed under on_error=allow,
// or a refusal (by the policy, or by on_error=deny for the failed
// append), and appends it once the log takes it, retrying in the
// background with backoff (100 ms to 5 s): the record says when the
// start was and that it was written late, and is skipped if another
// writer recorded the start meanwhile, unless one of the two records
// refuses the start and the other does not. The goroutine ends when nothing is
// left to append.
func (p *Plugin) appendLater(rec *audit.Record, pid int, startTime uint64, err error) {
	p.queueLate(lateStart{rec: rec, pid: pid, startTime: startTime}, "the audit log could not be written at the start", err)
}

// queueLate queues l, a start or a note, to be appended once the log
// takes it, after those waiting ([Plugin.appendLater]), and makes sure
// the goroutine that appends them runs (unless Run appends them itself,
// flushing): its record keeps the time it was made and says it was
// written late, and why (why, then err, the append's failure; nil when
// the log was not tried).
func (p *Plugin) queueLate(l lateStart, why string, err error) {
	rec := l.rec
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	late := "written late: " + why
	if err != nil {
		late += " (" + err.Error() + ")"
	}
	rec.Error = vocab.JoinErrors(rec.Error, late)
	l.late = late
	p.mu.Lock()
	if p.stopped {
		// Run has counted what is lost, this request among those
		// still under way: nobody appends the record now.
		p.mu.Unlock()
		p.logger().WithFields(logrus.Fields{"container": rec.ContainerID, "stage": rec.Stage, "verdict": rec.Verdict}).Error("record lost: the plugin stopped before the audit log took it")
		return
	}
	if l.running {
		// Counted among those waiting now, not among those
		// Synchronize has yet to record (in the same hold of the
		// lock: a stop counts each once).
		p.unsynced--
	}
	// The drops of refusals that came when the queue was full go to
	// the next record queued.
	l.dropped, p.droppedNew = p.droppedNew, lateCount{}
	if len(p.late) == MaxLate {
		i := p.toDrop(l)
		if i < 0 {
			// No refusal waits, and this is one: it goes, not the
			// start of a container that ran.
			p.logger().WithFields(logrus.Fields{"container": rec.ContainerID, "verdict": rec.Verdict}).Error("dropped a refusal to append later: too many starts are waiting")
			p.droppedNew = l.dropped.plus(countOf(l))
			p.mu.Unlock()
			return
		}
		p.logger().WithFields(logrus.Fields{"container": p.late[i].rec.ContainerID, "stage": p.late[i].rec.Stage, "verdict": p.late[i].rec.Verdict}).Error("dropped a record to append later: too many are waiting")
		gone := p.late[i].dropped.plus(countOf(p.late[i]))
		if len(p.late) > i+1 {
			p.late[i+1].dropped = p.late[i+1].dropped.plus(gone)
		} else {
			l.dropped = l.dropped.plus(gone)
		}
		p.late = slices.Delete(p.late, i, i+1)
	}
	p.late = append(p.late, l)
	start := !p.retrying && !p.flushing
	p.retrying = p.retrying || start
	if start {
		p.retried.Add(1)
	}
	stop := p.stopLate
	p.mu.Unlock()
	if start {
		go p.retryLate(stop)
	}
}

// toDrop returns, under p.mu, the index of the late record to drop when
// [MaxLate] wait and l comes: the oldest refusal, else the oldest
// record (a start or a note), never the one being written; -1 when no
// refusal waits and l is one, which is dropped then. (A deny record of
// a container found running at registration is no refusal: it ran.) A refusal's
// container did not run, and the start records of containers that ran
// are what the log is for: a pod author who gets many containers
// refused while the log cannot be written must not push the records of
// the containers that ran out of the queue.
func (p *Plugin) toDrop(l lateStart) int {
	first := 0
	if p.late[0].rec == p.writing {
		first = 1
	}
	for i := first; i < len(p.late); i++ {
		if countOf(p.late[i]).refused > 0 {
			return i
		}
	}
	if countOf(l).refused > 0 {
		return -1
	}
	return first
}

// retryLate appends the late records, with backoff, until none is left
// or stop is closed.
func (p *Plugin) retryLate(stop <-chan struct{}) {
	defer p.retried.Done()
	wait := 100 * time.Millisecond
	for {
		select {
		case <-time.After(wait):
		case <-stop:
			p.mu.Lock()
			p.retrying = false
			p.mu.Unlock()
			return
		}
		switch ok, more := p.appendLate(); {
		case !more:
			return
		case ok:
			wait = 100 * time.Millisecond
		default:
			wait = min(wait*2, 5*time.Second)
		}
	}
}

// appendLate appends the oldest late record: ok says it is done with
// (written, or, a start, written before by another writer), more that
// records are left to append (when none is, retrying is over).
func (p *Plugin) appendLate() (ok, more bool) {
	p.mu.Lock()
	if len(p.late) == 0 {
		p.retrying = false
		p.mu.Unlock()
		return false, false
	}
	l := p.late[0]
	p.writing = l.rec
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.writing = nil
		p.mu.Unlock()
	}()
	rec := l.rec
	if !l.dropped.zero() {
		c := *rec
		c.Error = vocab.JoinErrors(rec.Error, l.dropped.dropped())
		rec = &c
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout())
	var got *audit.Record
	var err error
	switch {
	case l.note:
		got, err = p.log().AppendWith(ctx, func(*audit.Searcher) (*audit.Record, error) { c := *rec; return &c, nil })
	case l.running:
		more := l.late
		if !l.dropped.zero() {
			more = vocab.JoinErrors(more, l.dropped.dropped())
		}
		got, err = p.appendRunning(ctx, rec, l.checked, more, l.pid, l.startTime)
	default:
		// Written even after another writer's record of the start
		// when the verdicts differ: the record says what happened.
		got, _, err = p.appendStart(ctx, rec, l.pid, l.startTime)
	}
	cancel()
	log := p.logger().WithField("container", l.rec.ContainerID)
	if err != nil {
		log.WithError(err).Warn("audit log append failed again; retrying")
		return false, true
	}
	p.mu.Lock()
	p.late = p.late[1:] // still l: a drop does not take the one being written
	if got == nil && !l.dropped.zero() {
		// Another writer's record stood for it: the count of the starts
		// dropped before it goes to the next, or is lost with them.
		if len(p.late) > 0 {
			p.late[0].dropped = p.late[0].dropped.plus(l.dropped)
		} else {
			p.unreported = p.unreported.plus(l.dropped)
			log.WithFields(logrus.Fields{"dropped": l.dropped.ran, "dropped_refusals": l.dropped.refused}).Error("starts dropped beyond MaxLate are recorded nowhere")
		}
	}
	p.mu.Unlock()
	if got != nil {
		log.WithFields(logrus.Fields{"seq": got.Seq, "stage": got.Stage}).Info("recorded late")
	}
	return true, true
}

// flushLate stops the goroutine that appends late records, waits for
// the requests under way (as long as one check may take), tries for
// [shipWait] to append the records left and returns how many the log
// did not take (those dropped beyond [MaxLate] included), refusals and
// notes apart, and how many requests were still under way then: a
// record one of them queues later is lost (see [Plugin.stopped]).
func (p *Plugin) flushLate() lateCount {
	p.mu.Lock()
	p.flushing = true
	if p.stopLate != nil {
		close(p.stopLate)
		p.stopLate = nil
	}
	p.mu.Unlock()
	p.retried.Wait()
	// Requests cut short by the stop (the runtime gone) may still add
	// a record to append: wait for them, as long as one check may take.
	for wait := time.Now().Add(p.timeout()); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		n := p.active + p.syncing
		p.mu.Unlock()
		if n == 0 {
			break
		}
	}
	deadline := time.Now().Add(shipWait)
	for time.Now().Before(deadline) {
		if ok, more := p.appendLate(); !more {
			break
		} else if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lost := p.unreported.plus(p.droppedNew)
	for _, l := range p.late {
		lost = lost.plus(l.dropped).plus(countOf(l))
	}
	// A request still under way counts as one whose record may be
	// lost: from now on its record is not queued.
	lost.unfinished = p.active
	lost.unsynced += p.unsynced
	p.stopped = true
	if !lost.zero() {
		p.logger().WithFields(logrus.Fields{"lost": lost.ran, "lost_refusals": lost.refused, "lost_notes": lost.notes, "unfinished": lost.unfinished, "unsynced": lost.unsynced}).Error("stopping with records the audit log did not take; they are lost")
	}
	return lost
}

// stubLogger is the NRI stub's logger ([nrilog.Logger]) over the
// plugin's.
type stubLogger struct{ l logrus.FieldLogger }

var _ nrilog.Logger = stubLogger{}

func (s stubLogger) Debugf(_ context.Context, format string, args ...any) {
	s.l.Debugf(format, args...)
}
func (s stubLogger) Infof(_ context.Context, format string, args ...any) { s.l.Infof(format, args...) }
func (s stubLogger) Warnf(_ context.Context, format string, args ...any) { s.l.Warnf(format, args...) }
func (s stubLogger) Errorf(_ context.Context, format string, args ...any) {
	s.l.Errorf(format, args...)
}

func (p *Plugin) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultTimeout
	}
	return p.Timeout
}

// answerMargin is the least time a request's check leaves before the
// runtime's deadline for its answer to get back.
const answerMargin = 100 * time.Millisecond

// requestContext bounds the check of a runtime's request ctx: by the
// plugin's timeout, and by the runtime's own deadline (ttrpc passes
// containerd's plugin_request_timeout on) less a margin for the answer,
// a fifth of the time left and answerMargin at least. With the
// runtime's deadline as the check's, a check that ran out of time
// answered too late: the runtime dropped the plugin and started the
// container, whose only record said it was refused (containerd's
// plugin_request_timeout at or below the plugin's --timeout).
func (p *Plugin) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := p.timeout()
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		d = min(d, left-max(answerMargin, left/5))
	}
	return context.WithTimeout(ctx, d)
}

func (p *Plugin) logger() logrus.FieldLogger { return logging.OrDiscard(p.Logger) }

// log returns the audit log to append to: [Plugin.Log], shipping
// checkpoints in the background while [Plugin.Run] runs.
func (p *Plugin) log() *audit.Log {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shipping != nil {
		return p.shipping
	}
	return p.Log
}
