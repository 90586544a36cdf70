package nstest

import (
	"os/exec"
	"strings"
	"testing"
)

// CheckScrape checks a scrape of a Prometheus /metrics endpoint: every
// sample line in want is in text, and `promtool check metrics` (Debian's
// prometheus package) accepts it.
func CheckScrape(t testing.TB, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, "\n"+w+"\n") {
			t.Errorf("scrape lacks %s", w)
		}
	}
	cmd := exec.Command(RequireCmd(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", text)
	}
}
