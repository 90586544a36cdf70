package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Names of the files install-hook writes into its destination.
const (
	installedHook   = "nsrel-hook"
	installedConfig = "hook.json"
)

// installHookCmd copies nsrel-hook and its config into a directory (a
// host path mounted into the node agent's container), each through a
// temporary file and a rename, so that a runtime running the hook at
// that moment sees the old file or the new one, never a partial one.
func installHookCmd(args []string, stdout, stderr io.Writer) int {
	const prog = "nsrel-containerd install-hook"
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dest := fs.String("dest", "", "")
	hookSrc := fs.String("hook", "", "")
	config := fs.String("config", vocab.DefaultHookConfig, "")
	if code, done := parseArgs(fs, prog, args, stdout, stderr); done {
		return code
	}
	if emptyConfig(prog, *config, stderr) {
		return 2
	}
	if *dest == "" {
		fmt.Fprintf(stderr, "%s: --dest DIR is required (see --help)\n", prog)
		return 2
	}
	if !filepath.IsAbs(*dest) {
		fmt.Fprintf(stderr, "%s: --dest %s: want an absolute directory (see --help)\n", prog, vocab.Quote(*dest))
		return 2
	}
	if *hookSrc == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "%s: cannot find this executable to locate nsrel-hook beside it: %v (use --hook)\n", prog, err)
			return 1
		}
		*hookSrc = filepath.Join(filepath.Dir(exe), installedHook)
	}
	// The config is checked before anything is installed: a hook that
	// cannot read its config refuses or lets through every container
	// (on_error), so a broken ConfigMap must stop the agent here.
	cfg, err := os.ReadFile(*config)
	if err == nil {
		_, err = policy.Parse(*config, cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", prog, vocab.OneLine(err))
		return 1
	}
	hook, err := os.ReadFile(*hookSrc)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", prog, vocab.OneLine(err))
		return 1
	}
	// A runtime that runs what is installed gets ENOEXEC from anything
	// but a program, and every container the hook applies to fails.
	if !bytes.HasPrefix(hook, []byte("\x7fELF")) && !bytes.HasPrefix(hook, []byte("#!")) {
		fmt.Fprintf(stderr, "%s: --hook %s: not a program (neither an ELF header nor #!)\n", prog, vocab.Printable(*hookSrc))
		return 1
	}
	if err := checkDir(*dest); err != nil {
		fmt.Fprintf(stderr, "%s: --dest %s: %s\n", prog, vocab.Printable(*dest), vocab.OneLine(err))
		return 1
	}
	// The runtime runs the hook installed there as root: nobody else
	// may replace it (a directory others may write, or a way to it
	// someone else controls). It was installed into any directory.
	if err := safefile.CheckPrivateDirs(*dest); err != nil {
		fmt.Fprintf(stderr, "%s: --dest: %s\n", prog, vocab.OneLine(err))
		return 1
	}
	// What was installed is said as it is; a line that cannot be
	// written (a full disk) stops nothing, and is said at the end.
	out := &vocab.CheckedWriter{W: stdout}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		// The hook first: a new config may use keys an old hook refuses
		// (every container then meets on_error), while a new hook reads
		// the old config.
		{installedHook, hook, 0o755},
		{installedConfig, cfg, 0o644},
	} {
		p := filepath.Join(*dest, f.name)
		if err := replaceFile(p, f.data, f.mode); err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", prog, vocab.OneLine(err))
			return 1
		}
		fmt.Fprintf(out, "installed %s\n", vocab.Printable(p))
	}
	return vocab.Written(prog, out.Err, stderr)
}

// replaceFile writes data to a new file beside path, syncs it and
// renames it over path.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		// Its error names the temporary file, which nobody knows of.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("install %s: cannot create a file in %s: %w", path, filepath.Dir(path), err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install %s: %w", path, err)
	}
	return nil
}

// checkDir returns why dir is not a directory to install into: it does
// not exist, or is something else. (A directory that cannot be written
// is said when its first file cannot be created.)
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err // the path is named with the option
	}
	if err == nil && !st.IsDir() {
		err = errors.New("not a directory")
	}
	return err
}
