package vocab

// Install paths of the shipped configuration (config/runc/hooks.json,
// config/hooks.d, config/containerd).
const (
	// DefaultHookConfig is nsrel-hook's config file when --config is not
	// given.
	DefaultHookConfig = "/etc/nsrel/hook.json"
	// DefaultHookTimeout is the runtime's hook timeout in seconds that
	// the shipped configs set; the hook config's deadline_ms stays below.
	DefaultHookTimeout = 5
	// DefaultAuditLog is where the shipped hook config puts the audit log.
	DefaultAuditLog = "/var/log/nsrel/audit.jsonl"
)

// DefaultHookPath is where the shipped runtime configs expect the
// nsrel-hook binary: $(SBINDIR)/nsrel-hook of `make install`. A build
// for another prefix sets it with -ldflags
// "-X github.com/nsrel/nsrel/internal/vocab.DefaultHookPath=/usr/sbin/nsrel-hook"
// (the Makefile does, from SBINDIR).
var DefaultHookPath = "/usr/local/sbin/nsrel-hook"
