package nriplugin

import (
	"context"
	"strconv"
	"testing"

	"github.com/containerd/nri/pkg/api"
)

// BenchmarkCreateContainer measures the plugin's own work for one
// container at CreateContainer with injection on (the adjustment, the
// pending entry) and at PostCreateContainer, without the NRI round trip.
func BenchmarkCreateContainer(b *testing.B) {
	p := &Plugin{Inject: &Injection{Hook: "/opt/nsrel/nsrel-hook", Config: "/opt/nsrel/hook.json"}}
	pod := &api.PodSandbox{Name: "web-0", Namespace: "shop"}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctr := &api.Container{Id: strconv.Itoa(i)}
		i++
		adj, _, err := p.CreateContainer(ctx, pod, ctr)
		if err != nil || len(adj.GetHooks().GetCreateRuntime()) != 1 {
			b.Fatalf("adjustment %v, %v", adj, err)
		}
		p.PostCreateContainer(ctx, pod, ctr)
	}
}
