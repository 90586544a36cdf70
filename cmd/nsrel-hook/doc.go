// Command nsrel-hook runs as an OCI runtime hook at the createRuntime,
// poststart and poststop stages and offers `policy check`, `audit verify`
// and `audit show`. The stage logic is package
// [github.com/nsrel/nsrel/hook]; this command adds the command line, the
// diagnostics log and the deadline watchdog (stage.go), the audit
// subcommands (audit.go, history.go) and `policy check` (policy.go).
package main
