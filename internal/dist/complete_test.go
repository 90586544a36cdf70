package dist

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
)

// zshDriver runs an interactive zsh on a pseudo-terminal (zsh/zpty),
// waits for its prompt, types the line $2 and a Tab then Enter, and
// prints what the command received. The interactive zsh reads only
// $ZDOTDIR's startup files: compinit with the completions directory $1
// first on $fpath, and the command $3 as a function that prints its
// arguments.
const zshDriver = `
zmodload zsh/zpty || exit 1
zpty z env ZDOTDIR=$ZDOTDIR TERM=dumb zsh -i
zpty -r z out '*READY> *'
zpty -w -n z "$2"$'\t\n'
zpty -r z out '*GOT:\[*\]*'
print -r -- "$out"
zpty -d z
`

// zshTab returns the arguments the command got after a new interactive
// zsh session completed line with one Tab, from the completion files in
// dir: autoloaded through $fpath, as an installed _NAME is, or, if
// sourced, read with `source` after compinit.
func zshTab(t *testing.T, zsh, dir, line string, sourced bool) string {
	t.Helper()
	home := t.TempDir()
	cmd := strings.Fields(line)[0]
	rc := fmt.Sprintf("fpath=(%s $fpath)\nautoload -Uz compinit\ncompinit -u -d %s/.zcompdump\n", dir, home)
	if sourced {
		rc = fmt.Sprintf("autoload -Uz compinit\ncompinit -u -d %s/.zcompdump\nsource %s/_%s\n", home, dir, cmd)
	}
	files := map[string]string{
		".zshenv":   "unsetopt GLOBAL_RCS\n",
		".zshrc":    rc + cmd + "() { print -r -- \"GOT:[$*]\" }\nPS1='READY> '\n",
		"drive.zsh": zshDriver,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(home, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, zsh, "-f", filepath.Join(home, "drive.zsh"), dir, line)
	c.Env = append(os.Environ(), "ZDOTDIR="+home)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh (zpty) typing %q and Tab: %v\n%s", line, err, out)
	}
	m := regexp.MustCompile(`GOT:\[(.*)\]`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("zsh (zpty) typing %q and Tab: no GOT line\n%q", line, out)
	}
	return string(m[1])
}

// TestZshFirstTab types a command line into a new interactive zsh, the
// completion functions autoloaded from the directory make install fills,
// and presses Tab once: the first Tab of a session completes (an
// autoloaded file that only defined the function would not), and so
// does the file read with source after compinit.
func TestZshFirstTab(t *testing.T) {
	t.Parallel()
	zsh := nstest.RequireCmd(t, "zsh")
	if out, err := exec.Command(zsh, "-f", "-c", "zmodload zsh/zpty").CombinedOutput(); err != nil {
		nstest.Require(t, false, "zsh has no zsh/zpty module: %v %s", err, out)
	}
	dir := filepath.Join(makeInstall(t), "usr/local/share/zsh/site-functions")
	for _, tc := range []struct {
		line    string
		sourced bool
		want    string
	}{
		{"lsuserns --jso", false, "--json"},
		{"lspidns --no-con", false, "--no-containers"},
		{"nsrel-hook pol", false, "policy"},
		{"nsrel-containerd conta", false, "containers"},
		{"lsuserns --jso", true, "--json"},
	} {
		if got := zshTab(t, zsh, dir, tc.line, tc.sourced); got != tc.want {
			t.Errorf("zsh (sourced %v), one Tab after %q: the command got %q, want %q", tc.sourced, tc.line, got, tc.want)
		}
	}
}
