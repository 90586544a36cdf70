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

// HookStages are the stages nsrel-hook runs at, in the order a
// container passes them.
var HookStages = []string{StageCreateRuntime, StagePoststart, StagePoststop}

// ShippedStages are the stages the shipped configuration installs
// nsrel-hook at: createRuntime (the record, and the veto) and poststop
// (the end of the container). poststart is opt-in: runc before 1.2 runs
// it inside `runc create`, before the user process, where it can only
// repeat what createRuntime saw, and elsewhere it costs a third more for
// a check that races with the process (docs/hook.md, "Which stages").
var ShippedStages = []string{StageCreateRuntime, StagePoststop}
