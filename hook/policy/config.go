package policy

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/internal/fastjson"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// Modes of a policy block.
const (
	// ModeEnforce refuses a container that violates a rule.
	ModeEnforce = "enforce"
	// ModeAudit records violations and lets the container run.
	ModeAudit = "audit"
)

// What an internal error (an inspection or logging failure) means.
const (
	// OnErrorAllow lets the container run and records the error (fail
	// open).
	OnErrorAllow = "allow"
	// OnErrorDeny refuses the container (fail closed).
	OnErrorDeny = "deny"
)

// Defaults for optional settings.
const (
	DefaultDeadlineMS  = 2000
	DefaultRotateBytes = 16 << 20
	// MaxFileSize bounds a config file.
	MaxFileSize = 1 << 20
	// MaxUserDepth is the kernel's limit of nested user namespaces below
	// the initial one.
	MaxUserDepth = 33
)

// DefaultRecordAnnotations are the annotation keys recorded when the
// config does not list its own: the Kubernetes pod and container names
// that CRI runtimes set.
var DefaultRecordAnnotations = []string{
	vocab.AnnotationSandboxName,
	vocab.AnnotationSandboxNamespace,
	vocab.AnnotationContainerName,
	vocab.LabelPodName,
	vocab.LabelPodNamespace,
	vocab.LabelContainerName,
}

// Config is the contents of nsrel-hook's configuration file: where to
// log, how to treat internal errors, and the policy.
type Config struct {
	// File is the path the config was read from ("" if parsed from
	// bytes without a name).
	File string
	// AuditLog is the absolute path of the audit log (audit_log).
	AuditLog string
	// LogFile is where diagnostics go (log_file): the absolute path of a
	// file, a syslog or journald target ([syslog.ParseTarget]: syslog,
	// unix:///PATH, tcp://HOST:PORT, journald, journald:///PATH), or ""
	// for none.
	LogFile string
	// OnError is [OnErrorAllow] or [OnErrorDeny] (on_error).
	OnError string
	// DeadlineMS is the hook's internal deadline in milliseconds
	// (deadline_ms); keep it below the runtime's hook timeout.
	DeadlineMS int
	// RotateBytes is the size at which the audit log is rotated
	// (rotate_bytes); 0 never rotates.
	RotateBytes int64
	// Syslog is where a run that could not record a container says so
	// (besides stderr and the diagnostics log): syslog, "unix:///PATH" or
	// "tcp://HOST:PORT"; nil for nowhere ("syslog": ""). Default: the
	// local socket, unix:///dev/log.
	Syslog *syslog.Dest
	// KeepFiles is how many rotated files of the audit log are kept
	// (keep_files); 0 keeps all. Older ones are removed by the append that
	// rotates, which records what it removed.
	KeepFiles int
	// SealState is the forward-secure sealing state (seal_state), or ""
	// for none. Records are sealed once `nsrel-hook audit seal-init` has
	// written it.
	SealState string
	// Checkpoints says when and where checkpoints of the audit chain are
	// emitted (checkpoints); nil for never.
	Checkpoints *audit.CheckpointOptions
	// RecordAnnotations are the annotation keys copied into records
	// (record_annotations).
	RecordAnnotations []string
	// TrustedSelectors are the selectors a block's match may use
	// (trusted_selectors); nothing is trusted by default.
	TrustedSelectors TrustedSelectors
	// Policies are the selectable blocks, in order (policies).
	Policies []Block
	// Default applies when no block matches (default).
	Default Block
}

// Block is one policy block.
type Block struct {
	// Name names the block in records and messages.
	Name string
	// Match selects containers; nil for the default block.
	Match *Match
	// Mode is [ModeEnforce] or [ModeAudit].
	Mode string
	// Rules are checked against the container process's ancestry.
	Rules Rules
}

// SelectsByAnnotation reports whether a block of policies selects
// containers by annotation.
func (c *Config) SelectsByAnnotation() bool {
	for _, b := range c.Policies {
		if b.Match != nil && len(b.Match.Annotations) > 0 {
			return true
		}
	}
	return false
}

// criKeys are the annotation keys containerd's CRI plugin sets on a
// pod's containers itself (and the NRI plugin takes from the runtime).
var criKeys = []string{vocab.AnnotationSandboxNamespace, vocab.AnnotationSandboxName, vocab.AnnotationContainerName,
	vocab.AnnotationSandboxID, vocab.AnnotationImageName, vocab.CRIAnnotationPrefix + "sandbox-uid", vocab.CRIAnnotationPrefix + "container-type"}

