package dist

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestInstallSnippetsUseSudo: the install snippets of README.md and
// docs/ (```sh blocks with `make install`) run nsrel-hook and
// nsrel-containerd with sudo. Both are installed to sbin
// (/usr/local/sbin, /usr/sbin), which is on no ordinary user's PATH on
// Debian: README's install snippet ran `nsrel-hook policy check` bare,
// and a user pasting it right after `sudo make install` got "command not
// found".
func TestInstallSnippetsUseSudo(t *testing.T) {
	root := filepath.Join("..", "..")
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"))
	bare := regexp.MustCompile(`^(\$ )?(nsrel-hook|nsrel-containerd)\b`)
	checked := 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		var block []int // line numbers of the open ```sh block
		lines := strings.Split(string(data), "\n")
		for i, line := range lines {
			switch {
			case strings.HasPrefix(line, "```sh"):
				block = []int{}
				continue
			case strings.HasPrefix(line, "```") && block != nil:
				install := false
				for _, n := range block {
					install = install || strings.Contains(lines[n], "make install")
				}
				for _, n := range block {
					if install {
						checked++
					}
					if install && bare.MatchString(strings.TrimSpace(lines[n])) {
						t.Errorf("%s:%d: %q runs an sbin command without sudo", filepath.Base(page), n+1, lines[n])
					}
				}
				block = nil
				continue
			}
			if block != nil {
				block = append(block, i)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no install snippet found: the test reads nothing")
	}
}
