package dist

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestDocLinks checks that every relative link in README.md and docs/
// resolves: the file exists, and an anchor (#...) names a heading of the
// target page as GitHub spells it. A section renamed or removed breaks
// the pages that point to it.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"))
	anchors := map[string]map[string]bool{}
	anchorsOf := func(page string) map[string]bool {
		if a, ok := anchors[page]; ok {
			return a
		}
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		anchors[page] = headingAnchors(string(data))
		return anchors[page]
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range outsideCode(string(data)) {
			n, line := l.n, l.text
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				file, anchor, _ := strings.Cut(target, "#")
				dest := page
				if file != "" {
					dest = filepath.Join(filepath.Dir(page), file)
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s:%d: link %s: %v", rel(page), n, target, err)
						continue
					}
				}
				if anchor != "" && strings.HasSuffix(dest, ".md") && !anchorsOf(dest)[anchor] {
					t.Errorf("%s:%d: link %s: no such heading in %s", rel(page), n, target, rel(dest))
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d links checked: the link pattern no longer matches the pages", checked)
	}
}

type line struct {
	n    int
	text string
}

// outsideCode returns the page's lines with their numbers, in order,
// leaving out fenced code blocks.
func outsideCode(page string) []line {
	var lines []line
	fenced := false
	for i, text := range strings.Split(page, "\n") {
		if strings.HasPrefix(strings.TrimSpace(text), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			lines = append(lines, line{i + 1, text})
		}
	}
	return lines
}

// headingAnchors returns the anchors GitHub gives a page's headings:
// lower case, punctuation dropped (hyphens and underscores kept), spaces
// turned into hyphens, "-1", "-2", ... after repeats.
func headingAnchors(page string) map[string]bool {
	seen := map[string]int{}
	anchors := map[string]bool{}
	for _, l := range outsideCode(page) {
		text, ok := strings.CutPrefix(l.text, "#")
		if !ok {
			continue
		}
		text = strings.TrimLeft(text, "#")
		if !strings.HasPrefix(text, " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(text)) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

func rel(path string) string { return strings.TrimPrefix(path, "../../") }
