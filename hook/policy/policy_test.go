package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/nsrel"
)

const minimal = `{"version": 1, "audit_log": "/var/log/nsrel/audit.jsonl", "default": {"mode": "audit"}}`

func TestParseDefaults(t *testing.T) {
	c, err := policy.Parse("min.json", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.AuditLog, c.LogFile, c.OnError, c.DeadlineMS, c.RotateBytes, c.Default.Name, c.Default.Mode, len(c.Policies), c.RecordAnnotations}
	want := []any{"/var/log/nsrel/audit.jsonl", "", policy.OnErrorAllow, policy.DefaultDeadlineMS, int64(policy.DefaultRotateBytes), "default", policy.ModeAudit, 0, policy.DefaultRecordAnnotations}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("defaults (-want +got):\n%s", d)
	}
}

// TestLongLogNameNeverRotated: a log that never rotates (rotate_bytes
// 0) has no rotated files to name: a name up to 244 bytes loads (a
// check for rotated names refused one that had worked).
func TestLongLogNameNeverRotated(t *testing.T) {
	for _, order := range []string{
		`{"version":1,"audit_log":"/var/log/` + strings.Repeat("a", 240) + `","rotate_bytes":0,"default":{"mode":"audit"}}`,
		`{"version":1,"rotate_bytes":0,"audit_log":"/var/log/` + strings.Repeat("a", 240) + `","default":{"mode":"audit"}}`,
	} {
		if _, err := policy.Parse("x.json", []byte(order)); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings, one per expected error line
	}{
		{"syntax", "{\n  \"version\": 1,\n  \"audit_log\": ,\n}", []string{"x.json:3:"}},
		{"trailing data", minimal + " {}", []string{"unexpected data after"}},
		{"empty", "", []string{"unexpected end of file"}},
		{"not an object", "[]", []string{"x.json:1:1: must be an object"}},
		{"unknown key", "{\"version\":1,\"audit_log\":\"/a\",\n\"default\":{\"mode\":\"audit\"},\n  \"extra\":true}", []string{"x.json:3:3: extra: unknown key"}},
		{"duplicate key", `{"version":1,"version":1}`, []string{"x.json:1:14: version: duplicate key"}},
		// The key path, as every other error names it.
		{"duplicate nested key", `{"version":1,"audit_log":"/a","default":{"mode":"audit","rules":{"require_user_namespace":true,"require_user_namespace":false}}}`, []string{"default.rules.require_user_namespace: duplicate key"}},
		{"duplicate key in a block", `{"version":1,"audit_log":"/a","policies":[{"name":"a","name":"b"}],"default":{"mode":"audit"}}`, []string{"policies[0].name: duplicate key"}},
		// A key may hold a newline: the error stays on one line.
		{"unknown key with a newline", "{\"version\":1,\"audit_log\":\"/a\",\"default\":{\"mode\":\"audit\"},\"bo\\ngus\":1}", []string{`"bo\ngus": unknown key`}},
		// No span turned the rule off (allowed_owner_uids [] refuses
		// every container).
		{"no host ranges", `{"version":1,"audit_log":"/a","default":{"mode":"enforce","rules":{"allowed_host_ranges":[]}}}`, []string{"default.rules.allowed_host_ranges: must list at least one [first, count] pair, or go with allowed_subid_user"}},
		// With a user's subordinate IDs, [] allows those alone: such a
		// config loaded before and must still (TestEmptyRangesWithSubIDUser).
		{"missing required", `{"version":1}`, []string{"audit_log: missing", "default: missing"}},
		{"wrong version", `{"version":2,"audit_log":"/a","default":{"mode":"audit"}}`, []string{"version: must be between 1 and 1"}},
		{"relative log", `{"version":1,"audit_log":"a/b","default":{"mode":"audit"}}`, []string{"audit_log: must be a clean absolute path"}},
		{"unclean log", `{"version":1,"audit_log":"/a/../b","default":{"mode":"audit"}}`, []string{"audit_log: must be a clean absolute path"}},
		// Its rotated files' names (NAME.SEQ) must fit in 255 bytes: a
		// longer one recorded until the first rotation, then failed
		// every append.
		{"log name too long", `{"version":1,"audit_log":"/var/log/` + strings.Repeat("a", 235) + `","default":{"mode":"audit"}}`, []string{"audit_log: the file name \"" + strings.Repeat("a", 235) + "\" is 235 bytes: its rotated files' names (a dot and up to 20 digits after it) would pass 255 bytes, the longest a name may be (at most 234 bytes)"}},
		{"log path too long", `{"version":1,"audit_log":"` + strings.Repeat("/d", 2040) + `","default":{"mode":"audit"}}`, []string{"audit_log: the path is 4080 bytes: with its rotated files' names (a dot and up to 20 digits after it) it would pass 4095 bytes"}},
		// Never rotated: its checkpoint state's name must fit.
		{"log name too long, never rotated", `{"version":1,"audit_log":"/var/log/` + strings.Repeat("a", 245) + `","rotate_bytes":0,"default":{"mode":"audit"}}`, []string{"audit_log: the file name \"" + strings.Repeat("a", 245) + "\" is 245 bytes: its checkpoint state's name (.checkpoint after it) would pass 255 bytes, the longest a name may be (at most 244 bytes)"}},
		{"bad on_error", `{"version":1,"audit_log":"/a","on_error":"maybe","default":{"mode":"audit"}}`, []string{"on_error: must be \"allow\" or \"deny\""}},
		{"deadline range", `{"version":1,"audit_log":"/a","deadline_ms":0,"default":{"mode":"audit"}}`, []string{"deadline_ms: must be between 10 and 60000"}},
		{"fractional", `{"version":1,"audit_log":"/a","deadline_ms":1.5,"default":{"mode":"audit"}}`, []string{"deadline_ms: must be a whole number"}},
		{"small rotation", `{"version":1,"audit_log":"/a","rotate_bytes":10,"default":{"mode":"audit"}}`, []string{"rotate_bytes: must be 0"}},
		{"bad mode", `{"version":1,"audit_log":"/a","default":{"mode":"strict"}}`, []string{"default.mode: must be \"enforce\" or \"audit\""}},
		{"default with match", `{"version":1,"audit_log":"/a","default":{"mode":"audit","match":{"id":"x"}}}`, []string{"default.match: unknown key"}},
		{"block without match", `{"version":1,"audit_log":"/a","policies":[{"name":"a","mode":"audit"}],"default":{"mode":"audit"}}`, []string{"policies[0].match: missing"}},
		{"empty match", `{"version":1,"audit_log":"/a","policies":[{"name":"a","mode":"audit","match":{}}],"default":{"mode":"audit"}}`, []string{"policies[0].match: needs"}},
		{"empty annotations", `{"version":1,"audit_log":"/a","policies":[{"name":"a","mode":"audit","match":{"annotations":{}}}],"default":{"mode":"audit"}}`, []string{"policies[0].match.annotations: must name at least one annotation"}},
		{"empty annotations with id", `{"version":1,"audit_log":"/a","trusted_selectors":{"id":true},"policies":[{"name":"a","mode":"audit","match":{"id":"x","annotations":{}}}],"default":{"mode":"audit"}}`, []string{"policies[0].match.annotations: must name at least one annotation"}},
		{"bad regex", `{"version":1,"audit_log":"/a","policies":[{"name":"a","mode":"audit","match":{"id":"("}}],"default":{"mode":"audit"}}`, []string{"policies[0].match.id: bad regular expression"}},
		// A newline in the expression stays in the one line of its
		// error: the regexp package's message quotes it as it is.
		{"bad regex with newline", `{"version":1,"audit_log":"/a","policies":[{"name":"a","mode":"audit","match":{"id":"kube\nsys("}}],"default":{"mode":"audit"}}`, []string{"policies[0].match.id: bad regular expression \"kube\\nsys(\": missing closing ) in \"kube\\nsys(\""}},
		{"bad key regex", `{"version":1,"audit_log":"/a","policies":[{"name":"a","mode":"audit","match":{"annotations":{"(":"x"}}}],"default":{"mode":"audit"}}`, []string{"bad key regular expression"}},
		// Wrapped as ^(?:...)$ it would compile and match everything.
		{"regex breaking out", `{"version":1,"audit_log":"/a","trusted_selectors":{"id":true},"policies":[{"name":"a","mode":"audit","match":{"id":"x)|(?:.*"}}],"default":{"mode":"audit"}}`, []string{"policies[0].match.id: bad regular expression"}},
		{"default named as a block", `{"version":1,"audit_log":"/a","trusted_selectors":{"id":true},"policies":[{"name":"default","mode":"audit","match":{"id":"x"}}],"default":{"mode":"enforce"}}`, []string{"default.name: duplicate block name \"default\""}},
		{"default named as a block, explicitly", `{"version":1,"audit_log":"/a","default":{"name":"a","mode":"enforce"},"trusted_selectors":{"id":true},"policies":[{"name":"a","mode":"audit","match":{"id":"x"}}]}`, []string{"default.name: duplicate block name \"a\""}},
		{"checkpoints nowhere", `{"version":1,"audit_log":"/a","checkpoints":{},"default":{"mode":"audit"}}`, []string{"checkpoints: needs a destination"}},
		{"checkpoints to no syslog", `{"version":1,"audit_log":"/a","checkpoints":{"every_records":5,"syslog":[]},"default":{"mode":"audit"}}`, []string{"checkpoints: needs a destination"}},
		{"duplicate names", `{"version":1,"audit_log":"/a","trusted_selectors":{"id":true},"policies":[{"name":"a","mode":"audit","match":{"id":"x"}},{"name":"a","mode":"audit","match":{"id":"y"}}],"default":{"mode":"audit"}}`, []string{"policies[1].name: duplicate block name"}},
		{"depth range", `{"version":1,"audit_log":"/a","default":{"mode":"audit","rules":{"user_depth_max":34}}}`, []string{"default.rules.user_depth_max: must be between 0 and 33"}},
		{"min above max", `{"version":1,"audit_log":"/a","default":{"mode":"audit","rules":{"user_depth_min":3,"user_depth_max":2}}}`, []string{"user_depth_min (3) is greater than user_depth_max (2)"}},
		{"negative uid", `{"version":1,"audit_log":"/a","default":{"mode":"audit","rules":{"allowed_owner_uids":[0,-1]}}}`, []string{"allowed_owner_uids[1]: must be between 0 and"}},
		{"bool as string", `{"version":1,"audit_log":"/a","default":{"mode":"audit","rules":{"require_user_namespace":"yes"}}}`, []string{"require_user_namespace: must be true or false, not a string"}},
		{"unknown rule", `{"version":1,"audit_log":"/a","default":{"mode":"audit","rules":{"require_magic":true}}}`, []string{"default.rules.require_magic: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { parseErrors(t, tt.doc, "x.json:", tt.want) })
	}
}

// parseErrors parses doc as x.json and checks that it fails with one
// error line per want, each starting with prefix and containing its want.
func parseErrors(t *testing.T, doc, prefix string, want []string) {
	t.Helper()
	_, err := policy.Parse("x.json", []byte(doc))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d error lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if i < len(lines) && !strings.Contains(lines[i], w) {
			t.Errorf("error line %d %q does not contain %q", i, lines[i], w)
		}
		if i < len(lines) && !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("error line %q does not start with %q", lines[i], prefix)
		}
	}
}