// Warnings returns what in c loads but may not do what its author
// meant, one line each, for `policy check` (the hook loads such a config
// as it is):
//   - a trusted annotation key that is none of those containerd's CRI
//     plugin sets: a misspelt key matches no container, and its blocks
//     exempt nothing (every container falls to the default), and a key
//     a container's creator writes lets it pick its block;
//   - a block that selects by the pod's or container's name (or image,
//     or sandbox ID) without the pod's namespace: CRI sets those keys,
//     but their values are the pod author's to choose, in any
//     namespace; only the namespace's is guarded by the API server.
func (c *Config) Warnings() []string {
	var out []string
	for i, k := range c.TrustedSelectors.Annotations {
		if !slices.Contains(criKeys, k) {
			out = append(out, fmt.Sprintf("trusted_selectors.annotations[%d]: %s is not a key containerd's CRI plugin sets (%s): make sure the runtime sets it on every container and no container's creator can (a misspelt key matches no container)",
				i, vocab.Printable(k), strings.Join(criKeys[:3], ", ")))
		}
	}
	for _, b := range c.Policies {
		if b.Match == nil {
			continue
		}
		var named []string
		namespaced := false
		for _, a := range b.Match.Annotations {
			switch a.Key {
			case vocab.AnnotationSandboxNamespace:
				namespaced = true
			case vocab.AnnotationSandboxName, vocab.AnnotationContainerName, vocab.AnnotationImageName, vocab.AnnotationSandboxID:
				named = append(named, a.Key)
			}
		}
		if len(named) > 0 && !namespaced {
			held := "held to this block's rules"
			if b.Mode == ModeAudit {
				held = "only audited"
			}
			out = append(out, fmt.Sprintf("policy %s selects by %s, whose value the pod's author chooses in any namespace: any pod that takes it is %s; add %s to its match",
				vocab.GoQuote(b.Name), strings.Join(named, " and "), held, vocab.AnnotationSandboxNamespace))
		}
	}
	return out
}

// Match selects containers by ID and annotations, like podman's hooks.d
// "when" section. Every regular expression must match the whole string.
// All conditions given must hold. [Parse] accepts only selectors the
// config trusts ([TrustedSelectors]).
type Match struct {
	// ID matches the container ID; nil matches any.
	ID *regexp.Regexp
	// Annotations are the annotations a container needs, each with a
	// value that matches.
	Annotations []AnnotationMatch
}

// AnnotationMatch is one entry of [Match.Annotations]: the annotation
// Key (one literal key, written as a regular expression without
// wildcards in the file) must be present with a value that Value
// matches.
type AnnotationMatch struct {
	Key   string
	Value *regexp.Regexp
}

// TrustedSelectors are the selectors the operator trusts to tell
// containers apart (trusted_selectors). Whoever creates a container
// under runc, crun, podman or CRI-O chooses its ID (runc, crun) and its
// annotations, so a block selected by them could be picked by the very
// container it is meant to exempt. A block's match may therefore name
// only what is listed here: annotations the runtime itself sets (as
// containerd's CRI plugin sets io.kubernetes.cri.sandbox-namespace from
// the pod) and, if ID is set, the container ID.
type TrustedSelectors struct {
	// Annotations are the annotation keys a match may name (literal
	// keys, not expressions).
	Annotations []string
	// ID allows matching on the container ID.
	ID bool
}

// TrustsAnnotation reports whether key is one of t.Annotations.
func (t *TrustedSelectors) TrustsAnnotation(key string) bool {
	return slices.Contains(t.Annotations, key)
}

