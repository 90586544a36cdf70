package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestContainerdFragments has each flavor's containerd read the shipped
// config fragment for it (containerd config dump: no daemon is
// started): the fragment's header names the config version its
// version line has, and the dump keeps the base runtime spec. containerd
// 2.4 (config version 4) reads config-v2.toml's version 3 by migrating
// it, with a warning, and the same table with version = 4 as is: what
// the fragment's comment tells an admin with a version 4 config.toml.
func TestContainerdFragments(t *testing.T) {
	const spec = `base_runtime_spec = '/etc/nsrel/containerd-base-spec.json'`
	for _, tc := range []struct {
		f        ctrdtest.Flavor
		file     string
		versions []string // the version lines to try
		dumped   string   // the version the dump has
	}{
		{ctrdtest.Debian16(), "config-v1.toml", []string{"2"}, "2"},
		{ctrdtest.V2(), "config-v2.toml", []string{"3", "4"}, "4"},
	} {
		t.Run(tc.f.Name, func(t *testing.T) {
			_, err := os.Stat(tc.f.Bin)
			nstest.Require(t, err == nil, "%s needs %s (%v); `make deps` installs it", tc.f.Name, tc.f.Bin, err)
			data, err := os.ReadFile(nstest.RepoFile(t, "config/containerd/"+tc.file))
			if err != nil {
				t.Fatal(err)
			}
			text := string(data)
			m := regexp.MustCompile(`(?m)^version = (\d+)$`).FindStringSubmatch(text)
			if m == nil || m[1] != tc.versions[0] || !strings.Contains(strings.SplitN(text, "\n", 2)[0], "(config version "+m[1]) {
				t.Fatalf("%s: the first line does not name the config version of its version line (%v):\n%s", tc.file, m, text)
			}
			for _, v := range tc.versions {
				file := filepath.Join(t.TempDir(), tc.file)
				if err := os.WriteFile(file, []byte(strings.Replace(text, "\nversion = "+m[1]+"\n", "\nversion = "+v+"\n", 1)), 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(tc.f.Bin, "--config", file, "config", "dump")
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				if err := cmd.Run(); err != nil {
					t.Fatalf("containerd --config %s (version %s) config dump: %v\n%s", tc.file, v, err, errb.String())
				}
				dump := strings.ReplaceAll(out.String(), `"`, "'")
				if !strings.Contains(dump, "version = "+tc.dumped+"\n") || !strings.Contains(dump, spec) {
					t.Errorf("%s with version = %s: the dump lacks version = %s or %s:\n%s", tc.file, v, tc.dumped, spec, dump)
				}
				if migrated := strings.Contains(errb.String(), "Configuration migrated from version"); migrated != (v != tc.dumped) {
					t.Errorf("%s with version = %s: migrated %v, want %v:\n%s", tc.file, v, migrated, v != tc.dumped, errb.String())
				}
			}
		})
	}
}
