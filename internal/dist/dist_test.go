package dist

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/clidoc"
	"github.com/nsrel/nsrel/internal/nstest"
)

// commands are nsrel's four commands, where `make install` puts them
// (relative to PREFIX) and their man section.
var commands = []struct{ name, dir, section string }{
	{"lsuserns", "bin", "1"}, {"lspidns", "bin", "1"},
	{"nsrel-hook", "sbin", "8"}, {"nsrel-containerd", "sbin", "8"},
}

// makeInstall runs `make install` into a new DESTDIR with the given make
// variables and returns the DESTDIR.
func makeInstall(t *testing.T, vars ...string) string {
	t.Helper()
	dest := t.TempDir()
	makeInstallInto(t, dest, vars...)
	return dest
}

// makeInstallInto runs `make install` into DESTDIR dest, which may hold
// files already.
func makeInstallInto(t *testing.T, dest string, vars ...string) {
	t.Helper()
	run(t, "", append([]string{nstest.RequireCmd(t, "make"), "--no-print-directory", "install",
		"DESTDIR=" + dest, "BIN=" + filepath.Join(t.TempDir(), "bin")}, vars...)...)
}

// TestInstallKeepsConfig installs over an /etc/nsrel that an admin made
// private (mode 0700, a hook.json of mode 0600): make install leaves the
// directory's mode, the file and its mode as they were, and adds only
// the configs that are missing.
func TestInstallKeepsConfig(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	etc := filepath.Join(dest, "etc/nsrel")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(etc, 0o700); err != nil {
		t.Fatal(err)
	}
	mine := []byte("{\"mode\": \"audit\"}\n")
	if err := os.WriteFile(filepath.Join(etc, "hook.json"), mine, 0o600); err != nil {
		t.Fatal(err)
	}
	makeInstallInto(t, dest)
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{etc, os.ModeDir | 0o700}, {filepath.Join(etc, "hook.json"), 0o600}, {filepath.Join(etc, "hook-enforce.json"), 0o644}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v after make install, want %v", strings.TrimPrefix(c.path, dest), fi.Mode(), c.mode)
		}
	}
	if got, err := os.ReadFile(filepath.Join(etc, "hook.json")); err != nil || !bytes.Equal(got, mine) {
		t.Errorf("make install changed the admin's hook.json: %q, %v", got, err)
	}
}

// TestInstallReplacesSymlinks: symlinks someone put in a staging tree
// where make install writes a shipped file or a unit are replaced, the
// files they point at left alone. The rendered files were written through
// them with a redirection and chmod'ed 0644: a user who could write the
// DESTDIR before root ran make install overwrote any file of root's and
// made it readable by all.
func TestInstallReplacesSymlinks(t *testing.T) {
	t.Parallel()
	dest, victimDir := t.TempDir(), t.TempDir()
	var victims []string
	for _, p := range []string{"usr/local/share/nsrel/hook.json", "usr/local/share/nsrel/containerd/config-v2.toml", "usr/local/lib/systemd/system/nsrel-nri.service"} {
		victim := filepath.Join(victimDir, strconv.Itoa(len(victims)))
		if err := os.WriteFile(victim, []byte("root's secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		victims = append(victims, victim)
		link := filepath.Join(dest, p)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
	}
	makeInstallInto(t, dest)
	for _, v := range victims {
		got, err := os.ReadFile(v)
		fi, serr := os.Stat(v)
		if err != nil || string(got) != "root's secret\n" || serr != nil || fi.Mode() != 0o600 {
			t.Errorf("%s after make install: %q, %v, mode %v; want it untouched", v, got, err, fi.Mode())
		}
	}
	for _, p := range []string{"usr/local/share/nsrel/hook.json", "usr/local/lib/systemd/system/nsrel-nri.service"} {
		if fi, err := os.Lstat(filepath.Join(dest, p)); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, %v; want a regular file of mode 0644", p, fi, err)
		}
	}
}

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = nstest.RepoFile(t, ".")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// ownPath matches an absolute path of nsrel's own files in a shipped
// file: its binaries, configs, docs and units. Runtime paths (the audit
// log, sockets) are made at run time and not checked.
var ownPath = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-]|file://)(/(?:usr|etc|lib|opt/etc)/[A-Za-z0-9_./-]*nsrel[A-Za-z0-9_./-]*)`)

