package policy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
	"github.com/nsrel/nsrel/hook/policy"
)

// withPolicies returns a config with trusted (a trusted_selectors value,
// or "" for none) and one block selected by match.
func withPolicies(trusted, match string) string {
	t := ""
	if trusted != "" {
		t = `"trusted_selectors":` + trusted + `,`
	}
	return `{"version":1,"audit_log":"/a",` + t + `"policies":[{"name":"lax","mode":"audit","match":` + match + `}],"default":{"mode":"enforce"}}`
}

// TestParseUntrustedSelectors checks that a block cannot be selected by
// what a container's creator chooses (its ID, its annotations) unless
// trusted_selectors says the operator trusts it, and that a broken
// trusted_selectors is reported.
func TestParseUntrustedSelectors(t *testing.T) {
	const cri = `{"annotations":["io.kubernetes.cri.sandbox-namespace"]}`
	tests := []struct {
		name string
		doc  string
		want []string // substrings, one per expected error line
	}{
		{"id untrusted", withPolicies("", `{"id":"infra-.*"}`),
			[]string{`policies[0].match.id: the container ID is not trusted (trusted_selectors.id): whoever creates a container chooses its ID`}},
		{"id trusted false", withPolicies(`{"id":false}`, `{"id":"infra-.*"}`),
			[]string{`policies[0].match.id: the container ID is not trusted`}},
		{"id with another key trusted", withPolicies(cri, `{"id":"infra-.*"}`),
			[]string{`policies[0].match.id: the container ID is not trusted`}},
		{"annotation untrusted", withPolicies("", `{"annotations":{"io\\.kubernetes\\.pod\\.namespace":"kube-system"}}`),
			[]string{`policies[0].match.annotations["io\\.kubernetes\\.pod\\.namespace"]: annotation "io.kubernetes.pod.namespace" is not in trusted_selectors.annotations: a container's creator sets its own annotations`}},
		{"annotation not the trusted one", withPolicies(cri, `{"annotations":{"io\\.kubernetes\\.pod\\.namespace":"kube-system"}}`),
			[]string{`annotation "io.kubernetes.pod.namespace" is not in trusted_selectors.annotations`}},
		{"trusted key with unescaped dots", withPolicies(cri, `{"annotations":{"io.kubernetes.cri.sandbox-namespace":"kube-system"}}`),
			[]string{`policies[0].match.annotations["io.kubernetes.cri.sandbox-namespace"]: must be one literal annotation key, not a pattern (write "io\\.kubernetes\\.cri\\.sandbox-namespace" for that key)`}},
		{"alternation", withPolicies(cri, `{"annotations":{"io\\.kubernetes\\.(pod\\.namespace|cri\\.sandbox-namespace)":"kube-system"}}`),
			[]string{`must be one literal annotation key, not a pattern: only the keys in trusted_selectors.annotations`}},
		{"prefix", withPolicies(cri, `{"annotations":{"io\\.kubernetes\\.cri\\.sandbox-namespace.*":"kube-system"}}`),
			[]string{`must be one literal annotation key, not a pattern:`}},
		{"case folding", withPolicies(cri, `{"annotations":{"(?i)io\\.kubernetes\\.cri\\.sandbox-namespace":"kube-system"}}`),
			[]string{`must be one literal annotation key, not a pattern:`}},
		{"each selector", withPolicies("", `{"id":"x","annotations":{"a":"1","b":"2"}}`),
			[]string{`match.id: the container ID is not trusted`, `match.annotations["a"]: annotation "a" is not in`, `match.annotations["b"]: annotation "b" is not in`}},
		{"with other errors", `{"version":1,"audit_log":"rel","policies":[{"name":"lax","mode":"audit","match":{"id":"x"}}],"default":{"mode":"enforce"}}`,
			[]string{`audit_log: must be a clean absolute path`, `policies[0].match.id: the container ID is not trusted`}},
		{"not an object", withPolicies(`[]`, `{"id":"x"}`), []string{`trusted_selectors: must be an object, not an array`}},
		{"unknown key", withPolicies(`{"labels":["a"]}`, `{"id":"x"}`), []string{`trusted_selectors.labels: unknown key (known: annotations, id)`}},
		{"annotations not an array", withPolicies(`{"annotations":"a"}`, `{"id":"x"}`),
			[]string{`trusted_selectors.annotations: must be an array of annotation keys, not a string`}},
		{"annotation not a string", withPolicies(`{"annotations":[1]}`, `{"id":"x"}`),
			[]string{`trusted_selectors.annotations[0]: must be a string, not a number`}},
		{"empty key", withPolicies(`{"annotations":[""]}`, `{"id":"x"}`),
			[]string{`trusted_selectors.annotations[0]: must be an annotation key: not empty, without control characters (C0 or DEL)`}},
		{"key with a tab", withPolicies(`{"annotations":["a\tb"]}`, `{"id":"x"}`),
			[]string{`trusted_selectors.annotations[0]: must be an annotation key: not empty`}},
		{"key as a pattern", withPolicies(`{"annotations":["io\\.kubernetes\\.cri\\.sandbox-namespace"]}`, `{"id":"x"}`),
			[]string{`trusted_selectors.annotations[0]: must be an annotation key as the runtime writes it (such as "io.kubernetes.cri.sandbox-namespace"), not a pattern`}},
		{"wildcard key", withPolicies(`{"annotations":["io.kubernetes.*"]}`, `{"id":"x"}`),
			[]string{`trusted_selectors.annotations[0]: must be an annotation key as the runtime writes it`}},
		{"duplicate key", withPolicies(`{"annotations":["a","a"]}`, `{"id":"x"}`),
			[]string{`trusted_selectors.annotations[1]: duplicate annotation key "a"`}},
		{"id not a boolean", withPolicies(`{"id":"yes"}`, `{"id":"x"}`),
			[]string{`trusted_selectors.id: must be true or false, not a string`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { parseErrors(t, tt.doc, "x.json:1:", tt.want) })
	}
}

// TestParseUntrustedPosition checks the line and column of a refused
// selector: the annotation's key, the ID's value.
func TestParseUntrustedPosition(t *testing.T) {
	doc := `{
	"version": 1,
	"audit_log": "/a",
	"policies": [
		{"name": "system", "mode": "audit",
		 "match": {"annotations": {"io\\.kubernetes\\.pod\\.namespace": "kube-system"}}},
		{"name": "infra", "mode": "audit", "match": {"id": "infra-.*"}}
	],
	"default": {"mode": "enforce"}
}`
	_, err := policy.Parse("hook.json", []byte(doc))
	if err == nil {
		t.Fatal("no error")
	}
	var got []string
	for _, l := range strings.Split(err.Error(), "\n") {
		prefix, _, _ := strings.Cut(l, ": ")
		path, _, _ := strings.Cut(strings.TrimPrefix(l, prefix+": "), ": ")
		got = append(got, prefix+" "+path)
	}
	want := []string{
		`hook.json:6:30 policies[0].match.annotations["io\\.kubernetes\\.pod\\.namespace"]`,
		`hook.json:7:54 policies[1].match.id`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s\n%v", d, err)
	}
}

// TestParseTrustedSelectors checks the forms accepted: a trusted literal
// key however it is spelled as an expression, the ID when trusted, and
// trusted_selectors after the policies.
func TestParseTrustedSelectors(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		trusted policy.TrustedSelectors
		keys    []string
		id      bool
	}{
		{"escaped dots", withPolicies(`{"annotations":["io.kubernetes.cri.sandbox-namespace"]}`, `{"annotations":{"io\\.kubernetes\\.cri\\.sandbox-namespace":"kube-system"}}`),
			policy.TrustedSelectors{Annotations: []string{"io.kubernetes.cri.sandbox-namespace"}}, []string{"io.kubernetes.cri.sandbox-namespace"}, false},
		{"quoted", withPolicies(`{"annotations":["io.kubernetes.cri.sandbox-namespace"]}`, `{"annotations":{"\\Qio.kubernetes.cri.sandbox-namespace\\E":"kube-system"}}`),
			policy.TrustedSelectors{Annotations: []string{"io.kubernetes.cri.sandbox-namespace"}}, []string{"io.kubernetes.cri.sandbox-namespace"}, false},
		{"group", withPolicies(`{"annotations":["tier"]}`, `{"annotations":{"(?:tier)":"front"}}`),
			policy.TrustedSelectors{Annotations: []string{"tier"}}, []string{"tier"}, false},
		{"two keys and the id", withPolicies(`{"annotations":["a","b/c"],"id":true}`, `{"id":"infra-.*","annotations":{"a":"1","b/c":"2"}}`),
			policy.TrustedSelectors{Annotations: []string{"a", "b/c"}, ID: true}, []string{"a", "b/c"}, true},
		{"trusted after the policies", `{"version":1,"audit_log":"/a","policies":[{"name":"lax","mode":"audit","match":{"id":"x"}}],"default":{"mode":"enforce"},"trusted_selectors":{"id":true}}`,
			policy.TrustedSelectors{ID: true}, nil, true},
		{"trusted, unused", `{"version":1,"audit_log":"/a","trusted_selectors":{"annotations":[],"id":true},"default":{"mode":"enforce"}}`,
			policy.TrustedSelectors{Annotations: []string{}, ID: true}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := policy.Parse("x.json", []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.trusted, c.TrustedSelectors); d != "" {
				t.Errorf("trusted (-want +got):\n%s", d)
			}
			var keys []string
			id := false
			for _, b := range c.Policies {
				for _, am := range b.Match.Annotations {
					keys = append(keys, am.Key)
				}
				id = id || b.Match.ID != nil
			}
			if d := cmp.Diff(tt.keys, keys); d != "" || id != tt.id {
				t.Errorf("match keys (-want +got):\n%s; id %v, want %v", d, id, tt.id)
			}
		})
	}
	c, err := policy.Parse("min.json", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustedSelectors.ID || c.TrustedSelectors.Annotations != nil {
		t.Errorf("trusted by default: %+v", c.TrustedSelectors)
	}
}

