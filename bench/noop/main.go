// Command noop does nothing: put where a hook or a command goes, it is
// the start-up floor of any Go program (the runtime's start, no package
// of its own), which the benchmarks time next to nsrel's binaries
// (bench/hook, bench/startup, bench/runtimes). Build it static, as
// the others: CGO_ENABLED=0 go build ./bench/noop.
package main

func main() {}
