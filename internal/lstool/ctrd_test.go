package lstool_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// TestShortContainerTimeoutStuckNamespace: with a --container-timeout
// below half a second and one containerd namespace whose shim is stopped,
// each namespace's containers are listed or the namespace is named in a
// notice. The helper kept its whole timeout, past the caller's deadline,
// was killed, and every containerd container was hidden ("containerd:
// context deadline exceeded"). (The namespace that answers is listed on
// an idle machine; under load its answer may take longer than the
// helper's share of 400 ms, and it is named then, which is right too.)
func TestShortContainerTimeoutStuckNamespace(t *testing.T) {
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	ok := ctrdtest.Uniq("answers")
	d.Run(t, c, "aaa", ok, nil)
	_, stuck := d.Run(t, c, "zzz", ctrdtest.Uniq("stuck"), nil)
	ctrdtest.StopShim(t, int(stuck))
	const timeout = 400 * time.Millisecond
	src := &containers.HelperSource{Address: d.Socket, Helper: nstest.Tool(t, containers.HelperName), Timeout: timeout}
	cs, notices := lstool.ListContainers(context.Background(), []discover.ContainerSource{src}, timeout, false)
	named := func(ns string) bool {
		return slices.ContainsFunc(notices, func(n string) bool {
			return strings.Contains(n, `namespace "`+ns+`"`) || strings.Contains(n, `namespaces "`+ns+`"`) || strings.Contains(n, `"`+ns+`"`)
		})
	}
	listed := slices.ContainsFunc(cs, func(c discover.Container) bool { return c.ID == ok })
	if !named("zzz") || !listed && !named("aaa") {
		t.Errorf("containers %v, notices %q; want %s listed (or namespace aaa named) and namespace zzz named", cs, notices, ok)
	}
	for _, n := range notices {
		if !strings.HasSuffix(n, "; containers there are not shown") {
			t.Errorf("notice %q; want each to name the namespaces whose containers are not shown", n)
		}
	}
	if !listed {
		t.Logf("namespace aaa did not answer in the helper's share of %v (a loaded machine): %q", timeout, notices)
	}
}
