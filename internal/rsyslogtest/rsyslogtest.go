package rsyslogtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
)

// Timeout bounds every wait of this package: a daemon's start, a port, a
// socket, lines arriving in a file.
const Timeout = 30 * time.Second

// moduleDirs are where distributions put rsyslog's modules; the first
// with imfile.so wins (Debian: /usr/lib/<multiarch>/rsyslog).
var moduleDirs = []string{"/usr/lib/*/rsyslog", "/usr/lib/rsyslog", "/usr/lib64/rsyslog"}

// Bin returns the path of rsyslogd and its module directory, or an error
// that says what is missing.
func Bin() (bin, modDir string, err error) {
	bin, err = exec.LookPath("rsyslogd")
	if err != nil {
		// root's PATH has /usr/sbin; another user's may not.
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr != nil {
			return "", "", fmt.Errorf("rsyslogd: %w", err)
		}
		bin = "/usr/sbin/rsyslogd"
	}
	for _, pat := range moduleDirs {
		m, _ := filepath.Glob(filepath.Join(pat, "imfile.so"))
		if len(m) > 0 {
			return bin, filepath.Dir(m[0]), nil
		}
	}
	return "", "", fmt.Errorf("no rsyslog module directory with imfile.so in %s", strings.Join(moduleDirs, ", "))
}

// Daemon is one private rsyslogd.
type Daemon struct {
	// Name names the daemon in messages ("node", "collector").
	Name string
	// Dir holds its config, pid file, work directory and output, and
	// whatever files its config names with [Daemon.Path].
	Dir string

	bin, modDir string
	cmd         *exec.Cmd
	done        chan struct{} // closed when the process has exited
}

// New prepares a daemon (its directory, 0700) without starting it, so
// that its paths can be put into other configs first. It requires
// rsyslogd and its modules.
func New(t testing.TB, name string) *Daemon {
	t.Helper()
	bin, modDir, err := Bin()
	nstest.Require(t, err == nil, "needs Debian's rsyslog (%v); scripts/deps.sh installs it", err)
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &Daemon{Name: name, Dir: dir, bin: bin, modDir: modDir}
}

// Path returns the path of name in the daemon's directory.
func (d *Daemon) Path(name string) string { return filepath.Join(d.Dir, name) }

// PortFile returns the file an imtcp input with port="0" names in its
// listenPortFileName: [Daemon.Port] reads the port the kernel chose
// from it.
func (d *Daemon) PortFile(name string) string { return d.Path(name + ".port") }

// Prelude is what [Daemon.Start] puts before a config (%s is the work
// directory): messages up to 256 KiB whole (the default cuts at 8 KiB),
// no escaping of control characters (bytes are forwarded as received),
// and one worker on the main queue, so that messages of one input leave
// in the order they came.
const Prelude = `global(workDirectory="%s" maxMessageSize="256k" parser.escapeControlCharactersOnReceive="off")
main_queue(queue.workerThreads="1")
`

// Start writes the [Prelude] and config (RainerScript) to the daemon's
// rsyslog.conf, checks it (rsyslogd -N1) and starts rsyslogd in the
// foreground with its own pid file and module directory. The daemon is
// stopped when the test ends: SIGTERM, then SIGKILL to its process group.
func (d *Daemon) Start(t testing.TB, config string) {
	t.Helper()
	d.start(t, Prelude, config)
}

// SystemPrelude is what [Daemon.StartSystem] puts before a config (%s
// is the work directory): the work directory, as a system's rsyslog.conf
// sets it (Debian: $WorkDirectory /var/spool/rsyslog), and nothing else.
const SystemPrelude = "$WorkDirectory %s\n"

// StartSystem is [Daemon.Start] with [SystemPrelude] instead of
// [Prelude]: rsyslog's defaults (messages cut at 8 KiB, control
// characters escaped, its own queue settings), so that a config meant
// for a system's rsyslog (a file of /etc/rsyslog.d) runs as it would
// there, with only what it sets itself.
func (d *Daemon) StartSystem(t testing.TB, config string) {
	t.Helper()
	d.start(t, SystemPrelude, config)
}

func (d *Daemon) start(t testing.TB, prelude, config string) {
	t.Helper()
	work := d.Path("work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := d.Path("rsyslog.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(prelude, work)+config), 0o600); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(d.bin, "-N1", "-f", conf, "-M", d.modDir)
	check.Env = env()
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("rsyslog %s: config does not check: %v\n%s\n%s", d.Name, err, out, numbered(prelude, config))
	}
	d.launch(t)
	t.Cleanup(func() { d.stop(t) })
}

