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
// the other namespace's container is still listed and the stuck one named
// in a notice. The helper kept its whole timeout, past the caller's
// deadline, was killed, and every containerd container was hidden
// ("containerd: context deadline exceeded").
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
	if !slices.ContainsFunc(cs, func(c discover.Container) bool { return c.ID == ok }) ||
		len(notices) != 1 || !strings.Contains(notices[0], `namespace "zzz"`) || !strings.HasSuffix(notices[0], "; containers there are not shown") {
		t.Errorf("containers %v, notices %q; want %s listed and one notice naming namespace zzz", cs, notices, ok)
	}
}
