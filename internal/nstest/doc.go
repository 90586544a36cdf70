// Package nstest helps tests build real namespaces: it starts processes in
// chains of user and PID namespaces with util-linux unshare(1), waits until
// they are in place, and kills them when the test ends. It also enforces
// the project rule that a missing prerequisite skips a test locally but
// fails it when CI=true.
package nstest

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
