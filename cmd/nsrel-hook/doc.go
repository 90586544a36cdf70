// Command nsrel-hook runs as an OCI runtime hook at the createRuntime,
// poststart and poststop stages and offers `policy check`, `audit verify`
// and `audit show`. Everything is in package [github.com/nsrel/nsrel/hook];
// this main only passes the arguments and standard streams.
package main
