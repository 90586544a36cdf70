package main

import (
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/policy"
)

// TestPoststopMessages: poststop never refuses, and its lines say so
// rather than name on_error, whose verdict is not what decided: with
// on_error=deny they said "on_error=allow: allowed" (a state refused, a
// record that could not be written) or "on_error=deny" (not recorded)
// while the stage exited 0.
func TestPoststopMessages(t *testing.T) {
	for _, tc := range []struct {
		name, state string
		locked      bool
	}{
		{"state refused", `{"ociVersion":"1.0.2","id":"bad","status":"stopped"`, false},
		{"not recorded", `{"ociVersion":"1.0.2","id":"locked","status":"stopped","bundle":"/b"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["on_error"] = policy.OnErrorDeny
				c["deadline_ms"] = 200
				c["syslog"] = ""
			})
			if tc.locked {
				holdLock(t, e.log)
			}
			code, _, stderr := run(tc.state, "--config", e.config, "poststop")
			if code != 0 || !strings.Contains(stderr, "poststop never refuses") || strings.Contains(stderr, "on_error") {
				t.Errorf("exit %d, stderr %q; want 0 and a line that says poststop never refuses, not on_error", code, stderr)
			}
		})
	}
}

// TestDeadlineNamesContainer: the line of a deadline passed before the
// record was written names the container (escaped: the ID is the
// container creator's to choose) once the state is read; it said only
// "the container".
func TestDeadlineNamesContainer(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"web-1", "container web-1 may not be recorded (on_error=allow)"},
		{"web\x1b[2J", `container "web\x1b[2J" may not be recorded (on_error=allow)`},
	} {
		e := newEnv(t, "hook.json", func(c map[string]any) {
			c["deadline_ms"] = 200
			c["syslog"] = ""
		})
		holdLock(t, e.log)
		code, _, stderr := run(selfState(tc.id), "--config", e.config, "createRuntime")
		if code != 0 || !strings.Contains(stderr, "internal deadline of 200 ms passed; "+tc.want) {
			t.Errorf("exit %d, stderr %q; want 0 and %q", code, stderr, tc.want)
		}
	}
}
