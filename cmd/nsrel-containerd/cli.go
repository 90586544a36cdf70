package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/containerd/nriplugin"
	"github.com/nsrel/nsrel/containerd/recorder"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/metrics"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// The default metrics addresses of watch and nri.
const (
	defaultWatchMetrics = "127.0.0.1:9498"
	defaultNRIMetrics   = "127.0.0.1:9499"
)

const usage = `nsrel-containerd records the containers containerd starts (event recorder)
and validates Kubernetes containers before they run (NRI plugin).

Usage:
  nsrel-containerd watch [--config FILE] [--address SOCK] [--host-root DIR] [--log-level LEVEL] [--log-to TARGET] [--metrics-address ADDR]
  nsrel-containerd nri [--config FILE] [--socket SOCK] [--index NN] [--timeout D] [--inject-hook PATH|none] [--hook-config PATH] [--ready-file FILE] [--host-root DIR] [--log-level LEVEL] [--log-to TARGET] [--metrics-address ADDR]
  nsrel-containerd install-hook --dest DIR [--hook FILE] [--config FILE]
  nsrel-containerd ready FILE
  nsrel-containerd containers [--address SOCK] [--timeout D]
  nsrel-containerd --version

watch subscribes to containerd's task start and exit events in every
containerd namespace and appends an audit record (source
"containerd-events") to the nsrel-hook audit chain for every container
start that nsrel-hook did not record itself: containers started with ctr,
by Docker (namespace "moby") or by any client without the hook. It
reconnects when containerd restarts or stops answering, records the gap,
and then records the running containers it missed; records the audit
log refuses are retried. A containerd that stops answering is noticed at
the next walk of the running tasks, up to 30 s plus about 15 s later; one
whose health service still answers is not.
It records its own start and stop, and runs until SIGTERM or SIGINT;
it exits 1 at once if it cannot write the audit log. Diagnostics go to
stderr (the journal under systemd) unless --log-to says otherwise.

containers prints the containers of the daemon as JSON: lsuserns and
lspidns run it to name the containers on their trees, so that they need
not link a containerd client themselves.

nri runs as an NRI plugin (containerd 1.7+ with NRI enabled, CRI-O): for
every Kubernetes pod sandbox and container it inspects the namespaces
before the process runs, records the start (source "nri") unless
nsrel-hook did, and in enforce mode refuses a violating container. It
also injects nsrel-hook at the createRuntime and poststop stages of every
container it is told of at creation (--inject-hook), so that the runtime
itself runs the hook's check, veto and record; a container the hook
recorded is not recorded again. When the runtime refuses the injection
(containerd's default NRI validator with reject_oci_hook_adjustment; that
container's creation fails once and the kubelet retries), nri records a
"hook-injection-refused" record, stops injecting and checks at start only
(in that pod, or, when creations failed in two pods and none was ever
taken, on the node, injecting into one container again every 5 minutes
to see whether the runtime takes it now).

install-hook copies nsrel-hook (by default the one beside this
executable) and the config (checked first) into DIR as DIR/nsrel-hook and
DIR/hook.json, each through a temporary file renamed into place; the node
agent's DaemonSet runs it in an init container with DIR a host path, the
one --inject-hook and --hook-config then name.

ready exits 0 if FILE exists and is a regular file (not a directory): the
probe of a Kubernetes pod whose nri was given --ready-file FILE, which nri
writes once the runtime accepted the plugin (and removes when it starts
and when it stops).

Options:
  --config FILE       nsrel-hook configuration: audit log, policy, annotations
                      (default @CONFIG@)
  --address SOCK      containerd socket (default $CONTAINERD_ADDRESS, else
                      /run/containerd/containerd.sock)
  --log-level LEVEL   trace, debug, info, warn, error, fatal or panic (default info)
  --log-to TARGET     where diagnostics go: stderr (default), syslog
                      (/dev/log), unix:///PATH or tcp://HOST:PORT (syslog,
                      RFC 5424 with structured data), journald or
                      journald:///PATH (journald's native protocol, fields
                      NSREL_*); see docs/observability.md
  --metrics-address ADDR
                      serve Prometheus metrics at http://ADDR/metrics, ADDR
                      IP:PORT, localhost:PORT or :PORT (default
                      127.0.0.1:9498 for watch, 127.0.0.1:9499 for nri; ""
                      for none); see docs/observability.md
  -V, --version       print the version and exit
  -h, --help          print this help and exit
  --socket SOCK       NRI socket (default /var/run/nri/nri.sock)
  --index NN          NRI plugin index, two digits (default 10)
  --timeout D         containers: how long the query may take (default 2s);
                      nri: how long one check may take (default 1.5s); keep it
                      below the runtime's plugin_request_timeout (2s), or
                      the runtime drops the plugin and starts the container
                      unchecked; a check out of time counts as an error
                      (on_error decides)
  --inject-hook PATH  nsrel-hook's path on the host, injected at createRuntime
                      and poststop (default @HOOKPATH@);
                      "none" injects nothing and checks at start only
  --hook-config PATH  the config file the injected hook reads, an absolute
                      host path (default: --config, which must then be
                      absolute)
  --ready-file FILE   nri: written once the runtime accepted the plugin
  --host-root DIR     watch, nri: the host's root as this process sees it,
                      an absolute path (default /): allowed_subid_user reads
                      /etc/subuid, /etc/subgid and /etc/passwd within DIR
                      (symlinks resolved there), the files nsrel-hook reads
                      on the host; in a pod with the host's PID namespace,
                      /proc/1/root (the node agent's DaemonSet); a block
                      whose user has no subordinate IDs there is warned of
                      at start
  --dest DIR          install-hook: the directory to install into (required)
  --hook FILE         install-hook: the nsrel-hook to copy (default: beside
                      this executable)

Examples:
  nsrel-containerd watch
  nsrel-containerd watch --address /run/k3s/containerd/containerd.sock
  nsrel-containerd nri --config /etc/nsrel/hook-enforce.json
  nsrel-containerd install-hook --dest /host/opt/nsrel --config /etc/nsrel-k8s/hook.json
  nsrel-containerd nri --config /host/opt/nsrel/hook.json \
      --inject-hook /opt/nsrel/nsrel-hook --hook-config /opt/nsrel/hook.json
  systemctl enable --now nsrel-watch.service   # config/containerd/nsrel-watch.service
  nsrel-hook audit show --json | jq 'select(.source == "containerd-events")'

Exit status: 0 success (watch and nri: stopped by a signal), 1 failure, 2
usage error.
See docs/containerd.md and docs/kubernetes.md.
`

