// Command nsrel-containerd is the long-lived containerd companion of
// nsrel-hook. See `nsrel-containerd --help`.
package main

func main() {}