// Rules are the checks of a block. A zero Rules checks nothing.
type Rules struct {
	// RequireUserNS: the container must not run in the top (initial)
	// user namespace (require_user_namespace).
	RequireUserNS bool
	// RequirePIDNS: the container must not run in the top PID namespace
	// (require_pid_namespace).
	RequirePIDNS bool
	// UserDepthMin and UserDepthMax bound the number of user namespaces
	// between the container's and the initial one, counting the
	// container's (user_depth_min, user_depth_max); nil means no bound.
	UserDepthMin, UserDepthMax *int
	// AllowedOwnerUIDs lists the UIDs allowed to own the container's user
	// namespace (allowed_owner_uids); nil allows any.
	AllowedOwnerUIDs []uint32
	// PIDOwnedByUserNS: the container's PID namespace must be owned by its
	// own user namespace (pid_owned_by_container_user_namespace).
	PIDOwnedByUserNS bool
	// HostRootUnmapped: neither host UID 0 nor host GID 0 may be mapped
	// into the container's user namespace (host_root_unmapped).
	HostRootUnmapped bool
	// HeldIDsMapped: the container's process may hold no host UID or
	// GID (supplementary groups included) that its user namespace does
	// not map (held_ids_mapped).
	HeldIDsMapped bool
	// MappedIDsMin and MappedIDsMax bound the number of UIDs and of GIDs
	// the container's user namespace maps (mapped_ids_min,
	// mapped_ids_max); nil means no bound.
	MappedIDsMin, MappedIDsMax *uint64
	// AllowedHostRanges are host ID spans the container's UIDs and GIDs
	// must lie in (allowed_host_ranges, [[first, count], ...]), together
	// with the subordinate IDs of AllowedSubIDUser (allowed_subid_user:
	// its /etc/subuid entries for UIDs, /etc/subgid for GIDs). Both
	// empty means no check.
	AllowedHostRanges idmap.Spans
	AllowedSubIDUser  string
	// DisjointFromRunning: no host UID or GID of the container's user
	// namespace may be mapped by the user namespace of another process
	// running now (disjoint_from_running).
	DisjointFromRunning bool
}

// Rule names, as they appear in config files, violations and messages.
const (
	RuleRequireUserNS    = "require_user_namespace"
	RuleRequirePIDNS     = "require_pid_namespace"
	RuleUserDepthMin     = "user_depth_min"
	RuleUserDepthMax     = "user_depth_max"
	RuleAllowedOwnerUIDs = "allowed_owner_uids"
	RulePIDOwnedByUserNS = "pid_owned_by_container_user_namespace"
	RuleHostRootUnmapped = "host_root_unmapped"
	RuleHeldIDsMapped    = "held_ids_mapped"
	RuleMappedIDsMin     = "mapped_ids_min"
	RuleMappedIDsMax     = "mapped_ids_max"
	RuleAllowedRanges    = "allowed_host_ranges"
	RuleAllowedSubIDUser = "allowed_subid_user"
	RuleDisjoint         = "disjoint_from_running"
	// RuleAncestryUnchanged is not configurable: poststart reports a
	// container whose ancestry differs from the one createRuntime saw.
	RuleAncestryUnchanged = "ancestry_unchanged"
)

// Load reads and parses the config file at path. The file must be
// trusted: a regular file (a FIFO or device is refused without blocking,
// a symlink in the last component refused), owned by root or the
// running user, writable by neither group nor others, in directories
// trusted the same way (see package safefile).
func Load(path string) (*Config, error) {
	data, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// readConfig reads a trusted config file, at most MaxFileSize+1 bytes.
func readConfig(path string) ([]byte, error) {
	if path == "" {
		// filepath.Abs would make it the working directory.
		return nil, errors.New("config: an empty path names no file")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := safefile.OpenTrusted(abs, unix.O_RDONLY, false)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := safefile.ReadLimited(f, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return data, nil
}

// Salvaged is what [Salvage] can still read of a config.
type Salvaged struct {
	// AuditLog, SealState and LogFile are the paths the config names
	// (audit_log, seal_state, log_file), "" where none is found.
	AuditLog, SealState, LogFile string
	// Syslog is its syslog setting, or the default.
	Syslog *syslog.Dest
}

// Salvage returns the paths a config file names even when it does not
// parse or validate, so that the hook can record that it could not run:
// only from a file that passes Load's trust checks (an untrusted file
// could point anywhere), and only clean absolute paths.
func Salvage(path string) Salvaged {
	data, err := readConfig(path)
	if err != nil || len(data) > MaxFileSize {
		return Salvaged{Syslog: &syslog.Local}
	}
	m := fastjson.TopLevelStrings(data, "audit_log", "seal_state", "log_file", "syslog")
	clean := func(p string) string {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
			return ""
		}
		return p
	}
	cleanLogFile := func(p string) string {
		if _, err := syslog.ParseTarget(p); err == nil && p != "" && p != "stderr" && !strings.HasPrefix(p, "/") {
			return p
		}
		return clean(p)
	}
	sv := Salvaged{AuditLog: clean(m["audit_log"]), SealState: clean(m["seal_state"]), LogFile: cleanLogFile(m["log_file"]), Syslog: &syslog.Local}
	if s, ok := m["syslog"]; ok {
		sv.Syslog = nil
		if d, err := syslog.ParseDest(s); err == nil {
			sv.Syslog = &d
		}
	}
	return sv
}

// Parse parses a config file's contents; name is used in error messages.
// Every problem found is reported, each as "name:line:col: key.path:
// message", joined with newlines (errors.Join).
func Parse(name string, data []byte) (*Config, error) {
	if name == "" {
		name = "config"
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxFileSize)
	}
	tree, err := parseTree(data)
	if err != nil {
		return nil, located(name, data, err)
	}
	p := &parser{}
	c := p.config(tree)
	if len(p.errs) > 0 {
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = located(name, data, e)
		}
		return nil, errors.Join(errs...)
	}
	c.File = name
	return c, nil
}