// parseArgs parses a subcommand's arguments, which take no positional
// ones. done says the command is over: the help was printed (code 0) or
// the arguments were bad (one line on stderr, code 2).
func parseArgs(fs *flag.FlagSet, prog string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return vocab.Written(prog, printUsage(stdout), stderr), true
		}
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", prog, vocab.FlagError(err))
		return 2, true
	}
	if fs.NArg() == 1 && fs.Arg(0) == "help" {
		// As `nsrel-hook audit help`: the word after a subcommand too.
		return vocab.Written(prog, printUsage(stdout), stderr), true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see --help)\n", prog, fs.Arg(0))
		return 2, true
	}
	return 0, false
}

// emptyConfig refuses an empty --config, with one line: filepath.Abs
// would take it for the working directory.
func emptyConfig(prog, config string, stderr io.Writer) bool {
	if config != "" {
		return false
	}
	fmt.Fprintf(stderr, "%s: %s (see --help)\n", prog, vocab.EmptyValue("--config", "a file"))
	return true
}

// printUsage prints the help with the hook and config paths of this build.
func printUsage(w io.Writer) error {
	_, err := io.WriteString(w, vocab.ExpandPaths(usage))
	return err
}

// run runs the nsrel-containerd command line (args without the program
// name) and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "nsrel-containerd: missing command (see --help)")
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		return vocab.Written("nsrel-containerd", printUsage(stdout), stderr)
	case "-V", "--version", "-version":
		_, err := fmt.Fprintln(stdout, vocab.VersionLine("nsrel-containerd"))
		return vocab.Written("nsrel-containerd", err, stderr)
	case "watch", "nri":
		return serviceCmd(args[0], args[1:], stdout, stderr)
	case "containers":
		return containersCmd(args[1:], stdout, stderr)
	case "install-hook":
		return installHookCmd(args[1:], stdout, stderr)
	case "ready":
		return readyCmd(args[1:], stdout, stderr)
	}
	if strings.HasPrefix(args[0], "-") {
		// Worded as every nsrel command words an unknown option (its
		// name, without a value given with "=").
		name, _, _ := strings.Cut(args[0], "=")
		fmt.Fprintf(stderr, "nsrel-containerd: unknown option %s (see --help)\n", vocab.Printable(name))
		return 2
	}
	fmt.Fprintf(stderr, "nsrel-containerd: unknown command %q (see --help)\n", args[0])
	return 2
}

