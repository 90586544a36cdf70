package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestLeanDependencies keeps the hook binary small: it runs on every
// container start, so it must not link the containerd client, gRPC or
// protobuf.
func TestLeanDependencies(t *testing.T) {
	goBin := nstest.RequireCmd(t, "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"containerd", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/containerd/nri"} {
			if strings.Contains(pkg, banned) {
				t.Errorf("nsrel-hook links %s", pkg)
			}
		}
	}
}
