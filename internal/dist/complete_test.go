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
// prints what the command received; then again, in the same session.
// The interactive zsh reads only $ZDOTDIR's startup files: compinit
// with the completions directory $1 first on $fpath, and the command
// $3 as a function that prints its arguments.
const zshDriver = `
zmodload zsh/zpty || exit 1
zpty z env ZDOTDIR=$ZDOTDIR TERM=dumb zsh -i
zpty -r z out '*READY> *'
for i in 1 2; do
	zpty -w -n z "$2"$'\t\n'
	zpty -r z out '*GOT:\[*\]*'
	print -r -- "$out"
	zpty -r z out '*READY> *'
done
zpty -d z
`

// zshTab returns the arguments the command got after a new interactive
// zsh session completed line with one Tab (twice in the session: both
// when they differ), from the completion files in
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
	m := regexp.MustCompile(`GOT:\[(.*)\]`).FindAllSubmatch(out, -1)
	if len(m) != 2 {
		t.Fatalf("zsh (zpty) typing %q and Tab twice: %d GOT lines\n%q", line, len(m), out)
	}
	if string(m[0][1]) != string(m[1][1]) {
		return fmt.Sprintf("%s, then %s", m[0][1], m[1][1])
	}
	return string(m[0][1])
}

// TestZshFirstTab types a command line into a new interactive zsh, the
// completion functions autoloaded from the directory make install fills,
// and presses Tab once, then again: the first Tab of a session completes
// (an autoloaded file that only defined the function would not), and so
// does the second (nsrel-hook's file defines _nsrel_hook, not the
// autoloaded _nsrel-hook, which then only ran compdef), and so does the
// file read with source after compinit.
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

// TestCompleteOptionsWhereTaken: bash, fish and zsh offer an option of a
// command with subcommands where its flag parsing takes it.
// nsrel-hook's --config goes before the subcommand (nsrel-hook audit
// verify --config exits 2: unknown option), nsrel-containerd's after it.
func TestCompleteOptionsWhereTaken(t *testing.T) {
	t.Parallel()
	bash := nstest.RequireCmd(t, "bash")
	fish := nstest.RequireCmd(t, "fish")
	zsh := nstest.RequireCmd(t, "zsh")
	dest := makeInstall(t)
	share := filepath.Join(dest, "usr/local/share")
	hook := filepath.Join(dest, "usr/local/sbin/nsrel-hook")
	if out, err := exec.Command(hook, "audit", "verify", "--config", "/dev/null").CombinedOutput(); exitCode(err) != 2 || !strings.Contains(string(out), "unknown option --config") {
		t.Fatalf("nsrel-hook audit verify --config: %v %s; the test assumes it is refused", err, out)
	}
	for _, tc := range []struct {
		line       string // the words before the one completed ("--")
		offer, not string
	}{
		{"nsrel-hook", "--config", ""},
		{"nsrel-hook audit verify", "--partial", "--config"},
		{"nsrel-hook --config /etc/nsrel/hook.json audit show", "--json", "--config"},
		{"nsrel-hook audit", "", "--config"},
		{"nsrel-hook poststop", "", "--config"},
		{"nsrel-containerd watch", "--config", "--version"},
		{"nsrel-containerd", "--version", "--config"},
	} {
		name := strings.Fields(tc.line)[0]
		fn := "_" + strings.ReplaceAll(name, "-", "_")
		got := map[string]string{
			"bash": run(t, "", bash, "-c", `source "$1"; COMP_WORDS=($2 --); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); `+fn+`; printf '%s\n' "${COMPREPLY[@]}"`,
				"bash", filepath.Join(share, "bash-completion/completions", name), tc.line),
			"fish": run(t, "", fish, "-c", `source $argv[1]; complete -C "$argv[2] --"`,
				filepath.Join(share, "fish/vendor_completions.d", name+".fish"), tc.line),
		}
		for shell, out := range got {
			var words []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 0 {
					words = append(words, f[0])
				}
			}
			if tc.offer != "" && !contains(words, tc.offer) {
				t.Errorf("%s: %s -- offers %q, not %s", shell, tc.line, words, tc.offer)
			}
			if tc.not != "" && contains(words, tc.not) {
				t.Errorf("%s: %s -- offers %s: %q", shell, tc.line, tc.not, words)
			}
		}
		// zsh: one Tab after the start of the option.
		for _, opt := range []string{tc.offer, tc.not} {
			if opt == "" {
				continue
			}
			typed := tc.line + " " + opt[:len(opt)-1]
			want := strings.TrimPrefix(typed, name+" ")
			if opt == tc.offer {
				want = strings.TrimPrefix(tc.line+" "+opt, name+" ")
			}
			if got := zshTab(t, zsh, filepath.Join(share, "zsh/site-functions"), typed, false); strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("zsh, one Tab after %q: the command got %q, want %q", typed, got, want)
			}
		}
	}
}

func exitCode(err error) int {
	if e, ok := err.(*exec.ExitError); ok {
		return e.ExitCode()
	}
	return -1
}
