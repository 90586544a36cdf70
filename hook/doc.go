// Package hook is the logic of nsrel-hook, the OCI runtime hook that
// records and validates each container's user and PID namespace ancestry;
// cmd/nsrel-hook is its command line.
//
// The runtime runs the hook at three stages, named in its arguments
// (`nsrel-hook --config /etc/nsrel/hook.json createRuntime`), with the
// container state (runtime-spec "state") on stdin, read by [DecodeState]
// with limits on everything the container's creator controls.
// [Hook.Run] does one stage:
//
//   - createRuntime: [Decide] (below), append the record to the audit log
//     ([audit.Log]) and, in enforce mode, refuse the container: the
//     [Result] says Deny, and the command exits 1 with one line naming the
//     violated rules ([DenyMessage]).
//   - poststart: decide again, compare with the createRuntime record
//     ([policy.Compare]) and record the start; a difference is a
//     violation of [policy.RuleAncestryUnchanged].
//   - poststop: record the stop, referring to the start record (the state
//     has no pid then).
//
// [Decide] is the start decision, the same for every writer of the audit
// log: nsrel-hook, the containerd event recorder and the NRI plugin each
// fill an [Input] and get the same record for the same container: the
// policy block the container selects ([policy.Config.Select]), the
// ancestry of its pinned process ([inspect.Process]), the block's
// violations and the verdict ([Judge]: the block's mode, and on_error for
// an inspection that failed).
//
// The package does not import the containerd client: the binary runs on
// every container start and must stay small. Each stage is a new
// process, so the hot path avoids what costs a cold process most:
// encoding/json reflection (the state and the config go through
// hook/internal/fastjson, records through the audit codec, each with
// encoding/json as the fallback for anything unusual) and the runtime's
// poller for regular files.
package hook
