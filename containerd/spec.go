package containerd

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/internal/vocab"
)

// Hooks returns the OCI hooks that run nsrel-hook (at path, with the
// config file config; [vocab.DefaultHookPath] and
// [vocab.DefaultHookConfig] when empty) at stages, by default
// [vocab.ShippedStages] (createRuntime and poststop; name
// "createRuntime", "poststart", "poststop" for the opt-in re-check), with a timeout of
// [vocab.DefaultHookTimeout] seconds and no environment: the hook relies
// on neither PATH nor any other variable. These are the hooks
// config/runc/hooks.json ships. A stage not in [vocab.HookStages] is a
// programming error and panics (stages are constants in the caller's
// code; [WithHook], which may get them from configuration, returns an
// error instead): ignoring it would leave a stage unrecorded silently.
func Hooks(path, config string, stages ...string) specs.Hooks {
	hs, err := hooksAt(path, config, stages)
	if err != nil {
		panic("nsrel containerd.Hooks: " + err.Error())
	}
	return hs
}

// hooksAt is [Hooks], with an error for a stage not in [vocab.HookStages].
func hooksAt(path, config string, stages []string) (specs.Hooks, error) {
	if path == "" {
		path = vocab.DefaultHookPath
	}
	if config == "" {
		config = vocab.DefaultHookConfig
	}
	if len(stages) == 0 {
		stages = vocab.ShippedStages
	}
	timeout := vocab.DefaultHookTimeout
	var hs specs.Hooks
	for _, stage := range stages {
		h := []specs.Hook{{Path: path, Args: []string{vocab.HookName, "--config", config, stage}, Timeout: &timeout}}
		switch stage {
		case vocab.StageCreateRuntime:
			hs.CreateRuntime = h
		case vocab.StagePoststart:
			hs.Poststart = h
		case vocab.StagePoststop:
			hs.Poststop = h
		default:
			return specs.Hooks{}, fmt.Errorf("unknown stage %q (want some of %s)", stage, strings.Join(vocab.HookStages, ", "))
		}
	}
	return hs, nil
}

// WithHook is an [oci.SpecOpts] that installs nsrel-hook (see [Hooks]) in
// a container's spec at stages (by default [vocab.ShippedStages]), after
// any hooks already there. Applying it twice adds nothing the second
// time. Relative paths and unknown stages are an error: the runtime runs
// hooks from the bundle directory, and the spec requires an absolute
// hook path.
//
//	ctr, err := client.NewContainer(ctx, id,
//		client.WithNewSnapshot(id+"-snap", image),
//		client.WithNewSpec(oci.WithImageConfig(image),
//			containerd.WithHook("", "")))
func WithHook(path, config string, stages ...string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, p := range []string{path, config} {
			if p != "" && !filepath.IsAbs(p) {
				return fmt.Errorf("nsrel WithHook: %q is not an absolute path", p)
			}
		}
		add, err := hooksAt(path, config, stages)
		if err != nil {
			return fmt.Errorf("nsrel WithHook: %w", err)
		}
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
