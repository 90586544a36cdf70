package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/vocab"
)

// bypasses are the ways a container's creator could name the container
// into a laxer policy block: its ID, or Kubernetes namespace annotations
// it sets itself.
var bypasses = []struct {
	name   string
	prefix string // of the container ID
	ann    map[string]string
}{
	{"id", "infra-1", nil},
	{"pod namespace", "c", map[string]string{vocab.LabelPodNamespace: "kube-system", vocab.LabelPodName: "coredns"}},
	{"cri sandbox namespace", "c", map[string]string{vocab.AnnotationSandboxNamespace: "kube-system", vocab.AnnotationSandboxName: "coredns"}},
}

// checkRefused checks that the records of a container in the host user
// namespace say the default block of hook-enforce.json refused it.
func checkRefused(t *testing.T, recs []*audit.Record) {
	t.Helper()
	if len(recs) == 0 || recs[0].Stage != audit.StageCreateRuntime {
		t.Fatalf("records %v", audittest.Stages(recs))
	}
	r := recs[0]
	if r.Verdict != audit.VerdictDeny || r.Policy != "userns-required" || r.Mode != policy.ModeEnforce || !slices.Contains(audittest.Rules(r), policy.RuleRequireUserNS) {
		t.Errorf("record verdict %q policy %q mode %q violations %v", r.Verdict, r.Policy, r.Mode, audittest.Rules(r))
	}
	if slices.Contains(audittest.Stages(recs), audit.StagePoststart) {
		t.Errorf("a refused container was recorded as started: %v", audittest.Stages(recs))
	}
}

// TestSelectorsRuntimes runs containers without a user namespace under
// the shipped enforcing config with runc and crun, each naming itself
// into a laxer block (an ID starting with infra-, its own kube-system
// annotations): each is refused by the default block.
func TestSelectorsRuntimes(t *testing.T) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			o := requireRuntime(t, rt)
			e := newEnv(t, "hook-enforce.json", nil)
			for _, b := range bypasses {
				t.Run(b.name, func(t *testing.T) {
					id := uniqueID(t, b.prefix)
					stderr, err := o.run(t, e, id, bundle.Options{Annotations: b.ann}, true)
					if err == nil {
						t.Fatalf("%s ran %s (%v) without a user namespace under enforce", rt, id, b.ann)
					}
					if rt == "runc" && !strings.Contains(stderr, policy.RuleRequireUserNS) {
						t.Errorf("runc's error does not name the rule:\n%s", stderr)
					}
					if _, err := o.pid(e, id); err == nil {
						t.Errorf("refused container %s still exists", id)
					}
					checkRefused(t, e.records(t, id))
				})
			}
			e.verify(t)
		})
	}
}

// TestSelectorsPodman runs podman with the shipped hooks.d files and
// enforcing config: a container without a user namespace that sets
// kube-system annotations on itself (`podman run --annotation`) is
// refused. (podman chooses container IDs itself.)
func TestSelectorsPodman(t *testing.T) {
	requireRuntime(t, "runc")
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := bundle.Rootfs(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	for _, b := range bypasses {
		if b.ann == nil {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, "hook-enforce.json", nil)
			var flags []string
			for k, v := range b.ann {
				flags = append(flags, "--annotation", k+"="+v)
			}
			cid, stderr, err := e.podmanRun(t, rootfs, flags...)
			if err == nil {
				t.Fatalf("podman ran a container without user namespace annotated %v under enforce", b.ann)
			}
			if !strings.Contains(stderr, policy.RuleRequireUserNS) {
				t.Errorf("podman's error does not name the rule:\n%s", stderr)
			}
			recs := e.records(t, cid)
			checkRefused(t, recs)
			for k, v := range b.ann {
				if recs[0].Annotations[k] != v {
					t.Errorf("record annotations %v: the container's %s=%s did not reach the hook", recs[0].Annotations, k, v)
				}
			}
			e.verify(t)
		})
	}
}

// oldEnforce is config/hook-enforce.json before trusted_selectors: its
// blocks could be picked by the containers they exempt.
const oldEnforce = `{
	"version": 1,
	"audit_log": "/var/log/nsrel/audit.jsonl",
	"on_error": "deny",
	"policies": [
		{
			"name": "system",
			"match": {"annotations": {"io\\.kubernetes\\.(pod\\.namespace|cri\\.sandbox-namespace)": "kube-system"}},
			"mode": "audit",
			"rules": {"require_pid_namespace": true}
		},
		{
			"name": "trusted-ids",
			"match": {"id": "infra-.*"},
			"mode": "audit",
			"rules": {}
		}
	],
	"default": {"name": "userns-required", "mode": "enforce", "rules": {"require_user_namespace": true}}
}`

// TestSelectorsPolicyCheck checks what `nsrel-hook policy check` says of
// trusted selectors: the old example config is refused with one line per
// untrusted selector, and the hook refuses every container while it is
// installed; the shipped configs print what they trust.
func TestSelectorsPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	old, log := filepath.Join(dir, "old.json"), filepath.Join(dir, "audit.jsonl")
	// The refusal's record goes to the test's log, not the host's.
	if err := os.WriteFile(old, []byte(strings.Replace(oldEnforce, "/var/log/nsrel/audit.jsonl", log, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run("", "policy", "check", old)
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 1 || stdout != "" || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "nsrel-hook: "+old+`:8:30: policies[0].match.annotations["io\\.kubernetes\\.(pod\\.namespace|cri\\.sandbox-namespace)"]: must be one literal annotation key`) ||
		!strings.HasPrefix(lines[1], "nsrel-hook: "+old+":14:20: policies[1].match.id: the container ID is not trusted (trusted_selectors.id)") {
		t.Errorf("policy check of the old config: exit %d\nstdout %q\nstderr:\n%s", code, stdout, stderr)
	}
	if code, _, stderr := run(selfState("c1"), "--config", old, "createRuntime"); code != 1 || !strings.Contains(stderr, "trusted_selectors") {
		t.Errorf("createRuntime with the old config: exit %d, stderr %q; want a refusal naming trusted_selectors", code, stderr)
	}
	if recs := audittest.Records(t, log, "c1"); len(recs) != 1 || recs[0].Verdict != audit.VerdictDeny {
		t.Errorf("records of the refusal in %s: %v; want one deny", log, audittest.Stages(recs))
	}

	tests := []struct {
		file string
		want []string
	}{
		{"hook-enforce.json", []string{"trusted selectors:   none (no block can be selected by annotation or ID)\n"}},
		{"hook-enforce-cri.json", []string{
			"trusted selectors:   annotation io.kubernetes.cri.sandbox-namespace\n",
			"policy 1 \"system\"\n  matches: containers with annotation io.kubernetes.cri.sandbox-namespace = kube-system\n",
		}},
	}
	for _, tt := range tests {
		code, stdout, stderr := run("", "policy", "check", filepath.Join("..", "..", "config", tt.file))
		if code != 0 {
			t.Errorf("%s: exit %d: %s", tt.file, code, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s: output does not contain %q:\n%s", tt.file, w, stdout)
			}
		}
	}
}
