package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultBusybox is where Debian's busybox-static package installs the
// static busybox binary.
const DefaultBusybox = "/bin/busybox"

// SpecVersion is the ociVersion written to config.json: the oldest
// version with every field used here, since older runtimes (crun 1.8)
// refuse versions newer than theirs.
const SpecVersion = "1.0.2"

// Options describe a bundle. The zero value gives a container that runs
// `sleep 3600` as root in new PID, mount, IPC, UTS, network and cgroup
// namespaces, without a user namespace.
type Options struct {
	// Args is the container process; default {"sleep", "3600"}.
	Args []string
	// Rootfs is an existing root filesystem (from [Rootfs]) to use
	// instead of building one inside the bundle. It must be an absolute
	// path.
	Rootfs string
	// Busybox is the static busybox binary to copy; default
	// [DefaultBusybox].
	Busybox string
	// UserNS puts the container in a new user namespace mapping
	// container IDs 0..MapSize-1 to host IDs MapHost..MapHost+MapSize-1.
	UserNS bool
	// MapHost is the first host UID and GID of the mapping; default
	// 100000.
	MapHost uint32
	// MapSize is the number of mapped IDs; default 65536.
	MapSize uint32
	// Mappings, when set, replace MapHost and MapSize: the UID and the
	// GID mappings of the user namespace.
	Mappings []specs.LinuxIDMapping
	// UserNSPath, with UserNS, joins the user namespace at this path
	// (/proc/PID/ns/user) instead of creating one; Mappings must then
	// repeat its maps, which runtimes check against the namespace.
	UserNSPath string
	// NoPIDNS keeps the container in the runtime's PID namespace (with
	// UserNS, the runtime's /proc bound: it may mount no proc).
	NoPIDNS bool
	// PIDNSPath joins the PID namespace at this path (/proc/PID/ns/pid)
	// instead of creating one.
	PIDNSPath string
	// Hostname is set in the container's UTS namespace; default "nsrel".
	Hostname string
	// User is the container process's user and group; the zero value
	// is root.
	User specs.User
	// Hooks are copied into the spec.
	Hooks *specs.Hooks
	// Annotations are copied into the spec.
	Annotations map[string]string
	// Mounts are added to the spec's.
	Mounts []specs.Mount
}

// Bundle is a bundle directory on disk.
type Bundle struct {
	// Dir is the bundle directory (holds config.json).
	Dir string
	// Rootfs is the absolute path of the root filesystem.
	Rootfs string
	// Spec is the spec written to config.json.
	Spec *specs.Spec
}

// Create makes dir (if needed) into a bundle: it builds dir/rootfs unless
// opts.Rootfs names one, and writes dir/config.json.
func Create(dir string, opts Options) (*Bundle, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	rootfs := opts.Rootfs
	if rootfs == "" {
		rootfs = filepath.Join(dir, "rootfs")
		if err := Rootfs(rootfs, opts.Busybox); err != nil {
			return nil, err
		}
	} else if !filepath.IsAbs(rootfs) {
		return nil, fmt.Errorf("bundle: rootfs %q is not an absolute path", rootfs)
	}
	if opts.UserNS {
		if err := Reachable(rootfs); err != nil {
			return nil, err
		}
	}
	spec := Spec(rootfs, opts)
	b := &Bundle{Dir: dir, Rootfs: rootfs, Spec: spec}
	if err := b.Write(); err != nil {
		return nil, err
	}
	return b, nil
}