// readyCmd exits 0 if its one FILE exists and is a regular file. It is parsed as the other
// commands are: an unknown option is a usage error, not a file that is
// not there, and "--" lets FILE start with "-".
func readyCmd(args []string, stdout, stderr io.Writer) int {
	const prog = "nsrel-containerd ready"
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pos, err := vocab.ParseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return vocab.Written("nsrel-containerd", printUsage(stdout), stderr)
		}
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", prog, vocab.FlagError(err))
		return 2
	}
	switch {
	case len(pos) == 1 && pos[0] == "help":
		// As after every subcommand (and nsrel-hook's `policy check
		// help`); a ready file is named by its path ("./help").
		return vocab.Written("nsrel-containerd", printUsage(stdout), stderr)
	case len(pos) != 1:
		fmt.Fprintf(stderr, "%s: want one FILE (see --help)\n", prog)
		return 2
	case pos[0] == "":
		fmt.Fprintf(stderr, "%s: FILE needs a path, not an empty string (see --help)\n", prog)
		return 2
	}
	st, err := os.Stat(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: not ready: %s\n", prog, vocab.Printable(err.Error()))
		return 1
	}
	if !st.Mode().IsRegular() {
		// nri writes a regular file (writeReady); a directory there (a
		// probe given the ready file's directory, /run/nsrel) passed
		// before the plugin ever registered.
		fmt.Fprintf(stderr, "%s: not ready: %s: %s, not the file nri writes once registered\n", prog, vocab.Printable(pos[0]), fileKind(st.Mode()))
		return 1
	}
	return 0
}

// fileKind names the kind of file mode m is, for a message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// validListenAddress reports whether addr is an address to listen on:
// an IP address (or localhost, or nothing for every address) and a port
// number. A malformed one is a usage error, not a service that runs on
// without the metrics it was told to serve.
func validListenAddress(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		return false
	}
	return host == "" || host == "localhost" || net.ParseIP(host) != nil
}

