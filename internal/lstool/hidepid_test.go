package lstool

import (
	"strings"
	"testing"
)

func TestHiddenNotice(t *testing.T) {
	const host = "22 1 0:5 / / rw - ext4 /dev/vda1 rw\n49 46 0:21 / /proc rw,relatime - proc proc rw\n"
	for _, tc := range []struct {
		name, info string
		privileged bool
		groups     []int
		want       bool
	}{
		{"plain proc", host, false, nil, false},
		{"invisible", host + "67 49 0:42 / /proc rw,relatime - proc proc rw,hidepid=invisible\n", false, nil, true},
		{"invisible, privileged", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=invisible\n", true, nil, false},
		{"ptraceable", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=ptraceable\n", false, nil, true},
		{"old numeric", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=2\n", false, nil, true},
		{"noaccess (denials are reported)", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=noaccess\n", false, nil, false},
		{"exempt group", host + "67 49 0:42 / /proc rw - proc proc rw,gid=4,hidepid=invisible\n", false, []int{4}, false},
		{"other group", host + "67 49 0:42 / /proc rw - proc proc rw,gid=4,hidepid=invisible\n", false, []int{5}, true},
		{"optional fields", host + "67 49 0:42 / /proc rw shared:7 master:1 - proc proc rw,hidepid=invisible\n", false, nil, true},
		{"last mount wins", "67 49 0:42 / /proc rw - proc proc rw,hidepid=invisible\n" + host, false, nil, false},
		{"elsewhere", host + "67 49 0:42 / /mnt/proc rw - proc proc rw,hidepid=invisible\n", false, nil, false},
		// Not /proc: mountinfo leaves a Unicode space unescaped.
		{"elsewhere, a Unicode space", host + "67 49 0:42 / /proc\u00a0x rw - proc proc rw,hidepid=invisible\n", false, nil, false},
		{"truncated", "67 49 0:42 / /proc rw - proc\n", false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hiddenNotice([]byte(tc.info), tc.privileged, tc.groups)
			if (got != "") != tc.want || tc.want && !strings.Contains(got, "other users' processes are hidden") {
				t.Errorf("notice %q, want one: %v", got, tc.want)
			}
		})
	}
}
