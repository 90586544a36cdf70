package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// HelperName is the command that lists a containerd daemon's containers
// for the tree commands (`nsrel-containerd containers`).
const HelperName = "nsrel-containerd"

// CheckSocket reports whether a daemon can be listening at addr (a path,
// or unix://PATH; other schemes are not checked): a missing socket is the
// common "not installed or not running" case, said plainly instead of
// after a dial timeout. The error matches [fs.ErrNotExist] when there is
// no file, and [fs.ErrPermission] when the path cannot be searched (a
// user other than root, before /run/containerd, mode 0700): then whether
// a socket is there is not known, and the error says so.
func CheckSocket(addr string) error {
	path := strings.TrimPrefix(addr, "unix://")
	if strings.Contains(path, "://") {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("cannot reach the socket at %s: %w", path, err)
		}
		return fmt.Errorf("no socket at %s (not running?): %w", path, err)
	}
	return nil
}

// HelperSource lists the containers of the containerd daemon at Address
// by running `nsrel-containerd containers`, so that the tree commands
// link no containerd client: its gRPC and protobuf packages would cost
// every run their start-up, also where no daemon runs. Nothing is run
// when there is no socket.
type HelperSource struct {
	// Address is the containerd socket (see [vocab.ContainerdAddress]).
	Address string
	// Timeout bounds the helper's query.
	Timeout time.Duration
	// Helper is the helper's path; empty means [FindHelper].
	Helper string
}

// Name implements [discover.ContainerSource].
func (s *HelperSource) Name() string { return EngineContainerd }

// List implements [discover.ContainerSource].
func (s *HelperSource) List(ctx context.Context) ([]discover.Container, error) {
	addr := vocab.ContainerdAddress(s.Address)
	if err := CheckSocket(addr); err != nil {
		return nil, err
	}
	helper := s.Helper
	if helper == "" {
		var err error
		if helper, err = FindHelper(); err != nil {
			return nil, err
		}
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = vocab.DefaultContainerdTimeout
	}
	if d, ok := ctx.Deadline(); ok {
		timeout = helperTimeout(timeout, time.Until(d))
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helper, "containers", "--address", addr, "--timeout", timeout.String())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{} // the address is on the command line; nothing else is needed
	err := cmd.Run()
	if err != nil && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// It exited on its own, its list whole, as the context ended
		// (Run then reports the context's error).
		err = nil
	}
	if err != nil {
		// Killed at the caller's deadline all the same (a loaded
		// machine); not when it exited on its own (status 1, a
		// namespace that failed, said on stderr) just as the context
		// ended.
		if ctx.Err() != nil && (cmd.ProcessState == nil || !cmd.ProcessState.Exited()) {
			// The helper prints its list, one JSON array, once every
			// namespace has answered or failed: if the array is
			// whole, its namespaces are.
			var cs []discover.Container
			if json.Unmarshal(stdout.Bytes(), &cs) == nil && len(cs) > 0 {
				return cs, &PartialError{fmt.Errorf("%s did not exit before the deadline (%w): a namespace that failed may not be named", HelperName, ctx.Err())}
			}
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		// Its errors name the subcommand (older helpers: the
		// command only).
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, HelperName+" containers: "), HelperName+": ")
		if msg == "" {
			msg = err.Error()
		}
		// A namespace that failed: the others' containers were listed.
		var cs []discover.Container
		if json.Unmarshal(stdout.Bytes(), &cs) == nil && len(cs) > 0 {
			return cs, &PartialError{&HelperError{msg}}
		}
		return nil, &HelperError{msg}
	}
	var cs []discover.Container
	if err := json.Unmarshal(stdout.Bytes(), &cs); err != nil {
		return nil, fmt.Errorf("%s containers: %w", helper, err)
	}
	return cs, nil
}

// helperTimeout returns the --timeout of a helper run with left until the
// caller's deadline, at most timeout: strictly inside the caller's
// deadline, so that what the helper says of a namespace that did not
// answer, and what it listed, arrive before the caller gives up on it
// (and kills it). 300 ms are kept for its start and exit, or half of
// what is left when that is short (a --container-timeout below about
// half a second kept the whole timeout before, and one stuck namespace
// hid every namespace's containers).
func helperTimeout(timeout, left time.Duration) time.Duration {
	h := left - min(300*time.Millisecond, left/2)
	// At least 1 ms: the helper refuses 0, and the caller's deadline
	// ends the run anyway.
	return max(min(timeout, h), time.Millisecond)
}

// FindHelper returns the path of nsrel-containerd: next to the running
// command (a build directory), in the sbin directory beside its bin
// directory (make install), or in the directory the build was made for
// (the one of [vocab.DefaultHookPath]). Run as root, the helper must pass
// the trust rule of [safefile.OpenTrusted] (root-owned, nobody else may
// write it or a directory above it): the tree commands run as root and
// must not run what another user could have replaced.
func FindHelper() (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		dirs = append(dirs, dir, filepath.Join(filepath.Dir(dir), "sbin"))
	}
	dirs = append(dirs, filepath.Dir(vocab.DefaultHookPath))
	return findHelper(dirs)
}

func findHelper(dirs []string) (string, error) {
	var tried []string
	for _, d := range dirs {
		p := filepath.Join(d, HelperName)
		if slices.Contains(tried, p) {
			continue
		}
		tried = append(tried, p)
		f, err := safefile.OpenTrusted(p, os.O_RDONLY, false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", HelperName, err)
		}
		f.Close()
		return p, nil
	}
	return "", fmt.Errorf("%s, which lists containerd's containers, is not installed (looked in %s)", HelperName, strings.Join(tried, ", "))
}

// TreeSources returns the container sources of lsuserns and lspidns, in
// the order their annotations should prefer: the containerd daemon at
// address through the helper (see [HelperSource]), then a [Local] source
// of the runc and crun state roots and the nsrel-hook audit log.
func TreeSources(address string, timeout time.Duration) []discover.ContainerSource {
	return []discover.ContainerSource{
		&HelperSource{Address: address, Timeout: timeout},
		Local{&StateSource{}, &AuditSource{}},
	}
}

// HelperError is the helper's own message, the last line it printed on
// stderr: printed terminal-safe by the helper already ([vocab.OneLine]
// quotes a message with anything unprintable), so that a caller prints it
// with [vocab.Printable], which leaves such a line as it is; escaped again
// ([vocab.Escape]), its backslashes were doubled ("s\\x1b[2Jk").
type HelperError struct{ Msg string }

func (e *HelperError) Error() string { return e.Msg }
