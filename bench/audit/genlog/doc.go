// Command genlog writes an audit log of a given size for benchmarks:
// records like nsrel-hook's (a container start with both namespace
// chains, annotations, a verdict), chained, in one file, without
// fdatasync.
//
//	go run ./bench/audit/genlog -mb 300 /tmp/audit.jsonl
package main