// TestShippedConfigs parses every config file shipped in config/.
func TestShippedConfigs(t *testing.T) {
	files, err := filepath.Glob("../../config/hook*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("shipped configs: %v %v", files, err)
	}
	for _, f := range files {
		c, err := policy.Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if filepath.Base(f) == "hook.json" && (c.Default.Mode != policy.ModeAudit || len(c.Policies) != 0) {
			t.Errorf("%s: the default config must audit only", f)
		}
		if strings.HasPrefix(filepath.Base(f), "hook-enforce") && c.Default.Mode != policy.ModeEnforce {
			t.Errorf("%s: the example enforcing config does not enforce", f)
		}
		if filepath.Base(f) == "hook-enforce.json" && (len(c.Policies) != 0 || c.TrustedSelectors.ID || len(c.TrustedSelectors.Annotations) != 0) {
			t.Errorf("%s: the enforcing config for every runtime must trust no selector", f)
		}
	}
}

func TestLoadRefusesNonRegular(t *testing.T) {
	if _, err := policy.Load(t.TempDir()); err == nil {
		t.Error("a directory was accepted")
	}
	if _, err := policy.Load(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("a missing file was accepted")
	}
	open := filepath.Join(t.TempDir(), "open.json")
	os.WriteFile(open, []byte(minimal), 0o600)
	os.Chmod(open, 0o666)
	if _, err := policy.Load(open); err == nil || !strings.Contains(err.Error(), "writable by group and others") {
		t.Errorf("world-writable file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(big, []byte(strings.Repeat(" ", policy.MaxFileSize+1)), 0o600)
	if _, err := policy.Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

const selecting = `{
	"version": 1, "audit_log": "/a",
	"trusted_selectors": {"annotations": ["io.kubernetes.pod.namespace", "tier", "team"], "id": true},
	"policies": [
		{"name": "kube-system", "match": {"annotations": {"io\\.kubernetes\\.pod\\.namespace": "kube-system"}}, "mode": "audit"},
		{"name": "infra", "match": {"id": "infra-.*"}, "mode": "audit"},
		{"name": "both", "match": {"id": "web-.*", "annotations": {"tier": "front|edge", "team": ".+"}}, "mode": "enforce"}
	],
	"default": {"name": "strict", "mode": "enforce"}
}`

func TestSelect(t *testing.T) {
	c, err := policy.Parse("sel.json", []byte(selecting))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		ann  map[string]string
		want string
	}{
		{"x", nil, "strict"},
		{"infra-1", nil, "infra"},
		{"xinfra-1", nil, "strict"}, // whole-string match
		{"infra-1", map[string]string{"io.kubernetes.pod.namespace": "kube-system"}, "kube-system"}, // first match wins
		{"a", map[string]string{"io.kubernetes.pod.namespace": "kube-system-2"}, "strict"},
		{"a", map[string]string{"io.kubernetes.pod.namespaceX": "kube-system", "ioXkubernetes.pod.namespace": "kube-system"}, "strict"}, // the key is literal
		{"web-1", map[string]string{"tier": "edge", "team": "a"}, "both"},
		{"web-1", map[string]string{"tier": "edge"}, "strict"},
		{"web-1", map[string]string{"tier": "back", "team": "a"}, "strict"},
	}
	for _, tt := range tests {
		if got := c.Select(tt.id, tt.ann).Name; got != tt.want {
			t.Errorf("Select(%q, %v) = %q, want %q", tt.id, tt.ann, got, tt.want)
		}
	}
}

func u64(v uint64) *uint64 { return &v }

// ancestry builds a chain of user namespaces (depth below the initial one)
// and a PID namespace owned by the innermost user namespace or by owner.
func ancestry(userDepth int, pidNS bool, ownerUID uint32, pidOwner uint64) *audit.Ancestry {
	a := &audit.Ancestry{PID: 42, StartTime: 7}
	for i := userDepth; i > 0; i-- {
		a.User = append(a.User, audit.UserNS{Ino: 4026532000 + uint64(i), Dev: 4, OwnerUID: ownerUID})
	}
	a.User = append(a.User, audit.UserNS{Ino: nsrel.InitialUserNSIno, Dev: 4})
	if pidNS {
		owner := a.User[0].Ino
		if pidOwner != 0 {
			owner = pidOwner
		}
		a.PIDNS = append(a.PIDNS, audit.PIDNS{Ino: 4026532100, Dev: 4, OwnerUserIno: u64(owner)})
	}
	a.PIDNS = append(a.PIDNS, audit.PIDNS{Ino: nsrel.InitialPIDNSIno, Dev: 4, OwnerUserIno: u64(nsrel.InitialUserNSIno)})
	return a
}

func TestEvaluate(t *testing.T) {
	one, two := 1, 2
	all := policy.Rules{RequireUserNS: true, RequirePIDNS: true, UserDepthMin: &one, UserDepthMax: &two, AllowedOwnerUIDs: []uint32{0, 1000}, PIDOwnedByUserNS: true}
	tests := []struct {
		name  string
		rules policy.Rules
		a     *audit.Ancestry
		want  []string
	}{
		{"all good", all, ancestry(1, true, 0, 0), nil},
		{"depth 2 good", all, ancestry(2, true, 1000, 0), nil},
		{"host container", all, ancestry(0, false, 0, 0), []string{policy.RuleRequireUserNS, policy.RuleRequirePIDNS, policy.RuleUserDepthMin}},
		{"too deep", all, ancestry(3, true, 0, 0), []string{policy.RuleUserDepthMax}},
		{"wrong owner", all, ancestry(1, true, 4242, 0), []string{policy.RuleAllowedOwnerUIDs}},
		{"pid ns owned elsewhere", all, ancestry(1, true, 0, nsrel.InitialUserNSIno), []string{policy.RulePIDOwnedByUserNS}},
		{"no rules", policy.Rules{}, ancestry(0, false, 0, 0), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range tt.rules.Evaluate(tt.a) {
				got = append(got, v.Rule)
				if v.Reason == "" {
					t.Errorf("rule %s without a reason", v.Rule)
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("violations (-want +got):\n%s", d)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	a := ancestry(1, true, 0, 0)
	if d := policy.Compare(a, ancestry(1, true, 0, 0)); d != nil {
		t.Errorf("equal ancestries differ: %v", d)
	}
	b := ancestry(1, true, 0, 0)
	b.StartTime++
	b.User[0].ID = u64(9)
	c := ancestry(2, false, 0, 0)
	if got := len(policy.Compare(a, b)); got != 2 {
		t.Errorf("start time and id change: %d differences, want 2", got)
	}
	if got := len(policy.Compare(a, c)); got != 2 {
		t.Errorf("depth changes: %d differences, want 2", got)
	}
}

func TestDescribe(t *testing.T) {
	c, err := policy.Parse("sel.json", []byte(selecting))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Policies[2].Describe()
	want := []string{"matches: containers with id ~ web-.* and annotation tier = front|edge and annotation team = .+", "mode:    enforce", "rules:   (none: record only)"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(selecting))
	for _, name := range []string{"../../config/hook.json", "../../config/hook-enforce.json", "../../config/hook-enforce-cri.json"} {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"version":1,"audit_log":"/a","default":{"mode":"enforce","rules":{"host_root_unmapped":true,"mapped_ids_min":1,"mapped_ids_max":65536,"allowed_host_ranges":[[100000,65536]],"allowed_subid_user":"containers","disjoint_from_running":true}}}`))
	f.Add([]byte(`{"version":1,"version":1}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := policy.Parse("f.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.json") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		if c.AuditLog == "" || (c.Default.Mode != policy.ModeAudit && c.Default.Mode != policy.ModeEnforce) {
			t.Errorf("accepted a config without audit log or mode: %+v", c)
		}
		for _, b := range c.Policies {
			if b.Match.ID != nil && !c.TrustedSelectors.ID {
				t.Errorf("block %q selects by the untrusted ID", b.Name)
			}
			for _, am := range b.Match.Annotations {
				if !c.TrustedSelectors.TrustsAnnotation(am.Key) {
					t.Errorf("block %q selects by the untrusted annotation %q", b.Name, am.Key)
				}
			}
		}
		c.Select("id", map[string]string{"k": "v"}).Evaluate(ancestry(1, true, 0, 0))
	})
}

// BenchmarkSelectEvaluate measures choosing a block and checking every
// rule against one ancestry.
func BenchmarkSelectEvaluate(b *testing.B) {
	data, err := os.ReadFile("../../config/hook-enforce.json")
	if err != nil {
		b.Fatal(err)
	}
	c, err := policy.Parse("hook-enforce.json", data)
	if err != nil {
		b.Fatal(err)
	}
	a := ancestry(1, true, 0, 0)
	ann := map[string]string{"io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.name": "web-0"}
	for b.Loop() {
		c.Select("3f1c2a9b7e0d", ann).Evaluate(a)
	}
}

// BenchmarkParse measures parsing the example enforcing config.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("../../config/hook-enforce.json")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := policy.Parse("hook-enforce.json", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnsure: with the image name unknown, the blocks that may select a
// container in place of the one picked without it are, in order, those
// before it that select on the image name and whose other selectors
// match; none after the block picked (the first match wins), and none
// whose other selectors do not match. The NRI plugin, which has no
// trustworthy image name, picked the later block and let through what
// an enforcing image-name block refuses.
func TestUnsure(t *testing.T) {
	const img = `"io\\.kubernetes\\.cri\\.image-name"`
	const name = `"io\\.kubernetes\\.cri\\.container-name"`
	c, err := policy.Parse("x.json", []byte(`{"version": 1, "audit_log": "/a",
	"trusted_selectors": {"annotations": ["io.kubernetes.cri.image-name", "io.kubernetes.cri.container-name"]},
	"policies": [
		{"name": "untrusted", "mode": "enforce", "match": {"annotations": {`+img+`: "docker\\.io/untrusted/.*"}}},
		{"name": "web-images", "mode": "enforce", "match": {"annotations": {`+img+`: "web/.*", `+name+`: "web"}}},
		{"name": "legacy", "mode": "audit", "match": {"annotations": {`+name+`: "legacy"}}},
		{"name": "exempt-images", "mode": "audit", "match": {"annotations": {`+img+`: "corp/.*"}}}],
	"default": {"mode": "enforce"}}`))
	if err != nil {
		t.Fatal(err)
	}
	unknown := []string{"io.kubernetes.cri.image-name"}
	for _, tc := range []struct {
		container string
		want      []string
	}{
		{"legacy", []string{"untrusted"}},
		{"web", []string{"untrusted", "web-images", "exempt-images"}},
		{"other", []string{"untrusted", "exempt-images"}},
	} {
		var got []string
		for _, b := range c.Unsure("id", map[string]string{"io.kubernetes.cri.container-name": tc.container}, unknown) {
			got = append(got, b.Name)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("container %s: blocks (-want +got):\n%s", tc.container, d)
		}
	}
	if got := c.Unsure("id", map[string]string{"io.kubernetes.cri.container-name": "x"}, nil); got != nil {
		t.Errorf("nothing unknown: %d blocks, want none", len(got))
	}
}

// TestEmptyRangesWithSubIDUser: allowed_host_ranges [] with
// allowed_subid_user allows that user's subordinate IDs alone, as it did;
// only [] without a user, which turned the rule off, is refused (a
// config that stopped loading after an upgrade would refuse every
// container).
func TestEmptyRangesWithSubIDUser(t *testing.T) {
	cfg, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/a","default":{"mode":"enforce","rules":{"allowed_host_ranges":[],"allowed_subid_user":"root"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Default.Rules; len(r.AllowedHostRanges) != 0 || r.AllowedSubIDUser != "root" {
		t.Errorf("rules %+v; want no ranges and root's subordinate IDs", r)
	}
}
