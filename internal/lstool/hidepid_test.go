package lstool

import (
	"strings"
	"testing"
)

func TestHiddenNotice(t *testing.T) {
	const host = "22 1 0:5 / / rw - ext4 /dev/vda1 rw\n49 46 0:21 / /proc rw,relatime - proc proc rw\n"
	for _, tc := range []struct {
		name, info string
		euid       int
		groups     []int
		want       bool
	}{
		{"plain proc", host, 1000, nil, false},
		{"invisible", host + "67 49 0:42 / /proc rw,relatime - proc proc rw,hidepid=invisible\n", 1000, nil, true},
		{"invisible, root", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=invisible\n", 0, nil, false},
		{"ptraceable", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=ptraceable\n", 1000, nil, true},
		{"old numeric", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=2\n", 1000, nil, true},
		{"noaccess (denials are reported)", host + "67 49 0:42 / /proc rw - proc proc rw,hidepid=noaccess\n", 1000, nil, false},
		{"exempt group", host + "67 49 0:42 / /proc rw - proc proc rw,gid=4,hidepid=invisible\n", 1000, []int{4}, false},
		{"other group", host + "67 49 0:42 / /proc rw - proc proc rw,gid=4,hidepid=invisible\n", 1000, []int{5}, true},
		{"optional fields", host + "67 49 0:42 / /proc rw shared:7 master:1 - proc proc rw,hidepid=invisible\n", 1000, nil, true},
		{"last mount wins", "67 49 0:42 / /proc rw - proc proc rw,hidepid=invisible\n" + host, 1000, nil, false},
		{"elsewhere", host + "67 49 0:42 / /mnt/proc rw - proc proc rw,hidepid=invisible\n", 1000, nil, false},
		{"truncated", "67 49 0:42 / /proc rw - proc\n", 1000, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hiddenNotice([]byte(tc.info), tc.euid, tc.groups)
			if (got != "") != tc.want || tc.want && !strings.Contains(got, "other users' processes are hidden") {
				t.Errorf("notice %q, want one: %v", got, tc.want)
			}
		})
	}
}
