package policy

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
)

// Defaults of the checkpoints setting.
const (
	DefaultCheckpointRecords = 100
	DefaultCheckpointSeconds = 300
)

// checkpoints parses the checkpoints setting: every_records, every_seconds,
// file and syslog (see [audit.CheckpointOptions]).
func (p *parser) checkpoints(n *node, path string) *audit.CheckpointOptions {
	c := &audit.CheckpointOptions{EveryRecords: DefaultCheckpointRecords, EverySeconds: DefaultCheckpointSeconds}
	before := len(p.errs)
	p.object(n, path, []string{"every_records", "every_seconds", "file", "syslog"}, func(key string, v *node, path string) {
		switch key {
		case "every_records":
			if x, ok := p.integer(v, path, 1, 1<<30); ok {
				c.EveryRecords = int(x)
			}
		case "every_seconds":
			if x, ok := p.integer(v, path, 0, 1<<30); ok {
				c.EverySeconds = int(x)
			}
		case "file":
			c.File = p.absPath(v, path, true)
			if c.File != "" {
				p.written = append(p.written, writtenFile{v, path, c.File})
			}
		case "syslog":
			if v.Kind != 'a' {
				p.errorf(v, path, "must be an array of destinations (unix:///PATH, tcp://HOST:PORT), not %s", kindName(v.Kind))
				return
			}
			for i, e := range v.Elems {
				ep := fmt.Sprintf("%s[%d]", path, i)
				if s, ok := p.str(e, ep); ok {
					d, err := syslog.ParseDest(s)
					if err != nil {
						p.errorf(e, ep, "%v", err)
						continue
					}
					c.Syslog = append(c.Syslog, d)
				}
			}
		}
	})
	if n.Kind == 'o' && c.File == "" && len(c.Syslog) == 0 && len(p.errs) == before {
		// Checkpoints that go nowhere pin nothing.
		p.errorf(n, path, "needs a destination: \"file\" or \"syslog\" (or both)")
	}
	return c
}

// AuditOptions returns the options of the config's audit log: rotation,
// retention, sealing and checkpoints. Every writer opens the log with
// them, so that the hook, the recorder and the NRI plugin seal, rotate
// and emit checkpoints alike. version fills records; warn (may be nil)
// receives problems that do not fail an append.
func (c *Config) AuditOptions(version string, warn func(error)) audit.Options {
	return audit.Options{
		RotateBytes: c.RotateBytes,
		KeepFiles:   c.KeepFiles,
		SealState:   c.SealState,
		Checkpoints: c.Checkpoints,
		Version:     version,
		Warn:        warn,
	}
}

// syslogDest parses the syslog setting: a destination, or "" for none.
func (p *parser) syslogDest(n *node, path string) *syslog.Dest {
	s, ok := p.str(n, path)
	if !ok || s == "" {
		return nil
	}
	d, err := syslog.ParseDest(s)
	if err != nil {
		p.errorf(n, path, "%v", err)
		return nil
	}
	return &d
}

// CheckPaths checks the files the hook writes (audit_log and its lock,
// log_file when it is a path, checkpoints.file and its lock, seal_state) and their
// directories as a write does: the directories as before a file is
// created there ([safefile.CheckPrivateDirs]), a file that exists as it
// is opened (owner and mode; the sealing state as a secret; the lock
// unreadable by others: [audit.CheckWritable]). What a write refuses (a
// /var/log writable by its group, as Ubuntu ships it; an audit log
// someone made group-writable) fails every append, and under on_error
// allow every container then runs unrecorded. Only a refusal counts: a
// file the caller cannot read (not root) is left to the hook.
func (c *Config) CheckPaths() error {
	var errs []error
	refused := func(key string, err error) {
		if errors.Is(err, safefile.ErrUntrusted) || errors.Is(err, safefile.ErrNotRegular) {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	// check checks path's directories, then the file, if it exists, with
	// checkFile.
	check := func(key, path string, checkFile func(string) error) {
		if !filepath.IsAbs(path) {
			return // unset, or a syslog or journald target
		}
		if err := safefile.CheckPrivateDirs(filepath.Dir(path)); err != nil {
			refused(key, err)
			return
		}
		refused(key, checkFile(path))
	}
	// opened checks a file as a write opens it.
	opened := func(secret bool) func(string) error {
		return func(path string) error {
			f, err := safefile.OpenTrusted(path, unix.O_RDONLY, secret)
			if err == nil {
				f.Close()
			}
			return err
		}
	}
	check("audit_log", c.AuditLog, audit.CheckWritable)
	check("log_file", c.LogFile, opened(false))
	if c.Checkpoints != nil {
		// Appended as the log is, under a lock beside it.
		check("checkpoints.file", c.Checkpoints.File, audit.CheckWritable)
	}
	check("seal_state", c.SealState, opened(true))
	return errors.Join(errs...)
}

// CheckSockets checks the local sockets the config sends to (log_file,
// syslog, checkpoints.syslog) as every send does ([syslog.Send],
// [safefile.CheckSocket]), for `nsrel-hook policy check`; [Load] does
// not, since the hook loads the config at every stage, and a socket
// may come and go with its daemon. It returns one error a line, each
// naming the key and the destination, for the sockets refused as
// untrusted (one missing now is not one).
func (c *Config) CheckSockets() error {
	var errs []error
	check := func(key, target string, d syslog.Dest) {
		if d.Network != "unixgram" {
			return
		}
		if err := safefile.CheckSocket(d.Address); errors.Is(err, safefile.ErrUntrusted) {
			errs = append(errs, fmt.Errorf("%s: %s: %w", key, target, err))
		}
	}
	if t, err := syslog.ParseTarget(c.LogFile); err == nil && c.LogFile != "" && c.LogFile[0] != '/' {
		switch t.Kind {
		case "syslog":
			check("log_file", c.LogFile, t.Syslog)
		case "journald":
			check("log_file", c.LogFile, syslog.Dest{Network: "unixgram", Address: t.Journal})
		}
	}
	if c.Syslog != nil {
		check("syslog", c.Syslog.String(), *c.Syslog)
	}
	if c.Checkpoints != nil {
		for i, d := range c.Checkpoints.Syslog {
			check(fmt.Sprintf("checkpoints.syslog[%d]", i), d.String(), d)
		}
	}
	return errors.Join(errs...)
}
