// Package nriplugin is nsrel's NRI (Node Resource Interface) plugin
// (`nsrel-containerd nri`), for containerd 1.7+ and CRI-O: it injects
// nsrel-hook at createRuntime and poststop into every container it is
// told of at CreateContainer ([Plugin.Inject]; when the runtime refuses
// the injection it notices, records that and stops injecting), and checks
// every Kubernetes pod sandbox and container when its namespaces exist
// and before its process runs, records the start (source "nri") unless
// nsrel-hook did, and in enforce mode refuses a violating container by
// failing the request. The decision is
// [github.com/nsrel/nsrel/hook.Decide], the one nsrel-hook makes.
package nriplugin
