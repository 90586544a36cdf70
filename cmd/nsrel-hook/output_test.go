package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
)

// TestRefusalLineEscapedOnce: the refusal line names the container
// escaped once, whatever its ID holds. An ID with U+FFFD or invalid UTF-8
// (which the state's JSON decodes as U+FFFD) was quoted, and the line
// holding the quoted ID, with the U+FFFD still in it, quoted again:
// "\"web\ufffd\"" with backslashes doubled. An ID of printable text
// only was printed bare, so that one spelling another's quoted form, or
// holding a rune that shows as nothing, printed as that other ID: it is
// quoted unless plain.
func TestRefusalLineEscapedOnce(t *testing.T) {
	if !inInitialNamespaces() {
		t.Skip("the test must run in the initial namespaces to be refused")
	}
	for _, tc := range []struct{ id, want string }{
		{"web\uFFFD", `container "web\u{fffd}" refused by nsrel policy`},
		{"web\xff", `container "web\u{fffd}" refused by nsrel policy`},
		{"web\x1b[2J", `container "web\x1b[2J" refused by nsrel policy`},
		{`"web\x1b[2J"`, `container "\"web\\x1b[2J\"" refused by nsrel policy`},
		{"web-1", `container web-1 refused by nsrel policy`},
		{"web-1 refused", `container "web-1 refused" refused by nsrel policy`},
		{"web-1\u034f", `container "web-1\u{34f}" refused by nsrel policy`},
	} {
		e := newEnv(t, "hook-enforce.json", nil)
		code, _, stderr := run(selfState(tc.id), "--config", e.config, "createRuntime")
		if code != 1 || !strings.HasPrefix(stderr, "nsrel-hook: "+tc.want) || strings.ContainsRune(stderr, '\uFFFD') {
			t.Errorf("ID %q: exit %d, stderr %q; want 1 and %q, escaped once", tc.id, code, stderr, tc.want)
		}
	}
}

// TestShowRecordedDamageLeftOut: a damaged line without a head, or
// longer than any record, that the chain's damage record lists is
// recorded damage: show leaves it out as it leaves out every line damage
// records list, and no longer says it skipped damage to verify, before
// the ack and after it (it did until the log's end).
func TestShowRecordedDamageLeftOut(t *testing.T) {
	for name, damage := range map[string]string{
		"headless":     "zzzz damaged\n",
		"over MaxLine": strings.Repeat("z", audit.MaxLine+10) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
			createRuntime(t, e, "w1")
			f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(damage); err != nil {
				t.Fatal(err)
			}
			f.Close()
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
		})
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

// TestQuotedNamesSpellLostBytes: names audit show and verify quote in
// Go's form (container IDs, checkpoint hosts) spell U+FFFD \ufffd, so
// that no raw U+FFFD reaches the terminal and a message holding them is
// not quoted again (strconv.Quote keeps U+FFFD, and the message was
// quoted whole, its backslashes doubled).
func TestQuotedNamesSpellLostBytes(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	if code, _, stderr := run(selfState("lost\uFFFDx"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatalf("createRuntime: exit %d: %s", code, stderr)
	}
	if code, out, stderr := run("", "audit", "show", e.log); code != 0 || !strings.Contains(out, `container "lost\ufffdx"`) || strings.ContainsRune(out+stderr, '\uFFFD') {
		t.Errorf("show: exit %d, stderr %q:\n%s", code, stderr, out)
	}
	var cps bytes.Buffer
	for _, host := range []string{"b\x1b[2J", "c\uFFFD"} {
		c := audit.Checkpoint{Host: host, Log: e.log, Seq: 1, Hash: strings.Repeat("ab", 32), Time: "2026-12-08T00:00:00Z"}
		cps.Write(c.Line())
	}
	file := filepath.Join(e.dir, "cps.jsonl")
	if err := os.WriteFile(file, cps.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run("", "audit", "verify", "--checkpoints", file, e.log)
	if want := `(\"b\x1b[2J\", \"c\ufffd\")`; code != 1 || !strings.Contains(stderr, `"b\x1b[2J", "c\ufffd"`) || strings.Contains(stderr, `\\`) || strings.ContainsRune(stderr, '\uFFFD') {
		t.Errorf("verify: exit %d, stdout %q, stderr %q; want 1 and the hosts quoted once, not %s", code, out, stderr, want)
	}
}
