package discover

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/nsrel/nsrel/nsrel/idmap"
)

// getentPaths are where getent(1) may be; it is run by absolute path.
var getentPaths = []string{"/usr/bin/getent", "/bin/getent"}

// maxGetentArgs bounds the UIDs asked in one getent run.
const maxGetentArgs = 512

// getentTimeout bounds the name service's answer (a slow LDAP server):
// one deadline for all getent runs of a lookup, however many UIDs.
var getentTimeout = 2 * time.Second

// lookupUsers returns the names of uids. With path "" it reads
// /etc/passwd and asks the system's name service, through getent(1)
// passwd, for the UIDs that file does not name, so that every NSS module
// (LDAP through SSSD, extrausers, systemd's dynamic users) answers as it
// does for ls and lsns, whether or not the binary was built with cgo; a
// host whose owners are all in /etc/passwd runs nothing. With a path it
// reads only that passwd file. A UID without a name is left out: owners
// then show as numbers.
func lookupUsers(path string, uids []uint32) map[uint32]string {
	if len(uids) == 0 {
		return map[uint32]string{}
	}
	file := path
	if file == "" {
		file = "/etc/passwd"
	}
	users := map[uint32]string{}
	if data, err := os.ReadFile(file); err == nil {
		users = idmap.ParsePasswd(data)
	}
	if path != "" {
		return users
	}
	var missing []uint32
	for _, u := range uids {
		if _, ok := users[u]; !ok {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		maps.Copy(users, getent(missing))
	}
	return users
}

// getent asks getent(1) passwd for uids, maxGetentArgs at a time, all
// runs within one getentTimeout. It returns the names the runs that
// succeeded (exit status 0, or 2: some key not found) gave; a run that
// fails or runs out of time loses only its own UIDs, and none is started
// after the deadline.
func getent(uids []uint32) map[uint32]string {
	bin := ""
	for _, p := range getentPaths {
		if _, err := os.Stat(p); err == nil {
			bin = p
			break
		}
	}
	users := make(map[uint32]string, len(uids))
	if bin == "" {
		return users
	}
	ctx, cancel := context.WithTimeout(context.Background(), getentTimeout)
	defer cancel()
	for batch := range slices.Chunk(uids, maxGetentArgs) {
		if ctx.Err() != nil {
			break
		}
		args := []string{"passwd"}
		for _, u := range batch {
			args = append(args, strconv.FormatUint(uint64(u), 10))
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"LC_ALL=C"}
		cmd.WaitDelay = 100 * time.Millisecond // a child left holding stdout
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 2) {
			continue
		}
		for uid, name := range idmap.ParsePasswd(out) {
			if slices.Contains(batch, uid) {
				users[uid] = name
			}
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
