// Package hook is nsrel-hook, the OCI runtime hook that records and
// validates each container's user and PID namespace ancestry.
//
// The runtime runs the hook at three stages, named in its arguments
// (`nsrel-hook --config /etc/nsrel/hook.json createRuntime`), with the
// container state (runtime-spec "state") on stdin, read by [DecodeState]:
//
//   - createRuntime: inspect the container process ([inspect.Process]:
//     pidfd-pinned, both chains to the top), select the policy block
//     ([policy.Config.Select]), evaluate it, append the record to the
//     audit log ([audit.Log]) and, in enforce mode, refuse the container:
//     exit 1 with one line naming the violated rules.
//   - poststart: inspect again, compare with the createRuntime record
//     ([policy.Compare]) and record the start; a difference is a
//     violation of [policy.RuleAncestryUnchanged].
//   - poststop: record the stop, referring to the start record (the state
//     has no pid then).
//
// [Hook.Run] does one stage and is usable without the command; [Main] is
// the whole command line of cmd/nsrel-hook, with the `policy check`,
// `audit verify` and `audit show` subcommands. The hook never reads
// PATH or any other environment variable, never starts a process, and
// keeps an internal deadline ([policy.Config.DeadlineMS]) below the
// runtime's hook timeout; what an internal error means is configurable
// ([policy.OnErrorAllow], [policy.OnErrorDeny]).
//
// [MainProcess] is [Main] for the binary itself: the stage runs on the
// calling goroutine and a watchdog ends the process with the on_error
// status if the deadline passes.
//
// The package does not import the containerd client: the binary runs on
// every container start and must stay small. Each stage is a new
// process, so the hot path avoids what costs a cold process most:
// encoding/json reflection (the state and the config go through
// hook/internal/fastjson, records through the audit codec, each with
// encoding/json as the fallback for anything unusual) and the runtime's
// poller for regular files.
package hook