// serviceCmd runs watch or nri until SIGTERM or SIGINT.
func serviceCmd(name string, args []string, stdout, stderr io.Writer) int {
	// A stderr whose reader went away (a supervisor's log reader that
	// died, a "| logger" that exited) fails the write (EPIPE), which
	// the logger survives: Go's default for fd 1 and 2 killed the
	// daemon at its next diagnostic (signal 13, no stop record; nri
	// dropped by containerd, its containers started unchecked).
	// Notified, not ignored: an ignored signal is inherited across
	// exec, a handled one is not. For the process's life: main flushes
	// the last diagnostics after the service returns.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	prog := "nsrel-containerd " + name
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", vocab.DefaultHookConfig, "")
	level := fs.String("log-level", "info", "")
	logTo := fs.String("log-to", "stderr", "")
	metricsAddr := fs.String("metrics-address", map[string]string{"watch": defaultWatchMetrics, "nri": defaultNRIMetrics}[name], "")
	hostRoot := fs.String("host-root", "/", "")
	var address, socket, index, injectHook, hookConfig, readyFile *string
	var timeout *time.Duration
	if name == "watch" {
		address = fs.String("address", "", "")
	} else {
		socket = fs.String("socket", nriplugin.DefaultSocket, "")
		index = fs.String("index", "10", "")
		timeout = fs.Duration("timeout", nriplugin.DefaultTimeout, "")
		injectHook = fs.String("inject-hook", vocab.DefaultHookPath, "")
		hookConfig = fs.String("hook-config", "", "")
		readyFile = fs.String("ready-file", "", "")
	}
	if code, done := parseArgs(fs, prog, args, stdout, stderr); done {
		return code
	}
	if emptyConfig(prog, *config, stderr) {
		return 2
	}
	if !filepath.IsAbs(*hostRoot) {
		fmt.Fprintf(stderr, "%s: --host-root wants an absolute path, not %s (see --help)\n", prog, vocab.Quote(*hostRoot))
		return 2
	}
	// The files the hook reads on the host, as this process sees them
	// (in a pod: the image's /etc holds none, and every container a
	// block with allowed_subid_user selects was refused).
	policy.HostRoot = filepath.Clean(*hostRoot)
	lvl, err := logrus.ParseLevel(*level)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --log-level %s: want trace, debug, info, warn, error, fatal or panic (see --help)\n", prog, vocab.Quote(*level))
		return 2
	}
	if *metricsAddr != "" && !validListenAddress(*metricsAddr) {
		fmt.Fprintf(stderr, "%s: --metrics-address %q: want IP:PORT (or localhost:PORT, or :PORT for every address; port 0 to 65535) (see --help)\n", prog, *metricsAddr)
		return 2
	}
	target, err := syslog.ParseTarget(*logTo)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --log-to: %s (see --help)\n", prog, vocab.OneLine(err))
		return 2
	}
	if index != nil && !validIndex(*index) {
		fmt.Fprintf(stderr, "%s: --index %q: want two digits (see --help)\n", prog, *index)
		return 2
	}
	if timeout != nil && *timeout <= 0 {
		fmt.Fprintf(stderr, "%s: --timeout %v: want a positive duration (see --help)\n", prog, *timeout)
		return 2
	}
	var inject *nriplugin.Injection
	if injectHook != nil && *injectHook != "none" {
		inject = &nriplugin.Injection{Hook: *injectHook, Config: *hookConfig}
		// The paths go into the container's spec, for the runtime and
		// the hook on the host: a relative one is refused, not resolved
		// here (this process may not see the host's file system).
		configFlag := "--hook-config"
		if inject.Config == "" {
			inject.Config, configFlag = *config, "--config"
		}
		for _, p := range []struct{ flag, path string }{{"--inject-hook", inject.Hook}, {configFlag, inject.Config}} {
			if filepath.IsAbs(p.path) {
				continue
			}
			if p.flag == "--config" {
				fmt.Fprintf(stderr, "%s: --config %s is relative: with no --hook-config, the injected hook reads it and needs an absolute path (see --help)\n", prog, vocab.Quote(p.path))
			} else {
				fmt.Fprintf(stderr, "%s: %s wants an absolute path, not %s (see --help)\n", prog, p.flag, vocab.Quote(p.path))
			}
			return 2
		}
	}
	cfg, err := policy.Load(*config)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", prog, vocab.OneLine(err))
		return 1
	}
	logger := logging.Service(target, "nsrel-containerd", stderr, lvl)
	// What libraries log (ttrpc under the NRI stub, containerd's client)
	// goes through the same queue, not straight to stderr.
	logging.Standard(logger)
	// A line written to stderr directly comes after the diagnostics
	// logged before it, which the logger writes from its queue; it is
	// given up after fatalWait, so that the failure exits even when
	// nobody reads stderr.
	fatalf := func(format string, args ...any) {
		logging.Flush(flushWait)
		writeWithin(stderr, fatalWait, fmt.Sprintf(format, args...))
	}
	// What policy check says of allowed_subid_user, as this process
	// reads the host's files (--host-root): a block whose user has no
	// subordinate IDs here refuses every container it selects, which a
	// root that cannot be read (/proc/1/root without the access it
	// needs) made silent.
	for _, w := range cfg.SubIDWarnings() {
		logger.WithField("host_root", policy.HostRoot).Warn(w)
	}
	warn := func(err error) { logger.WithError(err).Warn("audit log") }
	m := metrics.New(name)
	opts := cfg.AuditOptions(vocab.Version, warn)
	// Long-running, searching at every start: each rotated file is read
	// once for the containers it holds.
	opts.IndexRotated = true
	log, err := audit.Open(cfg.AuditLog, m.Instrument(opts))
	if err != nil {
		fatalf("%s: %v\n", prog, err)
		return 1
	}
	// Fail at once, with one clear line, when the audit log cannot be
	// written (wrong path, read-only file system, a symlink or FIFO in
	// its place): an empty append takes the lock and opens the log for
	// writing without adding a record. Later failures are retried.
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = log.AppendWith(pctx, func(*audit.Searcher) (*audit.Record, error) { return nil, nil })
	cancel()
	if err != nil {
		fatalf("%s: cannot write the audit log %s: %s\n", prog, vocab.Printable(cfg.AuditLog), vocab.Printable(err.Error()))
		return 1
	}
	// The log file exists now (the empty append made it), wherever a
	// symlink in its path leads.
	if !audit.KeepsBirthTimes(cfg.AuditLog) {
		logger.WithField("audit_log", cfg.AuditLog).Warn("the audit log's file system keeps no birth times (ext4 with 128-byte inodes, NFS, FUSE): " +
			"its rotated files are not indexed, and each start's search reads the current file and 4 rotated ones (short containers may be recorded without namespaces in a burst of starts)")
	}
	// The chain is one host's: a writer that names another host than
	// the hook writing the same log (run in a UTS namespace of its own,
	// as in a pod without the host's network) splits it into two nodes
	// for audit verify --nodes, and --checkpoints refuses the mix. Said
	// at start, not refused: after the host is renamed the last record
	// names the old name until a new one is written, and a plugin that
	// refused to start would inject no hook to write it.
	if last, ok := lastHost(cfg.AuditLog); ok && last != log.Host() {
		logger.WithFields(logrus.Fields{"audit_log": cfg.AuditLog, "log_host": last, "host": log.Host()}).Error(
			"the audit log's last record names another host than this process: its records will fail audit verify " +
				"(records of two hosts in one chain); run it in the host's UTS namespace (on Kubernetes: hostNetwork: true)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *metricsAddr != "" {
		// Without metrics the service still records and enforces.
		if ln, err := metrics.Listen(*metricsAddr); err != nil {
			logger.WithError(err).Error("no metrics")
		} else {
			logger.WithField("address", ln.Addr().String()).Info("serving metrics")
			go m.Serve(ctx, ln)
		}
	}
	logger.WithField("audit_log", cfg.AuditLog).Info(prog + " starting")
	if name == "watch" {
		r := &recorder.Recorder{Address: vocab.ContainerdAddress(*address), Config: cfg, Log: log, Logger: logger,
			StreamLost: func(error) { m.Error(metrics.ErrContainerd) }}
		if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			fatalf("%s: %s\n", prog, vocab.OneLine(err))
			return 1
		}
	} else {
		p := &nriplugin.Plugin{Config: cfg, Log: log, Logger: logger, Timeout: *timeout, Inject: inject}
		if *readyFile != "" {
			if err := checkReadyDir(*readyFile); err != nil {
				fatalf("%s: --ready-file: %s\n", prog, vocab.OneLine(err))
				return 1
			}
			// A file left by an earlier run (an emptyDir outlives the
			// container) must not claim readiness before registration.
			os.Remove(*readyFile)
			defer os.Remove(*readyFile)
			p.Registered = func() {
				if err := writeReady(*readyFile); err != nil {
					logger.WithError(err).Error("cannot write the ready file")
				}
			}
		}
		if err := p.Run(ctx, *socket, *index); err != nil {
			fatalf("%s: %s\n", prog, vocab.OneLine(err))
			return 1
		}
	}
	logger.Info(prog + " stopped")
	return 0
}

