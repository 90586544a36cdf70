package containerd

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// startContainers runs a fixed set of containers on d: two in "default"
// (one in its own user namespace, one named by nerdctl's label), a
// CRI-labelled one in "k8s.io", one in
// "moby", and one without a task (which no source may list). It returns
// what the containerd source should report.
func startContainers(t *testing.T, d *ctrdtest.Daemon) []discover.Container {
	t.Helper()
	c := d.Client(t)
	var want []discover.Container
	run := func(ns, id, name string, o *ctrdtest.RunOpts) {
		_, pid := d.Run(t, c, ns, id, o)
		want = append(want, discover.Container{ID: id, Engine: containers.EngineContainerd, Namespace: ns, PID: int(pid), Name: name})
	}
	// nerdctl's name: its label, which nerdctl puts in the spec's
	// annotations too; the label alone is an image's, which ctr copies
	// into its containers' labels (an image named a plain ctr container
	// so).
	nerdctl := map[string]string{vocab.LabelNerdctlName: "nginx-1"}
	run("default", ctrdtest.Uniq("plain"), "nginx-1", &ctrdtest.RunOpts{Labels: nerdctl, SpecOpts: []oci.SpecOpts{oci.WithAnnotations(nerdctl)}})
	run("default", ctrdtest.Uniq("imagename"), "", &ctrdtest.RunOpts{Labels: map[string]string{vocab.LabelNerdctlName: "registry"}})
	run("default", ctrdtest.Uniq("othername"), "nginx-1", &ctrdtest.RunOpts{Labels: map[string]string{vocab.LabelNerdctlName: "registry"}, SpecOpts: []oci.SpecOpts{oci.WithAnnotations(nerdctl)}})
	run("default", ctrdtest.Uniq("userns"), "", &ctrdtest.RunOpts{UserNS: true})
	// Named by the keys CRI sets on the spec, not by the labels, which
	// where no kubelet sets them are an image's (CRI and ctr copy an
	// image's labels into its containers'): the kube-system pod they
	// claim named it, and a plain ctr container too.
	image := map[string]string{vocab.LabelPodName: "coredns-x", vocab.LabelPodNamespace: "kube-system", vocab.LabelContainerName: "coredns"}
	cri := map[string]string{vocab.AnnotationSandboxName: "web-0", vocab.AnnotationSandboxNamespace: "shop", vocab.AnnotationContainerName: "app"}
	labels := maps.Clone(image)
	labels[vocab.LabelCRIKind] = "container"
	run("k8s.io", ctrdtest.Uniq("web-0"), "shop/web-0/app", &ctrdtest.RunOpts{Labels: labels, SpecOpts: []oci.SpecOpts{oci.WithAnnotations(cri)}})
	run("default", ctrdtest.Uniq("labelled"), "", &ctrdtest.RunOpts{Labels: image})
	run("moby", ctrdtest.Uniq("dockerish"), "", nil)
	d.Run(t, c, "default", ctrdtest.Uniq("notask"), &ctrdtest.RunOpts{NoStart: true})
	return containers.Merge(want)
}

func TestSourceLists(t *testing.T) {
	for _, f := range ctrdtest.Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			d := ctrdtest.Start(t, f, nil)
			want := startContainers(t, d)

			got, err := NewSource(d.Socket).List(context.Background())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if diff := cmp.Diff(want, containers.Merge(got), ignoreStart); diff != "" {
				t.Errorf("containerd source (-want +got):\n%s", diff)
			}

			// The state roots of the same daemon find the same containers
			// without asking it, with the names the spec's annotations
			// hold (CRI's keys, nerdctl's), which are in the state too.
			st := &containers.StateSource{Roots: []containers.Root{{Runtime: containers.EngineRunc, Dir: filepath.Join(d.RuncRoot, "*")}}}
			got, err = st.List(context.Background())
			if err != nil {
				t.Fatalf("state List: %v", err)
			}
			if diff := cmp.Diff(want, containers.Merge(got), ignoreStart); diff != "" {
				t.Errorf("state source (-want +got):\n%s", diff)
			}

			// Merged, the daemon's richer entries win and nothing doubles.
			got, err = containers.Multi{NewSource(d.Socket), st}.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, ignoreStart); diff != "" {
				t.Errorf("multi (-want +got):\n%s", diff)
			}

			// A container whose task exits drops out.
			ctx := ctrdtest.Context(t, "moby")
			ctr, err := d.Client(t).LoadContainer(ctx, ctrdtest.Uniq("dockerish"))
			if err != nil {
				t.Fatal(err)
			}
			task, err := ctr.Task(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := task.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Kill(ctx, 9); err != nil {
				t.Fatal(err)
			}
			<-ch
			got, err = NewSource(d.Socket).List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(got, func(c discover.Container) bool { return c.Namespace == "moby" }) {
				t.Errorf("exited task still listed: %+v", got)
			}
		})
	}
}

