// Command summary prints the Markdown table of bench/ls/run.sh from the
// hyperfine JSON exports of one size (one file per round): medians over
// all runs, ratios to the floor and to the matching lsns command, and the
// peak RSS figures given on the command line.
//
//	summary -procs 2000 -userns 167 -pidns 47 -rss-user 15400 -rss-pid 15300 -rss-lsns 4400 2000.1.json 2000.2.json
package main