// TestSelectTrustedKey checks that a block selected by a trusted key
// needs exactly that key: no look-alike key a container could set, and
// not its absence, selects it.
func TestSelectTrustedKey(t *testing.T) {
	c, err := policy.Parse("sel.json", []byte(withPolicies(`{"annotations":["io.kubernetes.cri.sandbox-namespace"]}`,
		`{"annotations":{"io\\.kubernetes\\.cri\\.sandbox-namespace":"kube-system|.*-system"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{"io.kubernetes.cri.sandbox-namespace": "kube-system"}, "lax"},
		{map[string]string{"io.kubernetes.cri.sandbox-namespace": "monitoring-system"}, "lax"},
		{map[string]string{"io.kubernetes.cri.sandbox-namespace": "shop"}, "default"},
		{map[string]string{"io.kubernetes.cri.sandbox-namespace": "kube-system\n"}, "default"},
		{map[string]string{"io.kubernetes.cri.sandbox-namespace": ""}, "default"},
		{nil, "default"},
		{map[string]string{"ioXkubernetesXcriXsandbox-namespace": "kube-system"}, "default"},
		{map[string]string{"io.kubernetes.cri.sandbox-namespace2": "kube-system"}, "default"},
		{map[string]string{"IO.KUBERNETES.CRI.SANDBOX-NAMESPACE": "kube-system"}, "default"},
		{map[string]string{"io.kubernetes.pod.namespace": "kube-system"}, "default"},
	}
	for _, tt := range tests {
		if got := c.Select("infra-1", tt.ann).Name; got != tt.want {
			t.Errorf("Select(%q) = %q, want %q", tt.ann, got, tt.want)
		}
	}
}

// TestShippedNoBypass checks the shipped enforcing configs against a
// container in the host user namespace that names itself into a laxer
// block: by ID, or by the Kubernetes namespace annotations it set
// itself. Under hook-enforce.json nothing exempts it; under
// hook-enforce-cri.json only the trusted CRI key does (set by
// containerd's CRI plugin, never by the container there; see
// docs/hook.md).
func TestShippedNoBypass(t *testing.T) {
	host := ancestry(0, false, 0, 0)
	attempts := map[string]struct {
		id  string
		ann map[string]string
	}{
		"id":           {"infra-1", nil},
		"pod label":    {"c1", map[string]string{"io.kubernetes.pod.namespace": "kube-system"}},
		"cri":          {"c1", map[string]string{"io.kubernetes.cri.sandbox-namespace": "kube-system", "io.kubernetes.cri.sandbox-name": "coredns"}},
		"all together": {"infra-1", map[string]string{"io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.cri.sandbox-namespace": "kube-system"}},
	}
	for _, file := range []string{"hook-enforce.json", "hook-enforce-cri.json"} {
		c, err := policy.Load("../../config/" + file)
		if err != nil {
			t.Fatal(err)
		}
		for name, a := range attempts {
			b := c.Select(a.id, a.ann)
			exempt := file == "hook-enforce-cri.json" && a.ann["io.kubernetes.cri.sandbox-namespace"] == "kube-system"
			if exempt {
				if b.Name != "system" {
					t.Errorf("%s: %s: block %q, want the kube-system block", file, name, b.Name)
				}
				continue
			}
			if b.Name != "userns-required" || b.Mode != policy.ModeEnforce || len(b.Evaluate(host)) == 0 {
				t.Errorf("%s: %s: block %q (%s) lets a host user namespace container through", file, name, b.Name, b.Mode)
			}
		}
	}
}

// TestShippedFastTree checks that the example CRI config takes the fast
// parser too.
func TestShippedFastTree(t *testing.T) {
	data, err := os.ReadFile("../../config/hook-enforce-cri.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fastjson.Parse(data); !ok {
		t.Error("not read by the fast parser")
	}
}

func TestDescribeTrusted(t *testing.T) {
	tests := []struct {
		t    policy.TrustedSelectors
		want string
	}{
		{policy.TrustedSelectors{}, "none (no block can be selected by annotation or ID)"},
		{policy.TrustedSelectors{Annotations: []string{"io.kubernetes.cri.sandbox-namespace"}}, "annotation io.kubernetes.cri.sandbox-namespace"},
		{policy.TrustedSelectors{Annotations: []string{"a", "b"}, ID: true}, "annotation a, annotation b, container ID"},
	}
	for _, tt := range tests {
		if got := tt.t.Describe(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.t, got, tt.want)
		}
	}
	c, err := policy.Load("../../config/hook-enforce-cri.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"matches: containers with annotation io.kubernetes.cri.sandbox-namespace = kube-system", "mode:    audit", "rules:   require_pid_namespace"}
	if d := cmp.Diff(want, c.Policies[0].Describe()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// The example enforcing config before trusted_selectors: both of its
// blocks could be picked by the container they were meant to exempt.
func ExampleParse_untrustedSelectors() {
	_, err := policy.Parse("hook.json", []byte(`{"version": 1, "audit_log": "/var/log/nsrel/audit.jsonl",
  "policies": [
    {"name": "system", "mode": "audit",
     "match": {"annotations": {"io\\.kubernetes\\.pod\\.namespace": "kube-system"}}},
    {"name": "trusted-ids", "mode": "audit", "match": {"id": "infra-.*"}}
  ],
  "default": {"mode": "enforce", "rules": {"require_user_namespace": true}}}`))
	fmt.Println(err)
	// Output:
	// hook.json:4:32: policies[0].match.annotations["io\\.kubernetes\\.pod\\.namespace"]: annotation "io.kubernetes.pod.namespace" is not in trusted_selectors.annotations: a container's creator sets its own annotations (runc, crun, podman, CRI-O), so a container could pick this block; list the key there only if your runtime sets it, as containerd's CRI plugin sets io.kubernetes.cri.sandbox-namespace from the pod
	// hook.json:5:62: policies[1].match.id: the container ID is not trusted (trusted_selectors.id): whoever creates a container chooses its ID (runc, crun, ctr), so a container could pick this block; trust it only if nobody else can create containers that run this hook
}

// TestAnnotationKeys: record_annotations and trusted_selectors.annotations
// take every key trusted_selectors took before annotationKey (1 to 253
// bytes without a control character, space or DEL), Kubernetes' longest,
// and keys of any length; they refuse an empty key and C0 control
// characters and DEL, which trusted_selectors never took (and
// record_annotations not since 87c3e14). annotationKey refused no-break
// and zero-width spaces, soft hyphens, C1, bidirectional, private-use and
// unassigned characters, and keys over 317 bytes: such a config no longer
// loaded and the hook refused every container.
func TestAnnotationKeys(t *testing.T) {
	label := strings.Repeat("a", 63)
	prefix := strings.Join([]string{label, label, label, strings.Repeat("b", 61)}, ".") // 253 bytes
	longest := prefix + "/" + strings.Repeat("N", 62) + "1"
	if len(longest) != 317 {
		t.Fatalf("longest key %d bytes", len(longest))
	}
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{longest, true},
		{prefix, true},
		{"io.kubernetes.cri.sandbox-namespace", true},
		{"app.kubernetes.io/name", true},
		{"Example.com/My_Key.v-1", true},
		{"a", true},
		{longest + "x", true},
		{strings.Repeat("k", 4096), true},
		{"a b", true},
		{"a\u0085b", true},     // C1 next line
		{"a\u009bb", true},     // C1 CSI
		{"a\u202eb", true},     // bidirectional override
		{"a\u200bb", true},     // zero-width space
		{"a\u200db", true},     // zero-width joiner
		{"a\u00a0b", true},     // no-break space
		{"a\u00adb", true},     // soft hyphen
		{"a\ue000b", true},     // private use
		{"a\U000e0080b", true}, // unassigned
		{"a\ufffdb", true},     // what encoding/json makes of invalid UTF-8
		{"", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\x1bb", false},
		{"\x00", false},
		{"a\x7fb", false}, // DEL
	} {
		js, _ := json.Marshal(tc.key)
		for _, where := range []string{
			`"record_annotations":[` + string(js) + `]`,
			`"trusted_selectors":{"annotations":[` + string(js) + `]}`,
		} {
			_, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/a",`+where+`,"default":{"mode":"enforce"}}`))
			if tc.ok && err != nil || !tc.ok && (err == nil || !strings.Contains(err.Error(), "must be an annotation key: not empty, without control characters (C0 or DEL)")) {
				t.Errorf("%s (%d bytes): %v, want ok %v", where[:min(len(where), 60)], len(tc.key), err, tc.ok)
			}
		}
	}
	// Invalid UTF-8 in the file reaches the parser as U+FFFD: taken.
	for _, where := range []string{`"record_annotations":["a` + "\xff" + `b"]`, `"trusted_selectors":{"annotations":["a` + "\xff" + `b"]}`} {
		if _, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/a",`+where+`,"default":{"mode":"enforce"}}`)); err != nil {
			t.Errorf("%q: %v", where, err)
		}
	}
}
