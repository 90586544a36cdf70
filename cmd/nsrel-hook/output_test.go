package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/audittest"
)

// TestRefusalLineEscapedOnce: the refusal line names the container
// escaped once, whatever its ID holds. An ID with U+FFFD or invalid UTF-8
// (which the state's JSON decodes as U+FFFD) was quoted, and the line
// holding the quoted ID, with the U+FFFD still in it, quoted again:
// "\"web\ufffd\"" with backslashes doubled.
func TestRefusalLineEscapedOnce(t *testing.T) {
	if !inInitialNamespaces() {
		t.Skip("the test must run in the initial namespaces to be refused")
	}
	for _, tc := range []struct{ id, want string }{
		{"web\uFFFD", `container "web\ufffd" refused by nsrel policy`},
		{"web\xff", `container "web\ufffd" refused by nsrel policy`},
		{"web\x1b[2J", `container "web\x1b[2J" refused by nsrel policy`},
		{"web-1", `container web-1 refused by nsrel policy`},
	} {
		e := newEnv(t, "hook-enforce.json", nil)
		code, _, stderr := run(selfState(tc.id), "--config", e.config, "createRuntime")
		if code != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, `\\`) || strings.ContainsRune(stderr, '\uFFFD') {
			t.Errorf("ID %q: exit %d, stderr %q; want 1 and %q, escaped once", tc.id, code, stderr, tc.want)
		}
	}
}

// TestShowRecordedDamageLeftOut: a damaged line without a head that the
// chain's damage record lists is recorded damage: show leaves it out as
// it leaves out every line damage records list, and no longer says it
// skipped damage to verify, before the ack and after it (it did until
// the log's end).
func TestShowRecordedDamageLeftOut(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	createRuntime(t, e, "w1")
	garble(t, e.log)
	const skipped = "nsrel-hook: audit show: skipped 1 damaged or torn line(s); run `nsrel-hook audit verify`\n"
	const left = "nsrel-hook: audit show: left out 1 line(s) that damage records list"
	if code, _, stderr := run("", "audit", "show", e.log); code != 0 || stderr != skipped {
		t.Errorf("damage not recorded yet: exit %d, stderr %q; want 0 and %q", code, stderr, skipped)
	}
	createRuntime(t, e, "w2")
	for _, when := range []string{"recorded", "acknowledged"} {
		if when == "acknowledged" {
			if code, _, stderr := run("", "--config", e.config, "audit", "ack", damageSeq(t, e.log), "--reason", "checked"); code != 0 {
				t.Fatalf("ack: exit %d: %s", code, stderr)
			}
		}
		code, out, stderr := run("", "audit", "show", e.log)
		if code != 0 || strings.Contains(stderr, "skipped") || !strings.HasPrefix(stderr, left) || strings.Count(stderr, "\n") != 1 || !strings.Contains(out, "container w2") {
			t.Errorf("damage %s: exit %d, stderr %q; want 0, w2 shown and only %q...", when, code, stderr, left)
		}
	}
}

// TestTornDamageRecordListsNothing: a damage record written whole but
// for its newline (a crash before the write's last byte) is a torn line,
// no record of the chain: until the next append ends it, show takes the
// lines it lists for damage not recorded (skipped), not for lines left
// out; the next append records the torn line and the damage again.
func TestTornDamageRecordListsNothing(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	createRuntime(t, e, "w1")
	garble(t, e.log)
	createRuntime(t, e, "w2")
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	// The log up to the damage record (its third line), less its newline.
	cut := 0
	for range 3 {
		cut += bytes.IndexByte(data[cut:], '\n') + 1
	}
	if err := os.WriteFile(e.log, data[:cut-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if r := audittest.Records(t, e.log, ""); len(r) != 1 {
		t.Fatalf("%d records read whole, want w1's only", len(r))
	}
	const skipped = "nsrel-hook: audit show: skipped 2 damaged or torn line(s); run `nsrel-hook audit verify`\n"
	if code, out, stderr := run("", "audit", "show", e.log); code != 0 || stderr != skipped || strings.Contains(out, "damaged") {
		t.Errorf("torn damage record: exit %d, stderr %q; want 0 and %q, no damage record shown:\n%s", code, stderr, skipped, out)
	}
	if code, _, stderr := run("", "audit", "verify", e.log); code != 1 || !strings.Contains(stderr, "torn last line") {
		t.Errorf("verify: exit %d, %q; want 1 and the torn last line", code, stderr)
	}
	createRuntime(t, e, "w3")
	code, out, stderr := run("", "audit", "show", e.log)
	if code != 0 || !strings.HasPrefix(stderr, "nsrel-hook: audit show: left out 1 line(s) that damage records list") || !strings.Contains(out, "torn-tail") || !strings.Contains(out, "container w3") {
		t.Errorf("after the next append: exit %d, stderr %q:\n%s", code, stderr, out)
	}
}
