package containerd_test

import (
	"context"
	"log"
	"syscall"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	nsrelctrd "github.com/nsrel/nsrel/containerd"
)

// The example of docs/containerd.md: a container created with the Go
// client runs nsrel-hook at createRuntime and poststop (name the stages,
// "createRuntime", "poststart", "poststop", for the opt-in re-check).
func ExampleWithHook() {
	c, err := client.New("/run/containerd/containerd.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "default")

	image, err := c.GetImage(ctx, "docker.io/library/busybox:latest")
	if err != nil {
		log.Fatal(err)
	}
	// Its own user namespace, so that the default policy (which requires
	// one) is satisfied; root in the container is UID 100000 on the host.
	idmap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	ctr, err := c.NewContainer(ctx, "web-1",
		client.WithNewSnapshot("web-1-snap", image),
		client.WithNewSpec(
			oci.WithImageConfig(image),
			oci.WithProcessArgs("sleep", "3600"),
			oci.WithUserNamespace(idmap, idmap),
			nsrelctrd.WithHook("", ""), // nsrel-hook at createRuntime and poststop
		),
	)
	if err != nil {
		log.Fatal(err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		// In enforce mode a refused container fails here, with the
		// hook's one-line reason in the error.
		log.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		log.Fatal(err)
	}
	log.Printf("web-1 runs as host PID %d; see: nsrel-hook audit show --container web-1", task.Pid())
	_ = task.Kill(ctx, syscall.SIGTERM)
}
