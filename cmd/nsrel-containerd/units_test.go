package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// unitCapabilities returns the CapabilityBoundingSet of a shipped unit as
// setpriv(1) wants it: "-all,+sys_ptrace,+kill".
func unitCapabilities(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../../config/containerd/" + name)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.+)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatalf("%s: no CapabilityBoundingSet", name)
	}
	set := "-all"
	for _, c := range strings.Fields(m[1]) {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return set
}

// TestShippedUnitCapabilities runs `nsrel-containerd watch` with only the
// capabilities nsrel-watch.service leaves it (setpriv's bounding set, as
// systemd's CapabilityBoundingSet does for a root service) and checks
// that it still records the namespaces of containers whose processes run
// as other UIDs (ptrace access matters). The units' whole sandbox runs
// under systemd in TestShippedUnitsUnderSystemd.
func TestShippedUnitCapabilities(t *testing.T) {
	t.Parallel()
	setpriv := nstest.RequireCmd(t, "setpriv")
	bin := nstest.Tool(t, "nsrel-containerd")
	caps := unitCapabilities(t, "nsrel-watch.service")
	if caps2 := unitCapabilities(t, "nsrel-nri.service"); caps2 != caps {
		t.Errorf("the units differ in capabilities: %s and %s", caps, caps2)
	}
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	w := startWatch(t, setpriv, "--bounding-set", caps, "--inh-caps", "-all", "--no-new-privs", "--",
		bin, "watch", "--config", cfgPath, "--address", d.Socket, "--log-level", "debug")
	// One container in its own user namespace (its owner, root, has
	// every capability there), one running as UID 1000 in the initial
	// user namespace (reading its namespaces needs CAP_SYS_PTRACE; the
	// liveness check, a poll of its pidfd, needs nothing).
	userns, other := ctrdtest.Uniq("capped-userns"), ctrdtest.Uniq("capped-uid")
	_, usernsPID := d.Run(t, d.Client(t), "default", userns, &ctrdtest.RunOpts{UserNS: true})
	_, otherPID := d.Run(t, d.Client(t), "default", other, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{oci.WithUIDGID(1000, 1000)}})
	recs := audittest.Wait(t, cfg.AuditLog, "start records", func(rs []*audit.Record) bool {
		return audittest.Count(rs, userns, evStart) == 1 && audittest.Count(rs, other, evStart) == 1
	})
	for _, tc := range []struct {
		id    string
		pid   uint32
		depth int
	}{{userns, usernsPID, 1}, {other, otherPID, 0}} {
		for _, r := range recs {
			if r.ContainerID != tc.id {
				continue
			}
			if r.Ancestry == nil || r.Error != "" {
				t.Errorf("%s: start record without namespaces under the unit's capabilities: error %q", tc.id, r.Error)
				continue
			}
			if got, want := r.User[0].Ino, nstest.Ino(t, int(tc.pid), "user"); got != want || r.UserDepth() != tc.depth {
				t.Errorf("%s: user chain %+v, want %d at depth %d", tc.id, r.User, want, tc.depth)
			}
		}
	}
	w.stop(t)
}

// TestShippedUnits checks the systemd units: systemd-analyze accepts
// them (with ExecStart pointing at the built binary) and their command
// lines parse.
func TestShippedUnits(t *testing.T) {
	analyze := nstest.RequireCmd(t, "systemd-analyze")
	bin := nstest.Tool(t, "nsrel-containerd")
	for _, name := range []string{"nsrel-watch.service", "nsrel-nri.service"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("../../config/containerd/" + name)
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindStringSubmatch(string(data))
			if m == nil {
				t.Fatal("no ExecStart")
			}
			if m[1] != "/usr/local/sbin/nsrel-containerd" {
				t.Errorf("ExecStart binary %s", m[1])
			}
			args := strings.Fields(m[2])
			var out, errb strings.Builder
			if code := run(append(args, "--help"), &out, &errb); code != 0 {
				t.Errorf("ExecStart arguments %q do not parse: %s", args, errb.String())
			}
			unit := filepath.Join(t.TempDir(), name)
			// systemd-analyze runs man(1) for a man: link; the man page is
			// made by `make install` (internal/dist verifies the installed
			// unit with it), so the source unit is checked without it.
			text := strings.Replace(string(data), "ExecStart="+m[1], "ExecStart="+bin, 1)
			text = strings.Replace(text, "Documentation=man:nsrel-containerd(8) ", "Documentation=", 1)
			if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			checkWritable(t, string(data))
			checkMetricsReachable(t, string(data), args)
			// A service that stops restarting leaves containers
			// unrecorded until someone notices.
			if r, l := unitSetting(string(data), "Restart"), unitSetting(string(data), "StartLimitIntervalSec"); !slices.Equal(r, []string{"always"}) || !slices.Equal(l, []string{"0"}) {
				t.Errorf("Restart=%q, StartLimitIntervalSec=%q; want always, and 0 (never give up)", r, l)
			}
		})
	}
}

