// Command floor is the lower bound for the lsuserns/lspidns benchmark: it
// does nothing but stat /proc/PID/ns/user for every process, one process
// after the other, and prints how many distinct user namespaces it saw.
package main

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
