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
	// The helper's own deadline comes before the caller's, so that what
	// it says of a namespace that did not answer, and what it listed,
	// arrive before the caller gives up on it.
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d) - 300*time.Millisecond; left > 100*time.Millisecond && left < timeout {
			timeout = left
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helper, "containers", "--address", addr, "--timeout", timeout.String())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{} // the address is on the command line; nothing else is needed
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
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
			return cs, &PartialError{errors.New(msg)}
		}
		return nil, errors.New(msg)
	}
	var cs []discover.Container
	if err := json.Unmarshal(stdout.Bytes(), &cs); err != nil {
		return nil, fmt.Errorf("%s containers: %w", helper, err)
	}
	return cs, nil
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
