package vocab

// The OCI runtime hook stages nsrel-hook runs at (runtime-spec
// config.md#posix-platform-hooks), as runtimes name them in a hook's
// arguments and as audit records name them.
const (
	// StageCreateRuntime runs after the container's namespaces exist and
	// before its process runs; a failing hook here aborts the creation.
	StageCreateRuntime = "createRuntime"
	// StagePoststart runs after the user process started.
	StagePoststart = "poststart"
	// StagePoststop runs after the container stopped (no process).
	StagePoststop = "poststop"
)

// HookStages are the stages nsrel-hook is installed at, in the order a
// container passes them.
var HookStages = []string{StageCreateRuntime, StagePoststart, StagePoststop}
