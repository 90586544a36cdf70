package policy_test

import (
	"fmt"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/nsrel"
)

func Example() {
	c, err := policy.Parse("hook.json", []byte(`{
		"version": 1,
		"audit_log": "/var/log/nsrel/audit.jsonl",
		"trusted_selectors": {"annotations": ["io.kubernetes.cri.sandbox-namespace"]},
		"policies": [
			{"name": "system", "match": {"annotations": {"io\\.kubernetes\\.cri\\.sandbox-namespace": "kube-system"}}, "mode": "audit"}
		],
		"default": {"name": "strict", "mode": "enforce", "rules": {"require_user_namespace": true}}
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A container in the initial user namespace.
	host := &audit.Ancestry{
		User:  []audit.UserNS{{Ino: nsrel.InitialUserNSIno}},
		PIDNS: []audit.PIDNS{{Ino: 4026532181}, {Ino: nsrel.InitialPIDNSIno}},
	}
	for _, ns := range []string{"kube-system", "prod"} {
		b := c.Select("web-1", map[string]string{"io.kubernetes.cri.sandbox-namespace": ns})
		fmt.Printf("%s: block %q (%s): %v\n", ns, b.Name, b.Mode, b.Evaluate(host))
	}
	// Output:
	// kube-system: block "system" (audit): []
	// prod: block "strict" (enforce): [{require_user_namespace the container runs in the initial user namespace user:[4026531837]}]
}

func ExampleParse_errors() {
	_, err := policy.Parse("hook.json", []byte(`{"version": 1, "audit_log": "log",
  "default": {"mode": "strict", "rules": {"user_depth_max": 99}}}`))
	fmt.Println(err)
	// Output:
	// hook.json:1:29: audit_log: must be a clean absolute path, not "log"
	// hook.json:2:23: default.mode: must be "enforce" or "audit", not "strict"
	// hook.json:2:61: default.rules.user_depth_max: must be between 0 and 33, not 99
}