// launch starts rsyslogd in the foreground on the daemon's config, its
// output appended to rsyslogd.out.
func (d *Daemon) launch(t testing.TB) {
	t.Helper()
	out, err := os.OpenFile(d.Path("rsyslogd.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child has its own descriptor
	d.cmd = exec.Command(d.bin, "-n", "-f", d.Path("rsyslog.conf"), "-i", d.Path("rsyslogd.pid"), "-M", d.modDir)
	d.cmd.Env = env()
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd %s: %v", d.Name, err)
	}
	done := make(chan struct{})
	d.done = done
	cmd := d.cmd
	// What it leaves in its process group goes with it.
	go func() { nstest.WaitGroup(cmd); close(done) }()
}

// Stop stops the daemon as a service manager does, with SIGTERM, and
// waits for it to exit; it fails the test if the daemon does not exit
// within [Timeout] (what rsyslog saves as it stops is what stopping it
// so is for). [Daemon.Restart] starts it again.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.exited() {
		t.Fatalf("rsyslogd %s exited before it was stopped\n%s", d.Name, d.Output())
	}
	d.cmd.Process.Signal(syscall.SIGTERM) // through a pidfd: never another process
	select {
	case <-d.done:
	case <-time.After(Timeout):
		t.Fatalf("rsyslogd %s (pid %d) did not exit %v after SIGTERM\n%s", d.Name, d.cmd.Process.Pid, Timeout, d.Output())
	}
}

// Freeze stops the daemon with SIGSTOP: it takes, writes and
// acknowledges nothing more until it is killed ([Daemon.Crash]).
func (d *Daemon) Freeze(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("rsyslogd %s: SIGSTOP: %v", d.Name, err)
	}
}

// Crash kills the daemon with SIGKILL, as a crash would (what it held in
// memory is lost), and waits for it to exit; [Daemon.Restart] starts it
// again.
func (d *Daemon) Crash(t testing.TB) {
	t.Helper()
	d.cmd.Process.Kill() // through a pidfd: never another process
	select {
	case <-d.done:
	case <-time.After(Timeout):
		t.Fatalf("rsyslogd %s (pid %d) did not exit %v after SIGKILL", d.Name, d.cmd.Process.Pid, Timeout)
	}
}

// Restart starts the daemon [Daemon.Stop] stopped (or [Daemon.Crash]
// killed) again, with the same config and work directory (where rsyslog
// keeps what it saved).
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	if !d.exited() {
		t.Fatalf("rsyslogd %s restarted while it runs", d.Name)
	}
	// A killed rsyslogd leaves its pid file, and refuses to start while
	// the PID in it names a live process (by then, maybe another one).
	os.Remove(d.Path("rsyslogd.pid"))
	d.launch(t)
}

// env is rsyslogd's environment: a PATH and nothing inherited (no
// NOTIFY_SOCKET of a service manager, no locale).
func env() []string { return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"} }

func (d *Daemon) stop(t testing.TB) {
	if d.exited() {
		return
	}
	pid := d.cmd.Process.Pid
	// Through its pidfd: a PID reaped is never another's signal.
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopGrace):
		// What it still holds (a forward it retries) is of no use to a
		// test that is over.
		t.Logf("rsyslogd %s (pid %d) did not exit %v after SIGTERM; killing it", d.Name, pid, stopGrace)
	}
	// Its process group goes with it (WaitGroup in launch); signalled
	// by its ID once it was reaped, another package's group that took
	// the ID would have.
	d.cmd.Process.Kill()
	select {
	case <-d.done:
	case <-time.After(Timeout):
		t.Errorf("rsyslogd %s (pid %d) did not exit %v after SIGKILL", d.Name, pid, Timeout)
	}
}

// stopGrace is how long a daemon has to exit on SIGTERM before it is
// killed.
const stopGrace = 5 * time.Second

// Pid returns the process ID of the running daemon.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Output returns what rsyslogd printed (its errors), for failure messages.
func (d *Daemon) Output() string {
	b, _ := os.ReadFile(d.Path("rsyslogd.out"))
	return fmt.Sprintf("--- rsyslogd %s output:\n%s---", d.Name, b)
}