// located turns a posError into "name:line:col: ...".
func located(name string, data []byte, err error) error {
	var pe *posError
	if errors.As(err, &pe) {
		line, col := lineCol(data, pe.off)
		return fmt.Errorf("%s:%d:%d: %s", name, line, col, pe.Error())
	}
	return fmt.Errorf("%s: %w", name, err)
}

type parser struct {
	errs []*posError
	// selectors are the ID and annotation-key selectors of every block,
	// checked against trusted_selectors once the whole file is read
	// (the key may come after the policies).
	selectors []selector
	// written are the files besides the audit log the config names
	// (log_file, seal_state, checkpoints.file), checked against the log
	// and each other once the whole file is read.
	written []writtenFile
}

// writtenFile is a file a setting names that a writer writes.
type writtenFile struct {
	n    *node
	key  string // its key path
	path string
}

// selector is the ID or one annotation key a block's match names.
type selector struct {
	off     int    // where it is written
	path    string // its key path
	id      bool   // the container ID; else an annotation key
	expr    string // the annotation key expression as written
	key     string // the key it matches, if literal
	literal bool   // the expression matches one key only
}

func (p *parser) errorf(n *node, path, format string, args ...any) {
	p.errs = append(p.errs, &posError{off: n.Off, path: path, msg: fmt.Sprintf(format, args...)})
}

// object checks that n is an object with only the given keys (required
// ones marked with a leading '!') and calls set for each member present.
func (p *parser) object(n *node, path string, keys []string, set func(key string, v *node, path string)) bool {
	if n.Kind != 'o' {
		p.errorf(n, path, "must be an object, not %s", kindName(n.Kind))
		return false
	}
	allowed := map[string]bool{}
	var required []string
	for _, k := range keys {
		if name, ok := strings.CutPrefix(k, "!"); ok {
			allowed[name] = true
			required = append(required, name)
		} else {
			allowed[k] = true
		}
	}
	present := map[string]bool{}
	for _, m := range n.Members {
		mp := join(path, m.Key)
		if !allowed[m.Key] {
			names := make([]string, 0, len(allowed))
			for k := range allowed {
				names = append(names, k)
			}
			sort.Strings(names)
			p.errs = append(p.errs, &posError{off: m.KeyOff, path: mp, msg: "unknown key (known: " + strings.Join(names, ", ") + ")"})
			continue
		}
		present[m.Key] = true
		set(m.Key, m.Val, mp)
	}
	for _, k := range required {
		if !present[k] {
			p.errorf(n, join(path, k), "missing (required)")
		}
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (p *parser) str(n *node, path string) (string, bool) {
	if n.Kind != 's' {
		p.errorf(n, path, "must be a string, not %s", kindName(n.Kind))
		return "", false
	}
	return n.Str, true
}

func (p *parser) boolean(n *node, path string) bool {
	if n.Kind != 'b' {
		p.errorf(n, path, "must be true or false, not %s", kindName(n.Kind))
		return false
	}
	return n.Bool
}

func (p *parser) integer(n *node, path string, lo, hi int64) (int64, bool) {
	if n.Kind != 'n' {
		p.errorf(n, path, "must be a number, not %s", kindName(n.Kind))
		return 0, false
	}
	v, err := strconv.ParseInt(n.Num.String(), 10, 64)
	if err != nil {
		p.errorf(n, path, "must be a whole number, not %s", n.Num)
		return 0, false
	}
	if v < lo || v > hi {
		p.errorf(n, path, "must be between %d and %d, not %d", lo, hi, v)
		return 0, false
	}
	return v, true
}

func (p *parser) absPath(n *node, path string, allowEmpty bool) string {
	s, ok := p.str(n, path)
	if !ok {
		return ""
	}
	if s == "" && allowEmpty {
		return ""
	}
	if !filepath.IsAbs(s) || filepath.Clean(s) != s || strings.ContainsRune(s, 0) {
		p.errorf(n, path, "must be a clean absolute path, not %q", s)
		return ""
	}
	return s
}

// logFile parses log_file: a clean absolute path, a syslog or journald
// target, or "" for none.
func (p *parser) logFile(n *node, path string) string {
	s, ok := p.str(n, path)
	if !ok || s == "" {
		return ""
	}
	if filepath.IsAbs(s) && filepath.Clean(s) == s && !strings.ContainsRune(s, 0) {
		return s
	}
	if t, err := syslog.ParseTarget(s); err == nil && t.Kind != "stderr" && !strings.HasPrefix(s, "/") {
		return s
	}
	p.errorf(n, path, "must be a clean absolute path or a syslog or journald target (syslog, unix:///PATH, tcp://HOST:PORT, journald, journald:///PATH), not %q", s)
	return ""
}

func (p *parser) regex(n *node, path string) *regexp.Regexp {
	s, ok := p.str(n, path)
	if !ok {
		return nil
	}
	// Alone first: `a)|(?:.*` is no regular expression, but wrapped it
	// would be one that matches everything.
	_, err := regexp.Compile(s)
	var re *regexp.Regexp
	if err == nil {
		re, err = regexp.Compile("^(?:" + s + ")$")
	}
	if err != nil {
		p.errorf(n, path, "bad regular expression %q: %s", s, regexpError(err))
		return nil
	}
	return re
}

// regexpError is the reason a regular expression did not compile, on
// one line: the regexp package's message quotes the expression as it
// is, a newline in it too.
func regexpError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s in %q", se.Code, se.Expr)
	}
	return vocab.Printable(err.Error())
}

