package containerd

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Defaults for installing nsrel-hook, matching config/runc/hooks.json.
const (
	DefaultHookPath   = "/usr/local/libexec/nsrel/nsrel-hook"
	DefaultHookConfig = "/etc/nsrel/hook.json"
	// DefaultHookTimeout is the runtime's hook timeout in seconds; keep
	// the hook config's deadline_ms below it.
	DefaultHookTimeout = 5
)

// HookStages are the OCI stages nsrel-hook is installed at: createRuntime
// (can refuse the container), poststart and poststop.
var HookStages = []string{"createRuntime", "poststart", "poststop"}

// Hooks returns the OCI hooks that run nsrel-hook (at path, with the
// config file config; defaults when empty) at every stage of [HookStages],
// with a timeout of [DefaultHookTimeout] seconds and no environment: the
// hook relies on neither PATH nor any other variable.
func Hooks(path, config string) specs.Hooks {
	if path == "" {
		path = DefaultHookPath
	}
	if config == "" {
		config = DefaultHookConfig
	}
	timeout := DefaultHookTimeout
	h := func(stage string) []specs.Hook {
		return []specs.Hook{{Path: path, Args: []string{"nsrel-hook", "--config", config, stage}, Timeout: &timeout}}
	}
	return specs.Hooks{CreateRuntime: h("createRuntime"), Poststart: h("poststart"), Poststop: h("poststop")}
}

// WithHook is an [oci.SpecOpts] that installs nsrel-hook (see [Hooks]) in
// a container's spec, after any hooks already there. Applying it twice
// adds nothing the second time. Relative paths are an error: the runtime
// runs hooks from the bundle directory, and the spec requires an
// absolute hook path.
//
//	ctr, err := client.NewContainer(ctx, id,
//		client.WithNewSnapshot(id+"-snap", image),
//		client.WithNewSpec(oci.WithImageConfig(image),
//			containerd.WithHook("", "")))
func WithHook(path, config string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, p := range []string{path, config} {
			if p != "" && !filepath.IsAbs(p) {
				return fmt.Errorf("nsrel WithHook: %q is not an absolute path", p)
			}
		}
		add := Hooks(path, config)
		if s.Hooks == nil {
			s.Hooks = &specs.Hooks{}
		}
		s.Hooks.CreateRuntime = appendHooks(s.Hooks.CreateRuntime, add.CreateRuntime)
		s.Hooks.Poststart = appendHooks(s.Hooks.Poststart, add.Poststart)
		s.Hooks.Poststop = appendHooks(s.Hooks.Poststop, add.Poststop)
		return nil
	}
}

func appendHooks(have, add []specs.Hook) []specs.Hook {
	for _, h := range add {
		if !slices.ContainsFunc(have, func(o specs.Hook) bool { return o.Path == h.Path && slices.Equal(o.Args, h.Args) }) {
			have = append(have, h)
		}
	}
	return have
}
