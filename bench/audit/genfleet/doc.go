// Command genfleet writes a collector's stream of a fleet for
// benchmarks of `nsrel-hook audit verify --nodes`: RECORDS holds, for
// each of -hosts hosts, a chain of -records records (interleaved, host
// after host), and CHECKPOINTS (with -checkpoints N) N checkpoints per
// host of its last record, interleaved too.
//
//	go run ./bench/audit/genfleet -hosts 2000 -checkpoints 100 /tmp/mixed.jsonl /tmp/ck.jsonl
package main