func (p *parser) config(n *node) *Config {
	c := &Config{
		OnError:           OnErrorAllow,
		Syslog:            &syslog.Local,
		DeadlineMS:        DefaultDeadlineMS,
		RotateBytes:       DefaultRotateBytes,
		RecordAnnotations: DefaultRecordAnnotations,
	}
	names := map[string]bool{}
	var defaultNode, auditLogNode *node
	trustedOK := true
	p.object(n, "", []string{"!version", "!audit_log", "log_file", "syslog", "on_error", "deadline_ms", "rotate_bytes", "keep_files", "seal_state", "checkpoints", "record_annotations", "trusted_selectors", "policies", "!default"}, func(key string, v *node, path string) {
		switch key {
		case "version":
			if x, ok := p.integer(v, path, 1, 1); ok && x != 1 {
				p.errorf(v, path, "must be 1")
			}
		case "audit_log":
			c.AuditLog = p.absPath(v, path, false)
			auditLogNode = v
		case "log_file":
			c.LogFile = p.logFile(v, path)
			if strings.HasPrefix(c.LogFile, "/") {
				p.written = append(p.written, writtenFile{v, path, c.LogFile})
			}
		case "syslog":
			c.Syslog = p.syslogDest(v, path)
		case "on_error":
			if s, ok := p.str(v, path); ok {
				if s != OnErrorAllow && s != OnErrorDeny {
					p.errorf(v, path, "must be %q or %q, not %q", OnErrorAllow, OnErrorDeny, s)
				}
				c.OnError = s
			}
		case "deadline_ms":
			if x, ok := p.integer(v, path, 10, 60000); ok {
				c.DeadlineMS = int(x)
			}
		case "rotate_bytes":
			if x, ok := p.integer(v, path, 0, math.MaxInt64); ok {
				if x != 0 && x < 4096 {
					p.errorf(v, path, "must be 0 (never rotate) or at least 4096, not %d", x)
				}
				c.RotateBytes = x
			}
		case "keep_files":
			if x, ok := p.integer(v, path, 0, 1<<20); ok {
				c.KeepFiles = int(x)
			}
		case "seal_state":
			c.SealState = p.absPath(v, path, true)
			if c.SealState != "" {
				p.written = append(p.written, writtenFile{v, path, c.SealState})
			}
		case "checkpoints":
			c.Checkpoints = p.checkpoints(v, path)
		case "record_annotations":
			if v.Kind != 'a' {
				p.errorf(v, path, "must be an array of strings, not %s", kindName(v.Kind))
				return
			}
			c.RecordAnnotations = []string{}
			for i, e := range v.Elems {
				ep := fmt.Sprintf("%s[%d]", path, i)
				s, ok := p.str(e, ep)
				switch {
				case !ok:
				case !annotationKey(s):
					// As trusted_selectors.annotations: records and the
					// tools' lines name the key.
					p.errorf(e, ep, "must be an annotation key: %s", annotationKeyRule)
				default:
					c.RecordAnnotations = append(c.RecordAnnotations, s)
				}
			}
		case "trusted_selectors":
			before := len(p.errs)
			c.TrustedSelectors = p.trusted(v, path)
			trustedOK = len(p.errs) == before
		case "policies":
			if v.Kind != 'a' {
				p.errorf(v, path, "must be an array of policy blocks, not %s", kindName(v.Kind))
				return
			}
			for i, e := range v.Elems {
				bp := fmt.Sprintf("%s[%d]", path, i)
				b := p.block(e, bp, true)
				if b.Name != "" {
					if names[b.Name] {
						p.errorf(e, bp+".name", "duplicate block name %q", b.Name)
					}
					names[b.Name] = true
				}
				c.Policies = append(c.Policies, b)
			}
		case "default":
			defaultNode = v
			c.Default = p.block(v, path, false)
			if c.Default.Name == "" {
				c.Default.Name = "default"
			}
		}
	})
	if defaultNode != nil && names[c.Default.Name] {
		// Records name the block: two of one name cannot be told apart.
		p.errorf(defaultNode, "default.name", "duplicate block name %q: a block of policies has it", c.Default.Name)
	}
	// Matches are judged once trusted_selectors is known, wherever it
	// is in the file; if it is broken (reported already), judging them
	// by what could be read of it would only add noise.
	if trustedOK {
		p.checkTrust(&c.TrustedSelectors)
	}
	if c.AuditLog != "" {
		// Once rotate_bytes is known, wherever it is in the file.
		if err := audit.CheckPath(c.AuditLog, c.RotateBytes != 0); err != nil {
			p.errorf(auditLogNode, "audit_log", "%s", err)
		}
	}
	p.checkWritten(c.AuditLog)
	return c
}

