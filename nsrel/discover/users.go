package discover

import (
	"bytes"
	"os"
	"strconv"
)

// loadUsers reads the passwd file (default /etc/passwd) into a UID to name
// map. A missing or unreadable file gives an empty map: owners then show
// as numbers.
func loadUsers(path string) map[uint32]string {
	if path == "" {
		path = "/etc/passwd"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return map[uint32]string{}
	}
	return parsePasswd(data)
}

// parsePasswd parses passwd(5) lines "name:password:UID:GID:..." into a
// UID to name map; the first entry for a UID wins. Comments, NIS "+"/"-"
// lines and malformed lines are skipped.
func parsePasswd(data []byte) map[uint32]string {
	users := make(map[uint32]string)
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := bytes.SplitN(line, []byte(":"), 4)
		if len(f) < 4 || len(f[0]) == 0 {
			continue
		}
		uid, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, ok := users[uint32(uid)]; !ok {
			users[uint32(uid)] = string(f[0])
		}
	}
	return users
}

// nextLine splits data after its first line and returns the line without
// its newline and the rest.
func nextLine(data []byte) (line, rest []byte) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i], data[i+1:]
	}
	return data, nil
}
