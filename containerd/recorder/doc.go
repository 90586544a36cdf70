// Package recorder is nsrel's containerd event recorder (`nsrel-containerd
// watch`): it subscribes to containerd's task events in every containerd
// namespace and appends a start record for every container nsrel-hook did
// not record (containers started with ctr, by Docker, by any client
// without the hook), and the matching exit, to the hook's audit chain.
//
// A start goes through [github.com/nsrel/nsrel/hook.Decide], the decision
// nsrel-hook makes, with an inspection that refuses a PID containerd no
// longer runs the task as; it is appended with
// [github.com/nsrel/nsrel/hook/audit.Log.AppendStart], so a start another
// writer recorded is not recorded twice. [Recorder] documents
// reconnection, the gap records, retries and its own start and stop
// records.
package recorder