// checkWritten refuses a file a setting names (log_file, seal_state,
// checkpoints.file) that is one of the audit log's own (the log, its
// lock, its checkpoint state, a rotated file: [audit.FileOf]) or the
// file another of those settings names: two writers of one file mix
// what they write (diagnostics in the log or the sealing state, the
// sealing key in the checkpoints shippers send off the node), and
// retention removes a rotated file's name.
func (p *parser) checkWritten(auditLog string) {
	for i, w := range p.written {
		if what, ok := audit.FileOf(auditLog, w.path); auditLog != "" && ok {
			p.errorf(w.n, w.key, "must not be %s (%s): the log's writers use that name", what, w.path)
			continue
		}
		for _, o := range p.written[:i] {
			if o.path == w.path {
				p.errorf(w.n, w.key, "must not be the file %s names too (%s): one file cannot hold both", o.key, w.path)
				break
			}
		}
	}
}

// annotationKeyRule is what annotationKey takes, for the errors.
const annotationKeyRule = "not empty, without control characters (C0 or DEL)"

// annotationKey reports whether s may be a key of record_annotations and
// trusted_selectors.annotations: not empty, and no byte of it a C0
// control character or DEL, which trusted_selectors keys never could be
// (nor record_annotations keys since 87c3e14). Nothing else is refused,
// of any length: trusted_selectors keys were refused only empty, over
// 253 bytes, with a control character, a space or DEL, and
// record_annotations keys not at all, so refusing a key such as
// "a\u00a0b" (or one with a space, a soft hyphen, a zero-width,
// bidirectional, C1, private-use or unassigned character) would stop a
// config that loaded from loading, and the hook would refuse every
// container. The tools' lines escape such a key (vocab.Printable), the
// records hold it as JSON, and a key the runtime does not write never
// matches. encoding/json gives the config's strings as valid UTF-8.
func annotationKey(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// trusted parses trusted_selectors.
func (p *parser) trusted(n *node, path string) TrustedSelectors {
	var t TrustedSelectors
	p.object(n, path, []string{"annotations", "id"}, func(key string, v *node, path string) {
		switch key {
		case "annotations":
			if v.Kind != 'a' {
				p.errorf(v, path, "must be an array of annotation keys, not %s", kindName(v.Kind))
				return
			}
			t.Annotations = []string{}
			for i, e := range v.Elems {
				ep := fmt.Sprintf("%s[%d]", path, i)
				s, ok := p.str(e, ep)
				switch {
				case !ok:
				case !annotationKey(s):
					p.errorf(e, ep, "must be an annotation key: %s", annotationKeyRule)
				case strings.ContainsAny(s, `\()[]{}|*+?^$`):
					p.errorf(e, ep, "must be an annotation key as the runtime writes it (such as %q), not a pattern", vocab.AnnotationSandboxNamespace)
				case slices.Contains(t.Annotations, s):
					p.errorf(e, ep, "duplicate annotation key %q", s)
				default:
					t.Annotations = append(t.Annotations, s)
				}
			}
		case "id":
			t.ID = p.boolean(v, path)
		}
	})
	return t
}

// checkTrust refuses every selector of the policies that t does not
// trust: the container's creator could use it to pick a laxer block.
func (p *parser) checkTrust(t *TrustedSelectors) {
	for _, s := range p.selectors {
		var msg string
		switch {
		case s.id && !t.ID:
			msg = "the container ID is not trusted (trusted_selectors.id): whoever creates a container chooses its ID (runc, crun, ctr), " +
				"so a container could pick this block; trust it only if nobody else can create containers that run this hook"
		case s.id:
		case !s.literal && !strings.ContainsAny(s.expr, `\()[]{}|*+?^$`):
			msg = fmt.Sprintf("must be one literal annotation key, not a pattern (write %q for that key): "+
				"only the keys in trusted_selectors.annotations can select a block", regexp.QuoteMeta(s.expr))
		case !s.literal:
			msg = "must be one literal annotation key, not a pattern: only the keys in trusted_selectors.annotations can select a block"
		case !t.TrustsAnnotation(s.key):
			msg = fmt.Sprintf("annotation %q is not in trusted_selectors.annotations: a container's creator sets its own annotations "+
				"(runc, crun, podman, CRI-O), so a container could pick this block; list the key there only if your runtime sets it, "+
				"as containerd's CRI plugin sets %s from the pod", s.key, vocab.AnnotationSandboxNamespace)
		}
		if msg != "" {
			p.errs = append(p.errs, &posError{off: s.off, path: s.path, msg: msg})
		}
	}
}

func (p *parser) block(n *node, path string, selectable bool) Block {
	var b Block
	keys := []string{"name", "!mode", "rules"}
	if selectable {
		keys = []string{"!name", "!match", "!mode", "rules"}
	}
	p.object(n, path, keys, func(key string, v *node, path string) {
		switch key {
		case "name":
			if s, ok := p.str(v, path); ok {
				if s == "" || len(s) > 128 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
					p.errorf(v, path, "must be 1 to 128 printable characters")
				}
				b.Name = s
			}
		case "mode":
			if s, ok := p.str(v, path); ok {
				if s != ModeEnforce && s != ModeAudit {
					p.errorf(v, path, "must be %q or %q, not %q", ModeEnforce, ModeAudit, s)
				}
				b.Mode = s
			}
		case "match":
			b.Match = p.match(v, path)
		case "rules":
			b.Rules = p.rules(v, path)
		}
	})
	return b
}

