// Command latency times nsrel-hook appends to a large audit log, with
// and without `nsrel-hook audit verify` reading the same log at the same
// time: each round runs a block of hook runs alone and a block while a
// verify runs, in random order, and it prints per case the median, 90th
// percentile and maximum hook wall time. bench/audit/run.sh sets it up.
package main