// lastHostLines bounds how many lines at the end of the audit log
// [lastHost] reads for one that decodes.
const lastHostLines = 16

// lastHost returns the host of the last record of the current audit
// log file; ok is false when it has none (a new or freshly rotated
// log), none decodes among its last lines, or it cannot be read.
func lastHost(path string) (host string, ok bool) {
	n := 0
	for line, err := range audit.LinesBackward(path) {
		if err != nil || n == lastHostLines {
			return "", false
		}
		n++
		if h, _, ok := audit.HeadOf(line); ok {
			return h.Host, true
		}
	}
	return "", false
}

// fatalWait bounds the write of the line a failing service ends with
// (after [flushWait] for the diagnostics before it).
const fatalWait = time.Second

// writeWithin writes s to w, waiting at most d: a write that takes
// longer (a stderr nobody reads: a full pipe, a stalled journald) is
// left to finish, or not, in the background, so that the caller goes on
// to exit, and the service's supervisor restarts it. It used to wait for
// good, and the failed service never exited (TestFatalToStalledStderr).
func writeWithin(w io.Writer, d time.Duration, s string) {
	done := make(chan struct{})
	go func() {
		io.WriteString(w, s)
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// checkReadyDir checks the directory of the ready file, whose entry at
// path is removed and replaced by name: the way to it must be trusted
// ([safefile.CheckDirs]: a symlink another user planted in /tmp must not
// lead root to remove and replace a file in a directory of that user's
// choosing), and the directory must exist (in /tmp another user could
// make it, or a symlink there, before the file is written), and, if it
// is no symlink, be owned by root or this user. It may be writable by
// others (a Kubernetes emptyDir is 0777): nothing in it is followed (see
// writeReady).
func checkReadyDir(path string) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := safefile.CheckDirs(filepath.Dir(dir)); err != nil {
		return err
	}
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such directory (make it first, root's)", vocab.Printable(dir))
	case err != nil:
		return err
	case st.Mode()&fs.ModeSymlink != 0:
		return safefile.CheckDirs(dir)
	case !st.IsDir():
		return fmt.Errorf("%s: not a directory", vocab.Printable(dir))
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 0 && int(uid) != os.Geteuid() {
		return fmt.Errorf("%s: owned by uid %d, not root or uid %d: refusing it", vocab.Printable(dir), uid, os.Geteuid())
	}
	return nil
}

// writeReady writes the ready file under a new name in its directory
// (O_EXCL: nothing there is followed or written) and renames it onto
// path: whatever someone who may write the directory put at path (a
// symlink, a FIFO, a hard link to a file of root's) is replaced, never
// written through.
func writeReady(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.WriteString("registered\n")
	if err = errors.Join(err, f.Close()); err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func validIndex(s string) bool {
	return len(s) == 2 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9'
}
