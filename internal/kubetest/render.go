package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// KustomizeVersion is the kustomize scripts/deps.sh builds.
const KustomizeVersion = "v5.8.1"

// Kustomize returns kustomize as scripts/deps.sh builds it (required).
func Kustomize(t testing.TB) string {
	t.Helper()
	k := filepath.Join(ctrdtest.Tools(), "kustomize-"+KustomizeVersion, "kustomize")
	_, err := os.Stat(k)
	nstest.Require(t, err == nil, "needs kustomize (%v); `make deps` builds it", err)
	return k
}

// Objects are the decoded objects of a rendered kustomization.
type Objects struct {
	Namespaces []*corev1.Namespace
	ConfigMaps []*corev1.ConfigMap
	DaemonSets []*appsv1.DaemonSet
}

// Render runs `kustomize build dir` and decodes its output with [Decode].
func Render(t testing.TB, dir string) *Objects {
	t.Helper()
	cmd := exec.Command(Kustomize(t), "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return objs
}

// Decode decodes a multi-document YAML stream strictly: each document
// must be a kind this package knows, and every field must exist, spelt
// exactly so, in its k8s.io/api type.
func Decode(stream []byte) (*Objects, error) {
	objs := &Objects{}
	for i, doc := range strings.Split("\n"+string(stream), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var err error
		switch head.APIVersion + " " + head.Kind {
		case "v1 Namespace":
			objs.Namespaces, err = add(objs.Namespaces, doc)
		case "v1 ConfigMap":
			objs.ConfigMaps, err = add(objs.ConfigMaps, doc)
		case "apps/v1 DaemonSet":
			objs.DaemonSets, err = add(objs.DaemonSets, doc)
		default:
			err = fmt.Errorf("unexpected kind %s %s", head.APIVersion, head.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, head.Kind, err)
		}
	}
	return objs, nil
}

func add[T any](list []*T, doc string) ([]*T, error) {
	// encoding/json matches field names case-insensitively ("hostPid"
	// would fill HostPID): decode with Kubernetes' case-sensitive JSON
	// decoder, which reports unknown and duplicate fields.
	data, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return nil, err
	}
	v := new(T)
	strict, err := kjson.UnmarshalStrict(data, v)
	if err == nil {
		err = errors.Join(strict...)
	}
	if err != nil {
		return nil, err
	}
	return append(list, v), nil
}

// Base renders the repository's deploy/kubernetes and checks that it
// holds one DaemonSet, one namespace and one ConfigMap.
func Base(t testing.TB) *Objects {
	t.Helper()
	objs := Render(t, nstest.RepoFile(t, "deploy/kubernetes"))
	if len(objs.DaemonSets) != 1 || len(objs.Namespaces) != 1 || len(objs.ConfigMaps) != 1 {
		t.Fatalf("deploy/kubernetes renders %d DaemonSets, %d namespaces, %d ConfigMaps; want one each", len(objs.DaemonSets), len(objs.Namespaces), len(objs.ConfigMaps))
	}
	return objs
}

// BaseWith renders an overlay of the repository's deploy/kubernetes
// that adds the kustomize component in directory component of it (e.g.
// "seccomp"), as docs/kubernetes.md tells a user to, and checks it as
// [Base] does.
func BaseWith(t testing.TB, component string) *Objects {
	t.Helper()
	overlay := t.TempDir()
	// kustomize takes no absolute path for a base or a component.
	base, err := filepath.Rel(overlay, nstest.RepoFile(t, "deploy/kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("resources:\n  - %s\ncomponents:\n  - %s\n", base, filepath.Join(base, component))
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := Render(t, overlay)
	if len(objs.DaemonSets) != 1 || len(objs.Namespaces) != 1 || len(objs.ConfigMaps) != 1 {
		t.Fatalf("deploy/kubernetes with %s renders %d DaemonSets, %d namespaces, %d ConfigMaps; want one each", component, len(objs.DaemonSets), len(objs.Namespaces), len(objs.ConfigMaps))
	}
	return objs
}
