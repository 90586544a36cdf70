package vocab

import "runtime/debug"

// Version is nsrel's version, printed by --version and recorded in every
// audit record. Release builds set it with
// -ldflags "-X github.com/nsrel/nsrel/internal/vocab.Version=..." (the
// Makefile does, from VERSION).
var Version = "0.1.0-dev"

// Commit is the source commit of the build, printed by --version. Builds
// from a git checkout get it from the Go toolchain's VCS stamp; a build
// from a tarball can set it with -ldflags "-X ...vocab.Commit=...".
var Commit = ""

// VersionLine is what --version prints, the same in every nsrel binary:
// "lsuserns 0.1.0-dev (commit 3ed642e1a2b3, modified)". The commit part
// is left out when the build knows none.
func VersionLine(name string) string {
	commit, modified := Commit, false
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
		}
	}
	line := name + " " + Version
	if commit == "" {
		return line
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if modified {
		return line + " (commit " + commit + ", modified)"
	}
	return line + " (commit " + commit + ")"
}