// TestInstall installs with two prefixes and checks that every path of
// nsrel's own that an installed file names exists in the DESTDIR, that
// the units pass systemd-analyze there, and that the README's commands
// after `make install` work as written.
func TestInstall(t *testing.T) {
	nstest.RequireRoot(t)
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars []string
		pre  string
		etc  string // SYSCONFDIR
	}{
		{"default", nil, "/usr/local", "/etc"},
		{"usr", []string{"PREFIX=/usr", "SYSTEMDUNITDIR=/lib/systemd/system"}, "/usr", "/etc"},
		{"sysconfdir", []string{"SYSCONFDIR=/opt/etc"}, "/usr/local", "/opt/etc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := makeInstall(t, tc.vars...)
			var checked []string
			err := filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if bytes.IndexByte(data, 0) >= 0 || strings.HasSuffix(path, ".md") {
					return nil // binaries; the docs show paths of both layouts
				}
				text := strings.ReplaceAll(string(data), `\-`, "-") // roff
				for _, m := range ownPath.FindAllStringSubmatch(text, -1) {
					p := strings.TrimRight(m[1], ".")
					// Only nsrel's install paths; the runtime paths (/var,
					// /run) and those inside the node-agent container
					// (/etc/nsrel-k8s, /opt/nsrel) are made elsewhere.
					if !strings.HasPrefix(p, "/usr/") && !strings.HasPrefix(p, "/lib/") && !strings.HasPrefix(p, tc.etc+"/nsrel/") {
						continue
					}
					if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
						t.Errorf("%s names %s, which the install does not have", strings.TrimPrefix(path, dest), p)
					}
					if !strings.HasPrefix(p, tc.pre+"/") && !strings.HasPrefix(p, tc.etc+"/") {
						t.Errorf("%s names %s, outside PREFIX %s", strings.TrimPrefix(path, dest), p, tc.pre)
					}
					checked = append(checked, p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{tc.pre + "/sbin/nsrel-hook", tc.pre + "/sbin/nsrel-containerd", tc.etc + "/nsrel/hook.json", tc.pre + "/share/doc/nsrel/containerd.md"} {
				if !contains(checked, want) {
					t.Errorf("no installed file names %s", want)
				}
			}
			unitDir := tc.pre + "/lib/systemd/system"
			if tc.pre == "/usr" {
				unitDir = "/lib/systemd/system"
			}
			// systemd-analyze checks the unit (ExecStart pointed at the
			// installed binary) and runs man(1) for its Documentation=.
			// One directory: the timer is checked with its service.
			analyze := nstest.RequireCmd(t, "systemd-analyze")
			units := t.TempDir()
			for _, u := range []string{"nsrel-watch.service", "nsrel-nri.service", "nsrel-checkpoint.service", "nsrel-checkpoint.timer"} {
				data, err := os.ReadFile(filepath.Join(dest, unitDir, u))
				if err != nil {
					t.Fatal(err)
				}
				unit := filepath.Join(units, u)
				text := strings.ReplaceAll(string(data), "ExecStart="+tc.pre+"/sbin/", "ExecStart="+dest+tc.pre+"/sbin/")
				if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(analyze, "verify", unit)
				cmd.Env = append(os.Environ(), "MANPATH="+dest+tc.pre+"/share/man")
				if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
					t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
				}
			}
			// The README's steps after make install, with the installed
			// binaries first on PATH and the installed config.
			for _, args := range [][]string{
				{"sbin/nsrel-hook", "policy", "check", dest + tc.etc + "/nsrel/hook.json"},
				{"sbin/nsrel-hook", "policy", "check", dest + tc.pre + "/share/nsrel/hook-enforce.json"},
				{"bin/lsuserns", "--version"}, {"bin/lspidns", "--version"}, {"sbin/nsrel-hook", "--version"}, {"sbin/nsrel-containerd", "--version"},
			} {
				out, err := exec.Command(filepath.Join(dest, tc.pre, args[0]), args[1:]...).CombinedOutput()
				if err != nil {
					t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
				}
				name := filepath.Base(args[0])
				if args[1] == "--version" && !regexp.MustCompile(`^`+name+` \S+ \(commit [0-9a-f]{12}(, modified)?\)\n$`).Match(out) {
					t.Errorf("%s --version: %q", name, out)
				}
			}
			// Static binaries: no dynamic loader at each container start.
			for _, c := range commands {
				f, err := elf.Open(filepath.Join(dest, tc.pre, c.dir, c.name))
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range f.Progs {
					if p.Type == elf.PT_INTERP {
						t.Errorf("%s is dynamically linked (has an ELF interpreter): build it with CGO_ENABLED=0", c.name)
					}
				}
				f.Close()
			}
			// The hook's help shows the hook path of this build, and
			// both commands' the config path (their default).
			if out := run(t, "", filepath.Join(dest, tc.pre, "sbin/nsrel-hook"), "--help"); !strings.Contains(out, `"path": "`+tc.pre+`/sbin/nsrel-hook"`) ||
				!strings.Contains(out, "(default "+tc.etc+"/nsrel/hook.json)") {
				t.Errorf("nsrel-hook --help does not show %s/sbin/nsrel-hook and %s/nsrel/hook.json:\n%s", tc.pre, tc.etc, out)
			}
			if out := run(t, "", filepath.Join(dest, tc.pre, "sbin/nsrel-containerd"), "--help"); !strings.Contains(out, "(default "+tc.etc+"/nsrel/hook.json)") {
				t.Errorf("nsrel-containerd --help does not show %s/nsrel/hook.json:\n%s", tc.etc, out)
			}
		})
	}
}

