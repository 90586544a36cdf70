package vocab

import "strings"

// Install paths of the shipped configuration (config/runc/hooks.json,
// config/hooks.d, config/containerd).
const (
	// DefaultHookTimeout is the runtime's hook timeout in seconds that
	// the shipped configs set; the hook config's deadline_ms stays below.
	DefaultHookTimeout = 5
	// DefaultAuditLog is where the shipped hook config puts the audit log.
	DefaultAuditLog = "/var/log/nsrel/audit.jsonl"
)

// DefaultHookConfig is the config file of nsrel-hook, nsrel-containerd
// and the trees' audit-log source when none is given: $(SYSCONFDIR)/nsrel/
// hook.json of `make install`, which sets it with -ldflags "-X
// github.com/nsrel/nsrel/internal/vocab.DefaultHookConfig=..." from
// SYSCONFDIR.
var DefaultHookConfig = "/etc/nsrel/hook.json"

// DefaultHookPath is where the shipped runtime configs expect the
// nsrel-hook binary: $(SBINDIR)/nsrel-hook of `make install`. A build
// for another prefix sets it with -ldflags
// "-X github.com/nsrel/nsrel/internal/vocab.DefaultHookPath=/usr/sbin/nsrel-hook"
// (the Makefile does, from SBINDIR).
var DefaultHookPath = "/usr/local/sbin/nsrel-hook"

// HookName is nsrel-hook's file name, wherever it is installed, and the
// args[0] of the hooks [DefaultHookPath]'s runtime configs and the NRI
// plugin's injection give it: a spec hook whose path or args[0] ends in
// it runs nsrel-hook.
const HookName = "nsrel-hook"

// ExpandPaths puts this build's paths into a help text: @HOOKPATH@
// becomes [DefaultHookPath] and @CONFIG@ [DefaultHookConfig].
func ExpandPaths(s string) string {
	return strings.NewReplacer("@HOOKPATH@", DefaultHookPath, "@CONFIG@", DefaultHookConfig).Replace(s)
}