// exited reports whether the daemon's process has exited.
func (d *Daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// poll calls ok every 10 ms until it returns true, failing the test after
// [Timeout] or as soon as the daemon has exited.
func (d *Daemon) poll(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !ok() {
		switch {
		case d.exited():
			t.Fatalf("rsyslogd %s exited while waiting for %s\n%s", d.Name, what, d.Output())
		case time.Now().After(deadline):
			t.Fatalf("rsyslogd %s: no %s after %v\n%s", d.Name, what, Timeout, d.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Port waits until the imtcp input whose listenPortFileName is
// PortFile(name) listens, and returns its port on 127.0.0.1.
func (d *Daemon) Port(t testing.TB, name string) int {
	t.Helper()
	port := 0
	d.poll(t, "port in "+d.PortFile(name), func() bool {
		b, err := os.ReadFile(d.PortFile(name))
		if err != nil {
			return false
		}
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || p <= 0 {
			return false
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		port = p
		return true
	})
	return port
}

// WaitPort waits until the daemon listens on port on 127.0.0.1 (an
// input whose port the test chose).
func (d *Daemon) WaitPort(t testing.TB, port int) {
	t.Helper()
	d.poll(t, fmt.Sprintf("listener on port %d", port), func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// WaitSocket waits until the imuxsock input on path takes datagrams.
func (d *Daemon) WaitSocket(t testing.TB, path string) {
	t.Helper()
	d.poll(t, "socket "+path, func() bool {
		c, err := net.Dial("unixgram", path)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// WaitLines waits until path holds at least n complete lines and returns
// them, each without its newline. A file that does not exist yet holds
// none. Failures show the output of the daemons given.
func WaitLines(t testing.TB, path string, n int, daemons ...*Daemon) [][]byte {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		lines, err := Lines(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if len(lines) >= n {
			return lines
		}
		for _, d := range daemons {
			if d.exited() {
				t.Fatalf("rsyslogd %s exited while %s had %d of %d lines\n%s", d.Name, path, len(lines), n, d.Output())
			}
		}
		if time.Now().After(deadline) {
			var out []string
			for _, d := range daemons {
				out = append(out, d.Output())
			}
			t.Fatalf("%s: %d of %d lines after %v\n%s", path, len(lines), n, Timeout, strings.Join(out, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Lines returns the complete lines of path, each without its newline; a
// last line without a newline (being written) is left out.
func Lines(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil, nil
	}
	return bytes.Split(b[:end], []byte{'\n'}), nil
}

// numbered returns config with line numbers, as rsyslogd's errors count
// them after the prelude.
func numbered(prelude, config string) string {
	var b strings.Builder
	off := strings.Count(prelude, "\n")
	for i, l := range strings.Split(config, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1+off, l)
	}
	return b.String()
}

// Diagnostics starts a daemon that takes RFC 5424 messages on a local
// socket (returned, ready) and over TCP on 127.0.0.1 (the port,
// listening) and writes those with MSGID "diag" to out, one a line:
// "APP-NAME MSGID SEVERITY STRUCTURED-DATA MSG".
func Diagnostics(t testing.TB) (d *Daemon, sock string, port int, out string) {
	t.Helper()
	d = New(t, "collector")
	sock, out = d.Path("log.sock"), d.Path("diag.log")
	d.Start(t, fmt.Sprintf(`module(load="imtcp")
module(load="imuxsock" sysSock.use="off")
template(name="diag" type="string" string="%%app-name%% %%msgid%% %%syslogseverity%% %%structured-data%% %%msg%%\n")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%q)
input(type="imuxsock" socket=%q useSpecialParser="off" parseHostname="on" rateLimit.interval="0")
if $msgid == "diag" then action(type="omfile" file=%q template="diag")
`, d.PortFile("tcp"), sock, out))
	port = d.Port(t, "tcp")
	d.WaitSocket(t, sock)
	return d, sock, port, out
}

// JournalSocket listens on a datagram socket in journald's place
// (journald does not run on the test machine) until the test ends, and
// returns its path and the channel of the datagrams it receives, each a
// native-protocol entry; the channel holds up to 1024 unread.
func JournalSocket(t testing.TB) (string, <-chan []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan []byte, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case ch <- append([]byte(nil), buf[:n]...):
			default: // nobody reads them (a benchmark)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return path, ch
}

// Datagram returns the next datagram from ch, failing the test after
// [Timeout].
func Datagram(t testing.TB, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(Timeout):
		t.Fatalf("no datagram after %v", Timeout)
		return nil
	}
}
