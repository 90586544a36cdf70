// Command startup times the start-up of the tree commands of two builds
// of nsrel in the same run: each round runs an empty static Go program
// (the floor of any Go command's start-up, the same binary in both
// builds: its ratio is the run's noise), `lsuserns --help`, `lsuserns
// --no-containers` and `lspidns --no-containers` of both builds once, in
// a new random order, after one uncounted warm-up round, and it prints
// per command the median, minimum and maximum wall time of each build,
// the ratio of the medians and the median of the per-round ratios.
// bench/startup/run.sh builds the two versions and runs it.
package main