func (p *parser) match(n *node, path string) *Match {
	m := &Match{}
	ok := p.object(n, path, []string{"id", "annotations"}, func(key string, v *node, path string) {
		switch key {
		case "id":
			if m.ID = p.regex(v, path); m.ID != nil {
				p.selectors = append(p.selectors, selector{off: v.Off, path: path, id: true})
			}
		case "annotations":
			if v.Kind != 'o' {
				p.errorf(v, path, "must be an object mapping key expressions to value expressions, not %s", kindName(v.Kind))
				return
			}
			if len(v.Members) == 0 {
				p.errorf(v, path, "must name at least one annotation (an empty object would match every container)")
				return
			}
			for _, mem := range v.Members {
				mp := path + "[" + vocab.GoQuote(mem.Key) + "]"
				k, err := regexp.Compile(mem.Key)
				if err != nil {
					p.errs = append(p.errs, &posError{off: mem.KeyOff, path: mp, msg: "bad key regular expression: " + regexpError(err)})
					continue
				}
				lit, complete := k.LiteralPrefix()
				p.selectors = append(p.selectors, selector{off: mem.KeyOff, path: mp, expr: mem.Key, key: lit, literal: complete})
				if val := p.regex(mem.Val, mp); val != nil {
					m.Annotations = append(m.Annotations, AnnotationMatch{Key: lit, Value: val})
				}
			}
		}
	})
	if ok && len(n.Members) == 0 {
		p.errorf(n, path, "needs \"id\" and/or \"annotations\"")
	}
	return m
}

// spans reads [[first, count], ...] host ID spans, each within 2^32.
func (p *parser) spans(v *node, path string) idmap.Spans {
	if v.Kind != 'a' {
		p.errorf(v, path, "must be an array of [first, count] pairs, not %s", kindName(v.Kind))
		return nil
	}
	out := idmap.Spans{}
	for i, e := range v.Elems {
		epath := fmt.Sprintf("%s[%d]", path, i)
		if e.Kind != 'a' || len(e.Elems) != 2 {
			p.errorf(e, epath, "must be a [first, count] pair")
			continue
		}
		first, ok1 := p.integer(e.Elems[0], epath+"[0]", 0, math.MaxUint32)
		count, ok2 := p.integer(e.Elems[1], epath+"[1]", 1, math.MaxUint32)
		if ok1 && ok2 {
			if first+count > math.MaxUint32+1 {
				p.errorf(e, epath, "runs past ID %d", uint64(math.MaxUint32))
				continue
			}
			out = append(out, idmap.Span{First: uint64(first), Count: uint64(count)})
		}
	}
	return out.Normal()
}