// unitSetting returns the words of every line KEY=... of unit.
func unitSetting(unit, key string) []string {
	var vals []string
	for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(key)+`=(.*)$`).FindAllStringSubmatch(unit, -1) {
		vals = append(vals, strings.Fields(m[1])...)
	}
	return vals
}

// checkMetricsReachable checks that the unit lets the service serve its
// metrics where its command line has them (the default address of its
// subcommand unless --metrics-address says otherwise): a loopback
// address needs AF_INET (or AF_INET6) among RestrictAddressFamilies=
// and, under IPAddressDeny=any, localhost in IPAddressAllow=.
func checkMetricsReachable(t *testing.T, unit string, args []string) {
	t.Helper()
	addr := map[string]string{"watch": defaultWatchMetrics, "nri": defaultNRIMetrics}[args[0]]
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--metrics-address="); ok {
			addr = v
		} else if a == "--metrics-address" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	if addr == "" || addr == `""` {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		t.Fatalf("metrics address %q: the shipped units serve metrics on the loopback only", addr)
	}
	family := "AF_INET"
	if strings.Contains(host, ":") {
		family = "AF_INET6"
	}
	if fams := unitSetting(unit, "RestrictAddressFamilies"); len(fams) > 0 && !slices.Contains(fams, family) {
		t.Errorf("metrics on %s, but RestrictAddressFamilies=%s", addr, strings.Join(fams, " "))
	}
	if slices.Contains(unitSetting(unit, "IPAddressDeny"), "any") && !slices.Contains(unitSetting(unit, "IPAddressAllow"), "localhost") {
		t.Errorf("metrics on %s, but IPAddressDeny=any without IPAddressAllow=localhost", addr)
	}
}

// checkWritable checks that every file the shipped configs have the
// service write (the audit log with its lock and rotated files, the
// diagnostics log, the sealing state, the checkpoints file) lies in a
// directory the unit leaves writable under ProtectSystem=strict: one of
// its ReadWritePaths=, LogsDirectory= (below /var/log) or StateDirectory=
// (below /var/lib). A sealing state the service cannot write leaves its
// records unsealed, and `audit verify` then fails the log.
func checkWritable(t *testing.T, unit string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^ProtectSystem=strict$`).MatchString(unit) {
		t.Fatal("no ProtectSystem=strict")
	}
	var writable []string
	for _, f := range unitSetting(unit, "ReadWritePaths") {
		writable = append(writable, strings.TrimLeft(f, "-+"))
	}
	for _, f := range unitSetting(unit, "LogsDirectory") {
		writable = append(writable, filepath.Join("/var/log", f))
	}
	for _, f := range unitSetting(unit, "StateDirectory") {
		writable = append(writable, filepath.Join("/var/lib", f))
	}
	under := func(dir string) bool {
		for _, w := range writable {
			if dir == w || strings.HasPrefix(dir, w+"/") {
				return true
			}
		}
		return false
	}
	for _, name := range []string{"hook.json", "hook-enforce.json", "hook-enforce-cri.json"} {
		data, err := os.ReadFile("../../config/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			AuditLog    string `json:"audit_log"`
			LogFile     string `json:"log_file"`
			SealState   string `json:"seal_state"`
			Checkpoints struct {
				File string `json:"file"`
			} `json:"checkpoints"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.AuditLog == "" {
			t.Errorf("%s: no audit_log", name)
		}
		for key, path := range map[string]string{"audit_log": c.AuditLog, "log_file": c.LogFile, "seal_state": c.SealState, "checkpoints.file": c.Checkpoints.File} {
			if path != "" && !under(filepath.Dir(path)) {
				t.Errorf("%s: %s %s is outside the unit's writable paths %q", name, key, path, writable)
			}
		}
	}
}
