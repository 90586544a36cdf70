package nstest

import (
	"testing"

	"github.com/sirupsen/logrus"
)

// RestoreStandardLogger saves logrus's standard logger's output,
// formatter, level and hooks, and restores them when t ends, for a test
// whose code under test changes them.
func RestoreStandardLogger(t testing.TB) {
	t.Helper()
	std := logrus.StandardLogger()
	out, formatter, level, hooks := std.Out, std.Formatter, std.GetLevel(), std.Hooks
	t.Cleanup(func() {
		std.SetOutput(out)
		std.SetFormatter(formatter)
		std.SetLevel(level)
		std.ReplaceHooks(hooks)
	})
}
