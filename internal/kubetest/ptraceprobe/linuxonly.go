package main

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