func (p *parser) rules(n *node, path string) Rules {
	var r Rules
	var emptyRanges *node // allowed_host_ranges: []
	p.object(n, path, []string{RuleRequireUserNS, RuleRequirePIDNS, RuleUserDepthMin, RuleUserDepthMax, RuleAllowedOwnerUIDs, RulePIDOwnedByUserNS,
		RuleHostRootUnmapped, RuleHeldIDsMapped, RuleMappedIDsMin, RuleMappedIDsMax, RuleAllowedRanges, RuleAllowedSubIDUser, RuleDisjoint}, func(key string, v *node, path string) {
		switch key {
		case RuleRequireUserNS:
			r.RequireUserNS = p.boolean(v, path)
		case RuleRequirePIDNS:
			r.RequirePIDNS = p.boolean(v, path)
		case RuleUserDepthMin, RuleUserDepthMax:
			if x, ok := p.integer(v, path, 0, MaxUserDepth); ok {
				d := int(x)
				if key == RuleUserDepthMin {
					r.UserDepthMin = &d
				} else {
					r.UserDepthMax = &d
				}
			}
		case RuleAllowedOwnerUIDs:
			if v.Kind != 'a' {
				p.errorf(v, path, "must be an array of UIDs, not %s", kindName(v.Kind))
				return
			}
			r.AllowedOwnerUIDs = []uint32{}
			for i, e := range v.Elems {
				if x, ok := p.integer(e, fmt.Sprintf("%s[%d]", path, i), 0, math.MaxUint32-1); ok {
					r.AllowedOwnerUIDs = append(r.AllowedOwnerUIDs, uint32(x))
				}
			}
		case RulePIDOwnedByUserNS:
			r.PIDOwnedByUserNS = p.boolean(v, path)
		case RuleHostRootUnmapped:
			r.HostRootUnmapped = p.boolean(v, path)
		case RuleHeldIDsMapped:
			r.HeldIDsMapped = p.boolean(v, path)
		case RuleDisjoint:
			r.DisjointFromRunning = p.boolean(v, path)
		case RuleMappedIDsMin, RuleMappedIDsMax:
			if x, ok := p.integer(v, path, 0, math.MaxUint32); ok {
				c := uint64(x)
				if key == RuleMappedIDsMin {
					r.MappedIDsMin = &c
				} else {
					r.MappedIDsMax = &c
				}
			}
		case RuleAllowedSubIDUser:
			if u, ok := p.str(v, path); ok {
				if u == "" || strings.ContainsAny(u, ":\n") {
					p.errorf(v, path, "must be a user name or number")
				}
				r.AllowedSubIDUser = u
			}
		case RuleAllowedRanges:
			r.AllowedHostRanges = p.spans(v, path)
			if v.Kind == 'a' && len(v.Elems) == 0 {
				emptyRanges = v
			}
		}
	})
	if emptyRanges != nil && r.AllowedSubIDUser == "" {
		// No span and no user's subordinate IDs: said neither way
		// whether that allows nothing or checks nothing, it turned the
		// rule off, where allowed_owner_uids [] refuses every container.
		// (With allowed_subid_user, [] allows that user's IDs alone.)
		p.errorf(emptyRanges, join(path, RuleAllowedRanges), "must list at least one [first, count] pair, or go with %s (leave the rule out to allow any range)", RuleAllowedSubIDUser)
	}
	if r.MappedIDsMin != nil && r.MappedIDsMax != nil && *r.MappedIDsMin > *r.MappedIDsMax {
		p.errorf(n, path, "%s (%d) is greater than %s (%d)", RuleMappedIDsMin, *r.MappedIDsMin, RuleMappedIDsMax, *r.MappedIDsMax)
	}
	if r.UserDepthMin != nil && r.UserDepthMax != nil && *r.UserDepthMin > *r.UserDepthMax {
		p.errorf(n, path, "%s (%d) is greater than %s (%d)", RuleUserDepthMin, *r.UserDepthMin, RuleUserDepthMax, *r.UserDepthMax)
	}
	return r
}