// Write (re)writes b.Dir/config.json from b.Spec, e.g. after a caller
// changed the hooks.
func (b *Bundle) Write() error {
	data, err := json.MarshalIndent(b.Spec, "", "\t")
	if err != nil {
		return fmt.Errorf("bundle: encode spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "config.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Rootfs builds a busybox root filesystem in dir: bin/busybox copied from
// busybox (default [DefaultBusybox]), a symlink bin/APPLET -> busybox for
// each applet it lists, and the empty directories the runtime mounts on
// (proc, dev, sys, tmp, etc). The binary must be static: nothing else is
// copied.
func Rootfs(dir, busybox string) error {
	if busybox == "" {
		busybox = DefaultBusybox
	}
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "root", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	dst := filepath.Join(dir, "bin", "busybox")
	if err := copyFile(busybox, dst, 0o755); err != nil {
		return err
	}
	// Ask the original for its applets (no PATH lookup, no shell): the
	// copy was only just written.
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("bundle: %s --list: %w", busybox, err)
	}
	for _, name := range strings.Fields(string(out)) {
		if name == "busybox" || strings.ContainsRune(name, '/') {
			continue
		}
		err := os.Symlink("busybox", filepath.Join(dir, "bin", name))
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	for _, l := range []struct{ name, target string }{{"sbin", "bin"}, {"usr", "."}} {
		err := os.Symlink(l.target, filepath.Join(dir, l.name))
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nnobody:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	return nil
}

// copyFile copies src to dst, an executable, while no goroutine of this
// process can fork: a child forked while dst is open for writing holds
// the descriptor until it execs, and exec'ing dst in that window (here,
// or runc starting a container from it) fails with ETXTBSY, "text file
// busy" (golang/go#22315). os/exec forks under syscall.ForkLock, which
// this holds for writing.
func copyFile(src, dst string, mode os.FileMode) error {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("bundle: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Spec returns the runtime spec for a container with root filesystem
// rootfs, as [Create] writes it. It is a pure function.
func Spec(rootfs string, opts Options) *specs.Spec {
	args := opts.Args
	if len(args) == 0 {
		args = []string{"sleep", "3600"}
	}
	hostname := opts.Hostname
	if hostname == "" {
		hostname = "nsrel"
	}
	s := &specs.Spec{
		Version: SpecVersion,
		Process: &specs.Process{
			User: opts.User,
			Args: args,
			Env:  []string{"PATH=/bin", "HOME=/root"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps,
				Effective: defaultCaps,
				Permitted: defaultCaps,
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Hostname: hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=16m"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Hooks:       opts.Hooks,
		Annotations: opts.Annotations,
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.NetworkNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
				"/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
				"/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	if !opts.NoPIDNS {
		s.Linux.Namespaces = append([]specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: opts.PIDNSPath}}, s.Linux.Namespaces...)
	}
	if opts.UserNS {
		host, size := opts.MapHost, opts.MapSize
		if host == 0 {
			host = 100000
		}
		if size == 0 {
			size = 65536
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: opts.UserNSPath})
		if opts.NoPIDNS {
			// A user namespace may mount a proc only for a PID
			// namespace it owns: the runtime's /proc instead, as
			// podman does for --pid=host.
			s.Mounts[0] = specs.Mount{Destination: "/proc", Type: "bind", Source: "/proc", Options: []string{"rbind", "nosuid", "nodev", "noexec"}}
		}
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: size}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: size}}
		if len(opts.Mappings) > 0 {
			s.Linux.UIDMappings = append([]specs.LinuxIDMapping(nil), opts.Mappings...)
			s.Linux.GIDMappings = append([]specs.LinuxIDMapping(nil), opts.Mappings...)
		}
	} else {
		// gid=5 (tty) exists only when the mapping covers it; without a
		// user namespace it always does.
		for i := range s.Mounts {
			if s.Mounts[i].Type == "devpts" {
				s.Mounts[i].Options = append(s.Mounts[i].Options, "gid=5")
			}
		}
	}
	s.Mounts = append(s.Mounts, opts.Mounts...)
	return s
}

var defaultCaps = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}

// Reachable makes sure the mapped root of a user namespace container
// can reach rootfs: every directory on the way needs the search bit for
// others. Directories below the system's temporary directory (where
// tests and the demo build bundles, often in 0700 directories) get o+x;
// anywhere else a missing bit is an error, since changing it might
// expose more than the caller meant.
func Reachable(rootfs string) error {
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = os.TempDir()
	}
	for dir := rootfs; ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			rel, rerr := filepath.Rel(tmp, dir)
			if rerr != nil || rel == "." || strings.HasPrefix(rel, "..") {
				return fmt.Errorf("bundle: %s is not searchable by others (mode %v): the container's mapped root could not reach its rootfs", dir, st.Mode().Perm())
			}
			if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// Chown gives every file below dir (dir included, symlinks themselves
// rather than their targets) to uid:gid: a root filesystem that a
// runtime mounts for a user namespace container whose mapped root must
// write to it (podman creates /run/.containerenv) needs it.
func Chown(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		return nil
	})
}