// TestSourceUnreachable checks that a missing daemon is a quick error and a
// daemon that accepts connections but never answers does not hang the
// caller past the deadline.
func TestSourceUnreachable(t *testing.T) {
	dir := t.TempDir()
	_, err := NewSource(filepath.Join(dir, "none.sock")).List(context.Background())
	if err == nil {
		t.Fatal("List on a missing socket: no error")
	}

	s := &Source{Address: ctrdtest.MuteSocket(t), Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err = s.List(context.Background())
	if err == nil {
		t.Fatal("List on a mute socket: no error")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("List on a mute socket took %v, want about the 300ms timeout", el)
	}
}

// TestSourcesNoFDLeak lists repeatedly from every source and checks that
// no file descriptor stays open (gRPC connections, state files, log
// files). It does not run in parallel, so the process's fd count is its
// own.
func TestSourcesNoFDLeak(t *testing.T) {
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	d.Run(t, d.Client(t), "default", ctrdtest.Uniq("fd"), nil)
	_, cfg := ctrdtest.HookConfig(t)
	if err := os.WriteFile(cfg.AuditLog, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sources := Sources(Options{Address: d.Socket, Roots: []containers.Root{{Runtime: containers.EngineRunc, Dir: d.RuncRoot + "/*"}}, AuditLog: cfg.AuditLog})
	sources = append(sources, NewSource(filepath.Join(t.TempDir(), "absent.sock")))
	list := func() {
		for _, s := range sources {
			s.List(context.Background())
		}
	}
	list() // warm up lazily opened descriptors (e.g. the Go runtime's)
	before := nstest.FDCount(t)
	for range 5 {
		list()
	}
	deadline := time.Now().Add(2 * time.Second)
	for nstest.FDCount(t) > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := nstest.FDCount(t); after > before {
		t.Errorf("fd leak: %d open fds before, %d after 5 rounds", before, after)
	}
}

func TestSpecPodName(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{`{"annotations":{"io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop"}}`, "shop/web-0"},
		{`{"annotations":{"io.kubernetes.cri.sandbox-name":"web-0"}}`, "web-0"},
		{`{"annotations":{"io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.container-name":"app"}}`, "shop/web-0/app"},
		// A pod's annotations of the kubelet's keys (pod_annotations
		// passes them) name nothing: the pod's author writes them.
		{`{"annotations":{"io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.pod.namespace":"kube-system","io.kubernetes.pod.name":"x"}}`, "shop/web-0"},
		// A sandbox has no container name.
		{`{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.container-name":"app"}}`, "shop/web-0"},
		{`{"annotations":{"other":"io.kubernetes.cri.sandbox-name"}}`, ""},
		{`{"annotations":{"io.kubernetes.cri.sandbox-name":5}}`, ""},
		{`not json io.kubernetes.cri.sandbox-name`, ""},
		{``, ""},
	} {
		if got := specPodName([]byte(tc.spec), false); got != tc.want {
			t.Errorf("specPodName(%s) = %q, want %q", tc.spec, got, tc.want)
		}
	}
}

func FuzzSpecPodName(f *testing.F) {
	f.Add([]byte(`{"annotations":{"io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop"}}`))
	f.Add([]byte(`{"process":{"args":["sh"]},"annotations":null}`))
	f.Fuzz(func(t *testing.T, spec []byte) {
		name := specPodName(spec, false)
		if name != "" && !bytes.Contains(spec, []byte(vocab.AnnotationSandboxName)) {
			t.Fatalf("name %q from a spec without the annotation", name)
		}
	})
}

// ignoreStart leaves the containers' start times out of comparisons
// (checkTrees checks them against the processes').
var ignoreStart = cmpopts.IgnoreFields(discover.Container{}, "StartTime")