// zshFpath is zsh's built-in $fpath (no startup file read).
func zshFpath(t *testing.T, zsh string) []string {
	t.Helper()
	return strings.Fields(run(t, "", zsh, "-f", "-c", "print -l -- $fpath"))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestManAndCompletions checks the generated man pages and completions
// against the binaries' --help: every option each --help documents is in
// the man page and in the bash, zsh and fish completions, the man pages
// format without a warning, and the scripts are valid in their shells and
// complete options and subcommands.
func TestManAndCompletions(t *testing.T) {
	nstest.RequireRoot(t)
	t.Parallel()
	dest := makeInstall(t)
	pre := dest + "/usr/local"
	man := nstest.RequireCmd(t, "man")
	bash := nstest.RequireCmd(t, "bash")
	zsh := nstest.RequireCmd(t, "zsh")
	fish := nstest.RequireCmd(t, "fish")
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			help := run(t, "", filepath.Join(pre, c.dir, c.name), "--help")
			page, err := clidoc.Parse(c.name, c.section, help)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Flags) == 0 {
				t.Fatal("--help documents no option")
			}
			manFile := filepath.Join(pre, "share/man/man"+c.section, c.name+"."+c.section)
			cmd := exec.Command(man, "--warnings=all", "-l", manFile)
			cmd.Env = append(os.Environ(), "MANWIDTH=80", "LC_ALL=C.UTF-8", "MANPAGER=cat")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil || errb.Len() > 0 {
				t.Errorf("man %s: %v\n%s", manFile, err, errb.String())
			}
			rendered := strings.ReplaceAll(out.String(), "\u2010", "-")
			bashFile := filepath.Join(pre, "share/bash-completion/completions", c.name)
			zshFile := filepath.Join(pre, "share/zsh/site-functions", "_"+c.name)
			fishFile := filepath.Join(pre, "share/fish/vendor_completions.d", c.name+".fish")
			scripts := map[string]string{}
			for _, f := range []string{bashFile, zshFile, fishFile} {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				scripts[f] = string(data)
			}
			for _, f := range page.Flags {
				if !strings.Contains(rendered, "--"+f.Long) {
					t.Errorf("man page lacks --%s", f.Long)
				}
				for file, s := range scripts {
					if !strings.Contains(s, "--"+f.Long) && !strings.Contains(s, "-l "+f.Long+" ") {
						t.Errorf("%s lacks --%s", filepath.Base(file), f.Long)
					}
				}
			}
			// zsh finds the file where make install puts it by default
			// (PREFIX /usr/local): a directory on its built-in $fpath.
			if fpath := zshFpath(t, zsh); !contains(fpath, filepath.Dir(strings.TrimPrefix(zshFile, dest))) {
				t.Errorf("make install puts %s in a directory not on zsh's $fpath %q", strings.TrimPrefix(zshFile, dest), fpath)
			}
			// The shells accept the scripts.
			run(t, "", zsh, "-n", zshFile)
			run(t, "", fish, "--no-execute", fishFile)
			// And complete: the first option by prefix, and every
			// top-level subcommand.
			// An option the synopsis ties to a subcommand is completed
			// after it.
			first := page.Flags[0].Long
			var path []string
			for _, cmd := range page.Commands {
				if contains(cmd.Flags, first) {
					path = cmd.Path
					break
				}
			}
			fn := "_" + strings.ReplaceAll(c.name, "-", "_")
			line := strings.Join(append(append([]string{c.name}, path...), "--"+first[:2]), " ")
			got := run(t, "", bash, "-c", `source "$1"; COMP_WORDS=($2); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); `+fn+`; printf '%s\n' "${COMPREPLY[@]}"`,
				"bash", bashFile, line)
			if !strings.Contains(got, "--"+first+"\n") {
				t.Errorf("bash completes %q to %q", line, got)
			}
			got = run(t, "", fish, "-c", `source $argv[1]; complete -C "$argv[2]"`, fishFile, line)
			if !strings.Contains(got, "--"+first) {
				t.Errorf("fish completes %q to %q", line, got)
			}
			var top []string
			for _, cmd := range page.Commands {
				if !contains(top, cmd.Path[0]) {
					top = append(top, cmd.Path[0])
				}
			}
			sort.Strings(top)
			if len(top) > 0 {
				got = run(t, "", bash, "-c", `source "$1"; COMP_WORDS=("$2" ""); COMP_CWORD=1; `+fn+`; printf '%s\n' "${COMPREPLY[@]}"`,
					"bash", bashFile, c.name)
				for _, w := range top {
					if !strings.Contains(got, w+"\n") {
						t.Errorf("bash does not offer subcommand %s: %q", w, got)
					}
				}
			}
		})
	}
}

// TestUninstallWarns: make uninstall, with podman's hooks.d and
// containerd's config in the DESTDIR still naming the installed hook and
// base spec, warns on stderr, naming the files, and removes nsrel all
// the same; with nothing naming them it says nothing.
func TestUninstallWarns(t *testing.T) {
	t.Parallel()
	mk := nstest.RequireCmd(t, "make")
	for _, enabled := range []bool{true, false} {
		dest := makeInstall(t)
		if enabled {
			for dst, src := range map[string]string{
				"etc/containers/oci/hooks.d/nsrel-createRuntime.json": "usr/local/share/nsrel/hooks.d/nsrel-createRuntime.json",
				"etc/containerd/config.toml":                          "usr/local/share/nsrel/containerd/config-v2.toml",
			} {
				data, err := os.ReadFile(filepath.Join(dest, src))
				if err != nil {
					t.Fatal(err)
				}
				os.MkdirAll(filepath.Dir(filepath.Join(dest, dst)), 0o755)
				if err := os.WriteFile(filepath.Join(dest, dst), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		cmd := exec.Command(mk, "--no-print-directory", "uninstall", "DESTDIR="+dest)
		cmd.Dir = nstest.RepoFile(t, ".")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("make uninstall: %v\n%s%s", err, out.String(), errb.String())
		}
		if _, err := os.Lstat(filepath.Join(dest, "usr/local/sbin/nsrel-hook")); err == nil {
			t.Errorf("make uninstall (runtimes naming the hook %v) left usr/local/sbin/nsrel-hook", enabled)
		}
		if !enabled {
			if errb.Len() > 0 {
				t.Errorf("make uninstall with nothing naming the hook: stderr %s", errb.String())
			}
			continue
		}
		for _, want := range []string{"WARNING: these container runtime configs still name /usr/local/sbin/nsrel-hook",
			"  /etc/containers/oci/hooks.d/nsrel-createRuntime.json\n",
			"WARNING: containerd's config still names the base runtime spec\n/etc/nsrel/containerd-base-spec.json", "  /etc/containerd/config.toml\n"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("make uninstall: stderr lacks %q:\n%s", want, errb.String())
			}
		}
	}
}

// TestZshCompletionDir: make install puts the zsh completions on zsh's
// built-in $fpath for both prefixes: /usr/local/share/zsh/site-functions
// and, with PREFIX=/usr, Debian's /usr/share/zsh/vendor-completions
// (/usr/share/zsh/site-functions is not on it).
func TestZshCompletionDir(t *testing.T) {
	t.Parallel()
	fpath := zshFpath(t, nstest.RequireCmd(t, "zsh"))
	for _, prefix := range []string{"/usr/local", "/usr"} {
		dest := makeInstall(t, "PREFIX="+prefix)
		files, err := filepath.Glob(filepath.Join(dest, prefix, "share/zsh/*/_lsuserns"))
		if err != nil || len(files) != 1 {
			t.Fatalf("PREFIX=%s: zsh completion files %q, %v", prefix, files, err)
		}
		if dir := filepath.Dir(strings.TrimPrefix(files[0], dest)); !contains(fpath, dir) {
			t.Errorf("PREFIX=%s: make install puts the zsh completions in %s, not on zsh's $fpath %q", prefix, dir, fpath)
		}
	}
}

// TestUninstallRefusesRunning: make uninstall while the installed
// nsrel-containerd runs (here `watch`, waiting for a containerd that is
// not there; the NRI plugin is the same binary) removes nothing and
// fails, naming the process and how to stop it: a running plugin would
// go on injecting the removed hook, and the runtime refuse every new
// container. Once it stopped, make uninstall removes nsrel.
func TestUninstallRefusesRunning(t *testing.T) {
	t.Parallel()
	mk := nstest.RequireCmd(t, "make")
	dest := makeInstall(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(cfg, []byte(`{"version": 1, "audit_log": "`+dir+`/audit.jsonl", "log_file": "`+dir+`/hook.log",
		"default": {"name": "default", "mode": "audit", "rules": {}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dest, "usr/local/sbin/nsrel-containerd")
	var stderr nstest.LockedBuffer
	watch := exec.Command(bin, "watch", "--config", cfg, "--address", filepath.Join(dir, "none.sock"), "--metrics-address", "")
	watch.Stderr = &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- watch.Wait() }()
	t.Cleanup(func() {
		watch.Process.Kill()
		<-done
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "watch starting"); {
		if time.Now().After(deadline) {
			t.Fatalf("watch did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	uninstall := func() (string, error) {
		cmd := exec.Command(mk, "--no-print-directory", "uninstall", "DESTDIR="+dest)
		cmd.Dir = nstest.RepoFile(t, ".")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		return errb.String(), err
	}
	errOut, err := uninstall()
	if err == nil {
		t.Errorf("make uninstall with nsrel-containerd running succeeded:\n%s", errOut)
	}
	for _, want := range []string{"ERROR: nsrel-containerd still runs: processes " + strconv.Itoa(watch.Process.Pid) + " of /usr/local/sbin/nsrel-containerd.",
		"injecting\n/usr/local/sbin/nsrel-hook", "FAILS TO START", "Nothing was removed", "systemctl disable --now nsrel-nri.service nsrel-watch.service"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("make uninstall with nsrel-containerd running: stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, f := range []string{"usr/local/sbin/nsrel-hook", "usr/local/sbin/nsrel-containerd", "usr/local/lib/systemd/system/nsrel-nri.service"} {
		if _, err := os.Lstat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make uninstall refused, yet %s: %v", f, err)
		}
	}

	// Installed again over the running one (make install writes a new
	// file, as install(1) does): the process runs the deleted file, which
	// the check took for none of nsrel-containerd's.
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	if errOut, err := uninstall(); err == nil || !strings.Contains(errOut, "ERROR: nsrel-containerd still runs: processes "+strconv.Itoa(watch.Process.Pid)) {
		t.Errorf("make uninstall with the replaced nsrel-containerd running: %v\n%s", err, errOut)
	}

	watch.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("watch: %v\n%s", err, stderr.String())
	}
	done <- nil
	if errOut, err := uninstall(); err != nil || errOut != "" {
		t.Fatalf("make uninstall once nsrel-containerd stopped: %v\n%s", err, errOut)
	}
	if _, err := os.Lstat(bin); err == nil {
		t.Errorf("make uninstall left %s", bin)
	}
}

// TestInUseReplacedThroughSymlink: a running nsrel-containerd whose file
// make install has replaced since, named through a directory that is a
// symlink (SBINDIR=/sbin on a merged-/usr system, /sbin -> usr/sbin): the
// kernel names the deleted file by its resolved path, which the check
// compared with the path as given, and found nothing running.
func TestInUseReplacedThroughSymlink(t *testing.T) {
	t.Parallel()
	sleep := nstest.RequireCmd(t, "sleep")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/sbin", filepath.Join(root, "sbin")); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "usr/sbin/nsrel-containerd")
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Installed again: a new file in its place.
	if err := os.WriteFile(bin+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	check := exec.Command("sh", nstest.RepoFile(t, "scripts/in-use.sh"), "/sbin/nsrel-hook", "/etc/nsrel/containerd-base-spec.json", "/sbin/nsrel-containerd")
	// CDPATH set, and NSREL_ROOT relative (a make DESTDIR): cd went
	// to CDPATH's directory and printed it.
	cdpath, rel := t.TempDir(), filepath.Base(root)
	if err := os.MkdirAll(filepath.Join(cdpath, rel, "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	check.Dir = filepath.Dir(root)
	check.Env = append(os.Environ(), "NSREL_ROOT="+rel, "CDPATH="+cdpath)
	var stderr bytes.Buffer
	check.Stderr = &stderr
	err = check.Run()
	if want := "processes " + strconv.Itoa(cmd.Process.Pid) + " of /sbin/nsrel-containerd"; err == nil || !strings.Contains(stderr.String(), want) {
		t.Errorf("in-use.sh: %v, stderr %q; want exit 1 and %q", err, stderr.String(), want)
	}
}
