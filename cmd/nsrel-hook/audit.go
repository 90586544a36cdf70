package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func auditCmd(configPath string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "nsrel-hook: usage: nsrel-hook audit verify|show|ack|seal-init|checkpoint ... (see --help)")
		return 2
	}
	cmd := args[0]
	if isHelp(cmd) {
		return vocab.Written("nsrel-hook", printUsage(stdout), stderr)
	}
	fs := flag.NewFlagSet("audit "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		partial, asJSON, replace bool
		shipped                  bool
		anchor, container, host  string
		checkpointLog            string
		reason                   string
		keys, checkpoints, nodes listFlag
		allNodes                 bool
	)
	switch cmd {
	case "verify":
		fs.BoolVar(&partial, "partial", false, "")
		fs.StringVar(&anchor, "anchor", "", "")
		fs.Var(&keys, "key", "")
		fs.Var(&checkpoints, "checkpoints", "")
		fs.StringVar(&host, "host", "", "")
		fs.StringVar(&checkpointLog, "checkpoint-log", "", "")
		fs.BoolVar(&shipped, "shipped", false, "")
		fs.Var(&nodes, "node", "")
		fs.BoolVar(&allNodes, "nodes", false, "")
		fs.BoolVar(&asJSON, "json", false, "")
	case "show":
		fs.StringVar(&container, "container", "", "")
		fs.BoolVar(&asJSON, "json", false, "")
	case "ack":
		fs.StringVar(&reason, "reason", "", "")
	case "seal-init":
		fs.BoolVar(&replace, "replace", false, "")
	case "checkpoint":
	default:
		fmt.Fprintf(stderr, "nsrel-hook: unknown audit command %s (want verify, show, ack, seal-init or checkpoint; see --help)\n", vocab.GoQuote(cmd))
		return 2
	}
	// Flags may follow the positional arguments (audit ack 12 --reason x);
	// "--" ends them.
	pos, err := vocab.ParseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return vocab.Written("nsrel-hook", printUsage(stdout), stderr)
		}
		fmt.Fprintf(stderr, "nsrel-hook: audit %s: %s (see --help)\n", cmd, vocab.FlagError(err))
		return 2
	}
	if code := emptyPaths("audit "+cmd, configPath, pos, cmd == "ack", stderr); code != 0 {
		return code
	}
	if code := emptyValues("audit "+cmd, fs, nodes, stderr); code != 0 {
		return code
	}
	switch cmd {
	case "ack":
		return ackCmd(configPath, pos, reason, stdout, stderr)
	case "seal-init":
		if len(pos) > 0 {
			fmt.Fprintln(stderr, "nsrel-hook: audit seal-init takes no arguments: the config names the log and the sealing state (see --help)")
			return 2
		}
		return sealInitCmd(configPath, replace, stdout, stderr)
	case "checkpoint":
		if len(pos) > 0 {
			fmt.Fprintln(stderr, "nsrel-hook: audit checkpoint takes no arguments: the config names the log and its checkpoints (see --help)")
			return 2
		}
		return checkpointCmd(configPath, stderr)
	}
	// A node named twice is verified, and counted, once.
	nodes = vocab.Dedup(nodes)
	if (allNodes || len(nodes) > 0) && len(pos) == 0 {
		fmt.Fprintln(stderr, "nsrel-hook: audit verify: --node and --nodes need the collector's LOG files (see --help)")
		return 2
	}
	if cmd == "verify" {
		// Usage errors first, whether or not a config must load.
		if code := verifyUsage(host, checkpointLog, anchor, allNodes || len(nodes) > 0, checkpoints, keys, stderr); code != 0 {
			return code
		}
	}
	anchorSeq, anchor, _ := parseAnchor(anchor)
	logs := pos
	if len(logs) == 0 {
		cfg, err := policy.Load(configPath)
		if err != nil {
			fmt.Fprintf(stderr, "nsrel-hook: no LOG given and %s\n", vocab.OneLine(err))
			return 1
		}
		logs = []string{cfg.AuditLog}
	}
	if cmd == "show" {
		if len(logs) != 1 {
			fmt.Fprintln(stderr, "nsrel-hook: audit show takes at most one LOG (see --help)")
			return 2
		}
		return showCmd(logs[0], container, asJSON, stdout, stderr)
	}
	opts := audit.VerifyOptions{Partial: partial, Anchor: anchor, AnchorSeq: anchorSeq, CheckpointLog: checkpointLog, Shipped: shipped}
	if configPath != vocab.DefaultHookConfig {
		// Named in the command to acknowledge damage: without it, ack
		// loads the default config and acknowledges in its log.
		opts.AckConfig, _ = filepath.Abs(configPath)
	}
	fail := func(msg string) int { return verifyFailed(logs, msg, asJSON, stdout, stderr) }
	for _, k := range keys {
		vk, warning, err := readKey(k)
		if err != nil {
			// A key file that cannot be opened or read fails as a
			// --checkpoints file does; a key that does not parse is
			// a usage error.
			if errors.As(err, new(*os.PathError)) {
				return fail("--key: " + vocab.OneLine(err))
			}
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: --key: %s (see --help)\n", vocab.OneLine(err))
			return 2
		}
		if warning != "" {
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: warning: --key: %s\n", vocab.Printable(warning))
		}
		opts.Keys = append(opts.Keys, vk)
	}
	if allNodes || len(nodes) > 0 {
		if anchor != "" && (allNodes || len(nodes) > 1) {
			fmt.Fprintln(stderr, "nsrel-hook: audit verify: --anchor is the hash of one node's record: give it with a single --node (see --help)")
			return 2
		}
		// Each node's checkpoints go to a file of its own, read when
		// the node is verified: a fleet's checkpoints are not held in
		// memory at once.
		return verified(func(w io.Writer) int { return verifyNodes(logs, nodes, checkpoints, opts, asJSON, w, stderr) }, stdout, stderr)
	}
	// A collector's file holds every node's checkpoints: keep only those
	// of the hosts verified (for one log without --host, of the first
	// host met; several are refused, as CheckpointsOf refuses them),
	// their host and log names shared. With keys, a checkpoint whose
	// seal names a given key is kept whatever host it names: verify
	// holds it against the log when the seal checks (root on the node
	// after T could rename the node, cut its log and send a checkpoint
	// of the new name; choosing that name must not set the genuine ones
	// aside), and ignores it, with a note, when it does not.
	given := map[audit.SealID]bool{}
	for _, k := range opts.Keys {
		given[k.ID] = true
	}
	sealedByGiven := func(c audit.Checkpoint) bool {
		if len(given) == 0 || c.Seal == "" {
			return false
		}
		p, err := audit.ParseSeal(c.Seal)
		return err == nil && given[p.ID]
	}
	keepHost := func(h string) bool { return true }
	first, firstSet := "", false
	switch {
	case host != "":
		keepHost = func(h string) bool { return h == host }
	case len(nodes) > 0:
		keepHost = func(h string) bool { return slices.Contains(nodes, h) }
	case !allNodes:
		keepHost = func(h string) bool {
			if !firstSet {
				first, firstSet = h, true
			}
			return h == first
		}
	}
	names := map[string]string{}
	intern := func(v string) string {
		if n, ok := names[v]; ok {
			return n
		}
		if len(names) < 1<<12 {
			names[v] = v
		}
		return v
	}
	read, others, otherLines := 0, map[string]bool{}, 0
	// Each checkpoint once: a line sent again (by the node, by anyone
	// who reaches the collector) is the same checkpoint, and 300,000
	// copies of one held 328 MB.
	seen := map[audit.Checkpoint]bool{}
	for c, err := range audit.ReadCheckpoints(checkpoints...) {
		if err != nil {
			return fail("--checkpoints: " + vocab.OneLine(err))
		}
		read++
		if !sealedByGiven(c) && !keepHost(c.Host) {
			if len(others) < 1<<12 {
				others[c.Host] = true
			}
			otherLines++
			continue
		}
		if seen[c] {
			continue
		}
		seen[c] = true
		c.Host, c.Log = intern(c.Host), intern(c.Log)
		opts.Checkpoints = append(opts.Checkpoints, c)
	}
	if host == "" && len(nodes) == 0 && !allNodes && len(others) > 0 && len(given) == 0 {
		// Several hosts' checkpoints for one log, as CheckpointsOf
		// refuses them. (With keys, those no given key seals count
		// for nothing: another host's added to the file, which anyone
		// can, must not refuse the log.)
		err := audit.CheckpointHostsError(append(slices.Collect(maps.Keys(others)), first))
		return fail("--checkpoints: " + vocab.OneLine(err))
	}
	if len(checkpoints) > 0 && read == 0 {
		return fail("no checkpoint in " + vocab.Printable(strings.Join(checkpoints, ", ")))
	}
	if len(checkpoints) > 0 && len(opts.Checkpoints) == 0 {
		return fail("--checkpoints: no checkpoint of host " + vocab.GoQuote(host))
	}
	if host != "" || len(nodes) > 0 || allNodes {
		otherLines = 0 // set aside as asked
	}
	return verified(func(w io.Writer) int { return verifyCmd(logs, len(pos) > 0, host, otherLines, opts, asJSON, w, stderr) }, stdout, stderr)
}

// verifyFailed says that verify of logs failed before any log's verdict
// (msg: why): one line on stderr and, with --json, an object on stdout
// that says so, as a log that cannot be read gives one; it returns 1.
func verifyFailed(logs []string, msg string, asJSON bool, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s\n", msg)
	if asJSON {
		vocab.WriteSafeJSON(stdout, verifyResult{Log: strings.Join(logs, ", "), Files: logs, Error: msg}.lists(), false)
	}
	return 1
}

// verified runs a verify that prints to stdout and returns its status,
// or 1 with a write error when what it printed could not be written
// (a report half written is no report). A verify that failed exits 1
// all the same: the write error is said too.
func verified(verify func(stdout io.Writer) int, stdout, stderr io.Writer) int {
	w := &vocab.CheckedWriter{W: stdout}
	status := verify(w)
	return max(status, vocab.Written("nsrel-hook", w.Err, stderr))
}

// emptyPaths refuses (exit 2) an empty --config or LOG of the command
// cmd, which filepath.Abs would take for the working directory; with
// seq, the first operand is a SEQ, not a LOG. The stages take an empty
// --config for a config that does not load instead (runStage).
func emptyPaths(cmd, configPath string, operands []string, seq bool, stderr io.Writer) int {
	if configPath == "" {
		fmt.Fprintf(stderr, "nsrel-hook: %s: %s (see --help)\n", cmd, vocab.EmptyValue("--config", "a file"))
		return 2
	}
	for i, o := range operands {
		if o == "" && !(seq && i == 0) {
			fmt.Fprintf(stderr, "nsrel-hook: %s: LOG needs a path, not an empty string (see --help)\n", cmd)
			return 2
		}
	}
	return 0
}

// emptyValues refuses (exit 2) an option of the audit command cmd given
// an empty value: unset, each means something else (no anchor, any
// host's checkpoints, every container), and `--anchor "$PREV"` with PREV
// unset verified without the anchor, OK. nodes are the --node values.
func emptyValues(cmd string, fs *flag.FlagSet, nodes []string, stderr io.Writer) int {
	what := map[string]string{"anchor": "a record's hash", "host": "a host name", "checkpoint-log": "a path", "container": "an ID or its start"}
	empty := ""
	fs.Visit(func(f *flag.Flag) {
		if w, ok := what[f.Name]; ok && empty == "" && f.Value.String() == "" {
			empty = vocab.EmptyValue("--"+f.Name, w)
		}
	})
	if empty == "" && slices.Contains(nodes, "") {
		empty = vocab.EmptyValue("--node", "a host name")
	}
	if empty != "" {
		fmt.Fprintf(stderr, "nsrel-hook: %s: %s (see --help)\n", cmd, empty)
		return 2
	}
	return 0
}

// parseAnchor reads --anchor: a record's hash (64 hex digits, either
// case), or its seq, a colon and its hash, as verify's OK line gives
// them. The hash comes back in lower case, as records name it.
func parseAnchor(s string) (seq uint64, hash string, ok bool) {
	if before, after, found := strings.Cut(s, ":"); found {
		n, err := strconv.ParseUint(before, 10, 64)
		if err != nil || n == 0 || strconv.FormatUint(n, 10) != before {
			return 0, "", false
		}
		seq, s = n, after
	}
	if _, err := hex.DecodeString(s); err != nil || len(s) != 2*sha256.Size {
		return 0, "", false
	}
	return seq, strings.ToLower(s), true
}

// verifyUsage checks the verify options that depend on each other, and
// the file options for empty values: a usage error (2) or 0.
func verifyUsage(host, checkpointLog, anchor string, nodes bool, checkpoints, keys []string, stderr io.Writer) int {
	// A hash cut short or mistyped found no record and was reported as
	// records cut off the end.
	if _, _, ok := parseAnchor(anchor); anchor != "" && !ok {
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: --anchor %s: want a record's hash, 64 hex digits, or SEQ:HASH (see --help)\n", vocab.Quote(anchor))
		return 2
	}
	if host != "" && nodes {
		fmt.Fprintln(stderr, "nsrel-hook: audit verify: --host picks one log's checkpoints; with --node or --nodes each node gets its own (see --help)")
		return 2
	}
	if checkpointLog != "" && !filepath.IsAbs(checkpointLog) {
		// Checkpoints name the log's absolute path: a relative one
		// matches none, and the verify failed for checkpoints "of
		// another log".
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: --checkpoint-log %s: want the absolute path the node wrote the log at, as its checkpoints name it (see --help)\n", vocab.Quote(checkpointLog))
		return 2
	}
	// Both pick among the checkpoints given: without any they would be
	// ignored, and the verify taken for one that checked them.
	for _, o := range []struct{ name, value string }{{"--host", host}, {"--checkpoint-log", checkpointLog}} {
		if o.value != "" && len(checkpoints) == 0 {
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s picks among the checkpoints given: it needs --checkpoints FILE (see --help)\n", o.name)
			return 2
		}
	}
	for _, c := range checkpoints {
		if c == "" {
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s (see --help)\n", vocab.EmptyValue("--checkpoints", "a file"))
			return 2
		}
	}
	for _, k := range keys {
		if k == "" || k == "@" {
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s (see --help)\n", vocab.EmptyValue("--key", "a key or @FILE"))
			return 2
		}
	}
	return 0
}

// readKey reads a verification key given as KEY or @FILE (the file keeps
// the key out of the process list and the shell history; a pipe, such as
// <(pass show nsrel), works too). The key makes seals as well as checks
// them: a file others may read is worth a warning.
func readKey(s string) (k audit.VerifyKey, warning string, err error) {
	if name, ok := strings.CutPrefix(s, "@"); ok {
		f, err := os.Open(name)
		if err != nil {
			return k, "", err
		}
		defer f.Close()
		// A key is under 100 bytes: /dev/zero is not read whole.
		data, err := io.ReadAll(io.LimitReader(f, 4096))
		if err != nil {
			return k, "", err // an *os.PathError naming the file
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o044 != 0 {
			warning = fmt.Sprintf("%s is readable by others (mode %04o): whoever reads the key can make seals, not only check them (chmod go-r, or keep it off this machine)", name, st.Mode().Perm())
		}
		s = keyLine(string(data))
	}
	k, err = audit.ParseVerifyKey(s)
	return k, warning, err
}

// keyLine returns the key in a key file: its one line that starts with
// the key's prefix, so that seal-init's output saved as it is (the key
// between lines that say what it is) is a key file; the data as it is
// when no line or more than one does (ParseVerifyKey says what is wrong).
func keyLine(data string) string {
	var key string
	n := 0
	for l := range strings.Lines(data) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, audit.VerifyKeyPrefix) {
			key, n = l, n+1
		}
	}
	if n != 1 {
		return data
	}
	return key
}

// verifyResult is one log's result in `audit verify --json`.
type verifyResult struct {
	Log string `json:"log"`
	// Node is the host whose records were verified (--node, --nodes).
	Node          string   `json:"node,omitempty"`
	OK            bool     `json:"ok"`
	Files         []string `json:"files"`
	Records       int      `json:"records"`
	Host          string   `json:"host"`
	FirstSeq      uint64   `json:"first_seq"`
	LastSeq       uint64   `json:"last_seq"`
	LastHash      string   `json:"last_hash"`
	TornTails     []uint64 `json:"torn_tails"`
	Sealed        int      `json:"sealed"`
	SealsVerified int      `json:"seals_verified"`
	SealIDs       []string `json:"seal_ids"`
	Checkpoints   int      `json:"checkpoints"`
	// CheckpointsRetained: checkpoints of records retention removed.
	CheckpointsRetained int `json:"checkpoints_retained"`
	// CheckpointedSeq: the last record a checkpoint matched (0: none);
	// those after it no checkpoint covers.
	CheckpointedSeq uint64 `json:"checkpointed_seq"`
	// RetentionUncovered: retention records after checkpointed_seq
	// (root on the node later could have written them).
	RetentionUncovered int `json:"retention_uncovered"`
	// CheckpointsSealed: keys authenticated the checkpoints counted.
	CheckpointsSealed bool `json:"checkpoints_sealed"`
	// CheckpointsLateSealed: with --key, checkpoints not sealed, made
	// while the records they name were unsealed (sealed late since),
	// that match the log (not counted in checkpoints).
	CheckpointsLateSealed int `json:"checkpoints_late_sealed"`
	// CheckpointHosts: the hosts the checkpoints counted name.
	CheckpointHosts    []string                  `json:"checkpoint_hosts"`
	CheckpointsIgnored []audit.IgnoredCheckpoint `json:"checkpoints_ignored"`
	Damage             []damageResult            `json:"damage"`
	Dropped            []audit.Dropped           `json:"dropped"`
	// LateSealed: stretches of records written unsealed that the record
	// after them sealed late.
	LateSealed []audit.LateSealed `json:"late_sealed"`
	// Repeated and Reordered: --shipped dropped records sent again and
	// put back records sent out of order.
	Repeated  int `json:"repeated"`
	Reordered int `json:"reordered"`
	// ListedStart: of Repeated, the records before a --partial copy's
	// first dropped because a damage record lists them.
	ListedStart int `json:"listed_start,omitempty"`
	// Empty: --shipped skipped empty lines.
	Empty int `json:"empty_lines"`
	// AnchorRetained: the anchor's record (--anchor SEQ:HASH) was
	// removed by retention; only that the chain goes past it was checked.
	AnchorRetained bool `json:"anchor_retained,omitempty"`
	// RenamedFrom (--nodes, --node): the hosts whose records the
	// node's chain goes on from, oldest first, verified with the
	// node's as one chain (a node renamed).
	RenamedFrom []string `json:"renamed_from,omitempty"`
	// ChainCut: the node's chain goes on through more names than
	// verify follows (see maxChain).
	ChainCut bool           `json:"chain_cut,omitempty"`
	Problem  *audit.Problem `json:"problem,omitempty"`
	Error    string         `json:"error,omitempty"`
	// Unattributed (--nodes): lines that name no node.
	Unattributed int `json:"unattributed_lines,omitempty"`
}

// damageResult is recorded damage in `audit verify --json`.
type damageResult struct {
	Seq     uint64   `json:"seq"`
	Lines   []string `json:"lines"`
	Kind    string   `json:"kind"`
	AckSeq  uint64   `json:"ack_seq,omitempty"`
	AckNote string   `json:"ack_note,omitempty"`
}

// readerMemoryLimit is the Go heap's soft limit while verify and show read
// a log.
const readerMemoryLimit = 32 << 20

// verifyCmd verifies each of logs and reports it (named: the LOGs were
// given, not the config's); host is the host
// --host chose the checkpoints of ("" for none); others counts the
// checkpoint lines of other hosts than the first, sealed by no given
// key, that were set aside without --host.
func verifyCmd(logs []string, named bool, host string, others int, opts audit.VerifyOptions, asJSON bool, stdout, stderr io.Writer) int {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(readerMemoryLimit))
	status := 0
	for _, lg := range logs {
		o := opts
		switch {
		case opts.Shipped:
			o.AckOnNode = true
		case named:
			// The command verify gives to acknowledge damage names
			// the log verified (without it, ack wrote to the
			// config's), and says that a copy's damage is
			// acknowledged in the original: nothing here tells a copy
			// (one with its lock copied too) from a log a writer
			// appends to (one whose lock was removed), and a guess
			// sent the ack to the wrong log.
			o.AckLog, _ = filepath.Abs(lg)
		}
		s, err := verifyLog(lg, o)
		ok := report(verifyResult{Log: lg}, vocab.Printable(lg), s, err, opts, asJSON, stdout, stderr)
		if !ok {
			status = 1
		}
		if others > 0 && s != nil && !asJSON {
			w, prefix := stdout, vocab.Printable(lg)+": "
			if !ok {
				w, prefix = stderr, "nsrel-hook: audit verify: "
			}
			fmt.Fprintf(w, "%snote: %d checkpoint line(s) of other hosts, sealed by no key given, set aside\n", prefix, others)
		}
		if host != "" && s != nil && s.Records > 0 && s.Host != host && !asJSON {
			// The records are the node's word for its name (sealed, with
			// keys): a checkpoint of another name is not this log's,
			// unless a given key seals it.
			w, prefix := stdout, vocab.Printable(lg)+": "
			if !ok {
				w, prefix = stderr, "nsrel-hook: audit verify: "
			}
			how := fmt.Sprintf("only the checkpoints of %s were held against the log (without --key, a checkpoint's host is its word)", vocab.Printable(host))
			if len(opts.Keys) > 0 {
				how = fmt.Sprintf("checkpoints a given key seals were held against the log whatever host they name, and of the others only those of %s", vocab.Printable(host))
			}
			fmt.Fprintf(w, "%snote: --host %s is not the host the records name (%s): %s\n", prefix, vocab.Printable(host), vocab.Printable(s.Host), how)
		}
	}
	return status
}

// report prints the result of verifying one log (or one node's records,
// named by label): a JSON line with asJSON, else lines on stdout or
// stderr. s is nil when the log could not be read. It returns whether
// the log verified.
// emptySkipped says that --shipped skipped n empty lines, and why.
func emptySkipped(n int) string {
	return fmt.Sprintf("%d empty line(s) skipped (a shipper delivers a crash's line of NUL bytes empty; the node's own log holds its bytes)", n)
}

// lists returns r with its lists empty, not null, where it has none
// (--json: `jq '.damage[]'` fails on null), the others as they are.
func (r verifyResult) lists() verifyResult {
	if r.Files == nil {
		r.Files = []string{}
	}
	r.TornTails, r.SealIDs, r.Damage, r.Dropped = []uint64{}, []string{}, []damageResult{}, []audit.Dropped{}
	r.CheckpointsIgnored, r.CheckpointHosts, r.LateSealed = []audit.IgnoredCheckpoint{}, []string{}, []audit.LateSealed{}
	return r
}

func report(res verifyResult, label string, s *audit.Summary, err error, opts audit.VerifyOptions, asJSON bool, stdout, stderr io.Writer) bool {
	res = verifyResult{Log: res.Log, Node: res.Node, RenamedFrom: res.RenamedFrom, ChainCut: res.ChainCut}.lists()
	if s != nil {
		res.Files, res.Records, res.Host, res.FirstSeq, res.LastSeq, res.LastHash = s.Files, s.Records, s.Host, s.FirstSeq, s.LastSeq, s.LastHash
		res.Sealed, res.SealsVerified, res.SealIDs, res.Checkpoints = s.Sealed, s.SealsVerified, append(res.SealIDs, s.SealIDs...), s.Checkpoints
		res.CheckpointsRetained, res.CheckpointHosts, res.CheckpointedSeq = s.CheckpointsRetained, append(res.CheckpointHosts, s.CheckpointHosts...), s.CheckpointedSeq
		res.CheckpointsSealed, res.CheckpointsIgnored = s.CheckpointsSealed, append(res.CheckpointsIgnored, s.IgnoredCheckpoints...)
		res.RetentionUncovered, res.CheckpointsLateSealed = s.RetentionUncovered, s.CheckpointsLateSealed
		res.Dropped = append(res.Dropped, s.Dropped...)
		res.LateSealed = append(res.LateSealed, s.LateSealed...)
		res.Repeated, res.Reordered, res.Empty, res.AnchorRetained, res.ListedStart = s.Repeated, s.Reordered, s.Empty, s.AnchorRetained, s.ListedStart
		for _, t := range s.TornTails {
			res.TornTails = append(res.TornTails, t.Seq)
		}
		for _, d := range s.Damage {
			dr := damageResult{Seq: d.Record.Seq, Lines: d.Lines, Kind: d.Record.Damage[0].Kind}
			if d.Ack != nil {
				dr.AckSeq, dr.AckNote = d.Ack.Seq, d.Ack.Note
			}
			res.Damage = append(res.Damage, dr)
		}
	}
	if err == nil && s != nil && s.Records == 0 {
		// An empty file (a log emptied, or the file logrotate's create
		// left once the rotated ones were removed): nothing verified,
		// which "OK: 0 records" did not say.
		err = errors.New("no record to verify: an empty log (emptied, or its files removed?)")
		if res.Node == "" {
			err = fmt.Errorf("%s: %w", label, err)
		}
	}
	res.OK = err == nil
	if err != nil {
		res.Error = err.Error()
		if p, ok := err.(*audit.Problem); ok {
			res.Problem = p
		}
	}
	if asJSON {
		// Node names and reasons can quote what a node or a container
		// wrote: escaped as show --json escapes records.
		vocab.WriteSafeJSON(stdout, res, false)
		return res.OK
	}
	prefix := ""
	if res.Node != "" {
		prefix = label + ": "
	}
	renamed := ""
	if len(res.RenamedFrom) > 0 {
		names := make([]string, len(res.RenamedFrom))
		for i, h := range res.RenamedFrom {
			names[i] = plainOrQuoted(h)
		}
		renamed = "note: renamed: its chain goes on from the records of " + strings.Join(names, ", then ") + ", verified with its own as one chain"
	}
	if res.ChainCut {
		renamed = strings.TrimPrefix(renamed+"; ", "; ") + fmt.Sprintf("note: its chain goes on through more names than verify follows (%d): verify the node's own log, one chain whatever its host names", maxChain)
	}
	switch {
	case res.Problem != nil:
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: %sFAILED: %s\n", prefix, vocab.OneLine(err))
		if renamed != "" {
			// The line named may be an old name's.
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s%s\n", prefix, renamed)
		}
		ignoredNotes(stderr, "nsrel-hook: audit verify: "+prefix, s)
		return false
	case err != nil:
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s%s\n", prefix, vocab.OneLine(err))
		return false
	}
	name := label
	fmt.Fprintf(stdout, "%s: OK: %d records (seq %d..%d) in %d file(s), last hash %s\n",
		name, s.Records, s.FirstSeq, s.LastSeq, len(s.Files), s.LastHash)
	if renamed != "" {
		fmt.Fprintf(stdout, "%s: %s\n", name, renamed)
	}
	switch {
	case s.Sealed == 0:
		fmt.Fprintf(stdout, "%s: not sealed: the hash chain was checked; anyone who can write the log could have rewritten it whole (see audit seal-init)\n", name)
	case s.SealsVerified == s.Sealed:
		fmt.Fprintf(stdout, "%s: sealed since seq %d: all %d seals verified with the key\n", name, s.FirstSealed, s.Sealed)
	case s.SealsVerified == 0:
		fmt.Fprintf(stdout, "%s: sealed since seq %d, but no key given: only the hash chain was checked (--key KEY verifies the %d seals)\n", name, s.FirstSealed, s.Sealed)
	default:
		fmt.Fprintf(stdout, "%s: sealed since seq %d: %d of %d seals verified (no key given for sealing %s)\n", name, s.FirstSealed, s.SealsVerified, s.Sealed, strings.Join(s.SealIDs, ", "))
	}
	if len(opts.Checkpoints) > 0 {
		how := " (not authenticated: without --key, whoever can write where they are collected can add one)"
		if s.CheckpointsSealed {
			how = ", each sealed by a given key"
		}
		hosts := "host " + vocab.Printable(opts.Checkpoints[0].Host)
		switch {
		case len(s.CheckpointHosts) == 1:
			hosts = "host " + vocab.Printable(s.CheckpointHosts[0])
		case len(s.CheckpointHosts) > 1:
			hosts = "hosts " + vocab.Printable(audit.QuotedFew(s.CheckpointHosts))
		}
		fmt.Fprintf(stdout, "%s: %d checkpoint(s) of %s match the log%s\n", name, s.Checkpoints, hosts, how)
		switch {
		case s.CheckpointedSeq != 0 && s.CheckpointedSeq < s.LastSeq:
			fmt.Fprintf(stdout, "%s: note: the last checkpoint, of %s, names seq %d: seq %d..%d are covered by no checkpoint (root on the node could have written them)\n",
				name, vocab.Printable(s.CheckpointedTime), s.CheckpointedSeq, s.CheckpointedSeq+1, s.LastSeq)
		case s.CheckpointedSeq == 0 && s.Records > 0:
			// Every checkpoint given names a record retention removed
			// (or none was of this log): nothing the log holds is
			// vouched for beyond its seals.
			fmt.Fprintf(stdout, "%s: note: no checkpoint names a record the log holds: seq %d..%d are covered by no checkpoint (root on the node could have written them)\n",
				name, s.FirstSeq, s.LastSeq)
		}
		if s.RetentionUncovered > 0 {
			fmt.Fprintf(stdout, "%s: note: %d retention record(s), from seq %d, come after the last checkpoint: root on the node after T could have written them and removed the files they name; only a collector's copy of those files tells (verify it)\n",
				name, s.RetentionUncovered, s.RetentionUncoveredSeq)
		}
		if s.CheckpointsLateSealed > 0 {
			fmt.Fprintf(stdout, "%s: note: %d checkpoint(s) made while the records they name were unsealed (sealed late since) match the log: not sealed themselves, so not authenticated\n", name, s.CheckpointsLateSealed)
		}
		if s.CheckpointsRetained > 0 {
			fmt.Fprintf(stdout, "%s: note: %d checkpoint(s) name records the log says retention removed: not checked against records; root on the node after T could have removed them the same way, and only a collector's copy holds them (verify it)\n", name, s.CheckpointsRetained)
		}
		ignoredNotes(stdout, name+": ", s)
	} else {
		fmt.Fprintf(stdout, "%s: no checkpoints given: records cut off the end (or a removed current file) cannot be told (--checkpoints FILE)\n", name)
	}
	if s.Empty > 0 {
		fmt.Fprintf(stdout, "%s: note: as shipped, %s\n", name, emptySkipped(s.Empty))
	}
	if s.Repeated+s.Reordered > 0 {
		fmt.Fprintf(stdout, "%s: note: as shipped, %d record(s) came out of chain order and %d line(s) repeated byte for byte: put back in order and dropped\n", name, s.Reordered, s.Repeated)
	}
	if s.ListedStart > 0 {
		fmt.Fprintf(stdout, "%s: note: %d record(s) before the copy's first were dropped because a damage record of the copy lists them as older records again; that they are copies, not the chain's own, only the damage record says (root on the node can seal one later): a copy that starts before them tells\n", name, s.ListedStart)
	}
	for _, t := range s.TornTails {
		fmt.Fprintf(stdout, "%s: note: seq %d records a torn line of %d bytes a crash left\n", name, t.Seq, t.TornBytes)
	}
	for _, d := range s.Damage {
		fmt.Fprintf(stdout, "%s: note: damage recorded at seq %d (%s, %s) acknowledged at seq %d: %s\n", name, d.Record.Seq,
			vocab.Printable(strings.Join(d.Lines, ", ")), vocab.Printable(d.Record.Damage[0].Kind), d.Ack.Seq, vocab.Printable(d.Ack.Note))
	}
	for _, d := range s.Dropped {
		fmt.Fprintf(stdout, "%s: note: seq %d..%d (%s) removed by retention\n", name, d.FirstSeq, d.LastSeq, vocab.Printable(d.File))
	}
	for _, u := range s.LateSealed {
		fmt.Fprintf(stdout, "%s: note: seq %d..%d were written unsealed (%s) and sealed late by seq %d, with the keys that would have sealed them\n", name, u.FirstSeq, u.LastSeq, vocab.Printable(u.Reason), u.By)
	}
	if s.AnchorRetained {
		fmt.Fprintf(stdout, "%s: note: the anchor's record was removed by retention: only that the chain goes on past its seq was checked\n", name)
	}
	return true
}

// ignoredNotes says how many checkpoints verify ignored, and why, one
// line per reason.
func ignoredNotes(w io.Writer, prefix string, s *audit.Summary) {
	if s == nil {
		return
	}
	var reasons []string
	count := map[string]int{}
	for _, c := range s.IgnoredCheckpoints {
		if count[c.Reason] == 0 {
			reasons = append(reasons, c.Reason)
		}
		count[c.Reason]++
	}
	for _, r := range reasons {
		fmt.Fprintf(w, "%snote: %d checkpoint(s) ignored: %s\n", prefix, count[r], r)
	}
}

// verifyLog verifies the log at path from a snapshot, holding its lock
// only to take it.
func verifyLog(path string, opts audit.VerifyOptions) (*audit.Summary, error) {
	snap, err := snapshot(path)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	return audit.VerifySnapshot(snap, opts)
}

// snapshot opens the log at path as it is now, waiting at most 10 s for
// a writer to finish its append.
func snapshot(path string) (*audit.Snapshot, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	l, err := audit.Open(abs, audit.Options{Host: "-", Version: vocab.Version})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := l.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if len(snap.Files()) == 0 {
		snap.Close()
		return nil, fmt.Errorf("%s: no such audit log", path)
	}
	return snap, nil
}

// lineRef locates a record line in a snapshot and names its container
// (an index into the order containers first appear in).
type lineRef struct {
	offset int64
	n      int32
	ctr    int32
	file   int32
}

// showKey groups the records audit show prints: by container ID, and
// those of no container (the log's events) apart from those of
// containers whose state named no ID (noID).
type showKey struct {
	id   string
	noID bool
}

// showCmd prints the records of the log at path, grouped by container in
// the order containers first appear. It reads in two passes over a
// snapshot, so that memory stays bounded by a few words per record: the
// first finds which lines belong to which container, the second reads
// and prints them a container at a time.
func showCmd(path, container string, asJSON bool, stdout, stderr io.Writer) int {
	// Collect garbage sooner rather than grow: a log of any size is read
	// in bounded memory (docs/BENCHMARKS.md has the figures).
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(readerMemoryLimit))
	snap, err := snapshot(path)
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", vocab.OneLine(err))
		return 1
	}
	defer snap.Close()
	out := bufio.NewWriterSize(stdout, 64<<10)
	match := func(id string) bool {
		return container == "" || id == container || strings.HasPrefix(id, container)
	}
	index := map[showKey]int32{}
	var order []showKey
	var refs []lineRef
	// The lines damage records list (older records again, a stale
	// block's) are no records of the chain: left out, as verify leaves
	// them out of it. A damage record comes after the lines it lists:
	// they are told once every line is read.
	listed := snap.Listed()
	// matched counts the records shown; damagedMatch the damaged lines
	// whose head names a container shown (or asked for); heads the lines
	// that read as records, at least their heads; left the lines left
	// out that damage records list.
	bad, matched, damagedMatch, heads, left := 0, 0, 0, 0, 0
	// badRefs are the damaged lines without a head, longs those longer
	// than any record: those a damage record lists are recorded damage,
	// left out, not skipped (show said "skipped ...; run audit verify"
	// of damage recorded and acknowledged).
	var badRefs []lineRef
	type longLine struct {
		file   int
		offset int64
		key    audit.LineKey
	}
	var longs []longLine
	for l, err := range snap.Lines() {
		if err != nil {
			fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", vocab.OneLine(err))
			return 1
		}
		if l.Torn || l.Long > 0 {
			bad++
			if !l.Torn {
				// Longer than any record: by its key.
				longs = append(longs, longLine{snap.FileIndex(l.File), l.Offset, audit.LineKey{SHA256: l.Sum, Bytes: int(l.Long)}})
			}
			continue
		}
		if _, torn := audit.TornLineKey(l.Data); torn {
			continue // a crash's torn line, which the record after it holds
		}
		h, _, ok := audit.HeadOf(l.Data)
		id := h.ContainerID
		if !ok {
			bad++
			badRefs = append(badRefs, lineRef{offset: l.Offset, n: int32(len(l.Data)), file: int32(snap.FileIndex(l.File))})
			continue
		}
		heads++
		listed.Line(l.File, l.Offset, l.Data)
		if !match(id) {
			continue
		}
		ci := int32(0) // --json: the log's order
		if !asJSON {
			// A container's start or stop without an ID (a state that
			// named none) is no event of the log's.
			k := showKey{id, id == "" && (audit.IsStart(h.Stage) || audit.IsStop(h.Stage))}
			var seen bool
			if ci, seen = index[k]; !seen {
				ci = int32(len(order))
				index[k] = ci
				order = append(order, k)
			}
		}
		refs = append(refs, lineRef{offset: l.Offset, n: int32(len(l.Data)), ctr: ci, file: int32(snap.FileIndex(l.File))})
	}
	index = nil
	slices.SortStableFunc(refs, func(a, b lineRef) int { return cmp.Compare(a.ctr, b.ctr) })
	files := snap.Files()
	if !listed.Damaged() {
		badRefs, longs = nil, nil // none listed
	}
	for _, ref := range badRefs {
		line, err := snap.ReadLine(int(ref.file), ref.offset, int(ref.n))
		if err != nil {
			fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", vocab.OneLine(err))
			return 1
		}
		if listed.Has(files[ref.file], ref.offset, line) {
			bad--
			left++
		}
	}
	badRefs = nil
	for _, l := range longs {
		if listed.HasKey(files[l.file], l.offset, l.key) {
			bad--
			left++
		}
	}
	var buf []byte
	wrote := false
	for start := 0; start < len(refs); {
		end := start
		for end < len(refs) && refs[end].ctr == refs[start].ctr {
			end++
		}
		var recs []*audit.Record
		for _, ref := range refs[start:end] {
			line, err := snap.ReadLine(int(ref.file), ref.offset, int(ref.n))
			if err != nil {
				fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", vocab.OneLine(err))
				return 1
			}
			if listed.Has(files[ref.file], ref.offset, line) {
				left++
				continue
			}
			r, derr := audit.Decode(line)
			if derr != nil {
				bad++
				damagedMatch++
				continue
			}
			if asJSON {
				// The lines as they are, checked; as stored (the bytes
				// hashed), with the runes that could steer a terminal
				// escaped: the same JSON values.
				matched++
				buf = append(vocab.AppendSafeJSON(buf[:0], line), '\n')
				out.Write(buf)
				continue
			}
			recs = append(recs, r)
		}
		if len(recs) == 0 {
			// Its only lines are damaged: no group without a record
			// (the note below counts them).
			start = end
			continue
		}
		matched += len(recs)
		if wrote {
			out.WriteByte('\n')
		}
		wrote = true
		k := order[refs[start].ctr]
		writeContainer(out, k.id, k.noID, recs)
		start = end
	}
	if err := out.Flush(); err != nil {
		return vocab.Written("nsrel-hook", err, stderr) // worded as every failed write
	}
	if bad > 0 && heads == 0 {
		// Nothing but damaged lines: not a log (/etc/passwd) or one
		// damaged whole.
		fmt.Fprintf(stderr, "nsrel-hook: audit show: none of the %d line(s) of %s reads as a record: a log damaged whole, or no audit log (see audit verify)\n", bad, vocab.Printable(path))
		return 1
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "nsrel-hook: audit show: skipped %d damaged or torn line(s); run `nsrel-hook audit verify`\n", bad)
	}
	if left > 0 {
		fmt.Fprintf(stderr, "nsrel-hook: audit show: left out %d line(s) that damage records list (older records again, or lines a crash or an edit damaged: no records of the chain; see `nsrel-hook audit verify`)\n", left)
	}
	if container != "" && matched == 0 {
		what := ""
		switch {
		case damagedMatch > 0:
			// A damaged line that still names it: not "no record".
			what = fmt.Sprintf(" that reads whole (%d damaged line(s) name one: see audit verify)", damagedMatch)
		case left > 0:
			what = fmt.Sprintf(" in the chain (%d line(s) that damage records list name one: see audit verify)", left)
		}
		fmt.Fprintf(stderr, "nsrel-hook: audit show: no record of a container with an ID starting with %s in %s%s\n", vocab.Quote(container), vocab.Printable(path), what)
		return 1
	}
	return 0
}

// ackCmd acknowledges the damage recorded at seq args[0] of the log
// (args[1], default the config's), with an ack record that says why.
func ackCmd(configPath string, args []string, reason string, stdout, stderr io.Writer) int {
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintln(stderr, "nsrel-hook: usage: nsrel-hook audit ack SEQ --reason TEXT [LOG] (see --help)")
		return 2
	}
	seq, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || seq == 0 {
		fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s is not a sequence number (see --help)\n", vocab.GoQuote(args[0]))
		return 2
	}
	if strings.TrimSpace(reason) == "" {
		fmt.Fprintln(stderr, "nsrel-hook: audit ack: --reason TEXT is required: say what you checked (see --help)")
		return 2
	}
	cfg, err := policy.Load(configPath)
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s\n", vocab.OneLine(err))
		return 1
	}
	path := cfg.AuditLog
	if len(args) == 2 {
		if path, err = filepath.Abs(args[1]); err != nil {
			fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s\n", vocab.OneLine(err))
			return 1
		}
	}
	if log, what, ok := audit.LogOfFile(filepath.Clean(path)); ok {
		// verify names the file damage is in, a rotated one too.
		fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s is %s of the audit log %s: give that log as LOG (its damage records are acknowledged in its current file)\n", vocab.Printable(path), what, vocab.Printable(log))
		return 1
	}
	configs := sameFile(path, cfg.AuditLog)
	var st unix.Stat_t
	if len(args) == 2 && !configs && unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
		// A hard link, maybe to a rotated file of a log (whose name
		// would have told): the ack appended there broke that log's
		// chain for good. A log's current file has one name.
		fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s has %d names (hard links): it may be a rotated file of a log under another name, whose chain an ack there would break; remove its other names first\n", vocab.Printable(path), st.Nlink)
		return 1
	}
	if configs {
		// The config's log by another name (a symlinked directory):
		// written as the config writes it, with its sealing state.
		path = cfg.AuditLog
	}
	warn := warnTo(stderr, "audit ack")
	opts := cfg.AuditOptions(vocab.Version, warn)
	other := filepath.Clean(path) != filepath.Clean(cfg.AuditLog)
	if other {
		// Not the config's log: the config's sealing state and
		// checkpoints are its log's, and one key must never seal two
		// logs (nor their checkpoints mix).
		opts = audit.Options{Version: vocab.Version, Warn: warn}
	}
	// A sealed log goes on sealed only with its own state: an unsealed
	// record after sealed ones fails verify for good, and an operator's
	// record can wait until the state is put right (a config without
	// seal_state, or whose state is missing, wrote one). Nor does the
	// ack rotate or remove files: the config given may not be the
	// writers' (keep_files 1 removed every rotated file, the damage
	// acknowledged too); the writers' next append does.
	opts.RequireSealed = true
	opts.RotateBytes, opts.KeepFiles = 0, 0
	l, err := audit.Open(path, opts)
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s\n", vocab.OneLine(err))
		return 1
	}
	// The damage record is looked for in every file, however old
	// (verify fails until it is acknowledged, and keep_files 0 keeps it
	// for ever), before the lock is taken: a long search must not hold
	// up container starts. Records do not change once written.
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	// The search reads the records of no container (damage, retention,
	// operators' records), whose seqs fall going backwards: it stops at
	// the first at or before seq, having seen any retention record of a
	// file that held seq.
	var dropped uint64
	var acked *audit.Record // the newest ack of seq met
	d, err := l.Searcher().WithContext(sctx).Everywhere().Last("", func(r *audit.Record) bool {
		if r.Stage == audit.StageRetention && r.Dropped != nil && r.Dropped.FirstSeq <= seq && seq <= r.Dropped.LastSeq && dropped == 0 {
			dropped = r.Seq
		}
		if r.Stage == audit.StageAck && r.Ref != nil && r.Ref.Seq == seq && acked == nil {
			acked = r
		}
		return r.Seq <= seq
	})
	if err == nil {
		err = notDamage(l, seq, d, dropped)
	}
	if err == nil && acked != nil && acked.Ref.Hash == d.Hash {
		// A second ack hid the first: verify says the newest, and
		// the reason the operator gave first was lost from its report.
		err = fmt.Errorf("the damage at seq %d of %s is acknowledged already, by seq %d (%s): nothing written", seq, vocab.Printable(l.Path()), acked.Seq, vocab.Quote(acked.Note))
	}
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s\n", vocab.OneLine(err))
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack := &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: reason}
	err = l.Append(ctx, ack)
	switch {
	case errors.Is(err, audit.ErrSealedLog) && other:
		err = fmt.Errorf("%s is sealed and is not the audit_log of %s: acknowledge with the config that writes it (--config)", path, cfg.File)
	case errors.Is(err, audit.ErrSealedLog):
		err = fmt.Errorf("%s is sealed and %s cannot seal it (%w): nothing written; acknowledge with the config that writes it, its seal_state in place", path, cfg.File, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit ack: %s\n", vocab.OneLine(err))
		return 1
	}
	_, err = fmt.Fprintf(stdout, "%s: damage at seq %d acknowledged by seq %d\n", vocab.Printable(path), seq, ack.Seq)
	return vocab.Written("nsrel-hook", err, stderr)
}

// notDamage says why seq is not a damage record of l that audit ack can
// acknowledge, or returns nil if d is one. d is the newest record of no
// container at or before seq, dropped the seq of a retention record that
// removed the file seq was in (0: none).
func notDamage(l *audit.Log, seq uint64, d *audit.Record, dropped uint64) error {
	path := vocab.Printable(l.Path())
	if d != nil && d.Seq == seq {
		if d.Stage == audit.StageDamaged {
			return nil
		}
		return fmt.Errorf("seq %d of %s is a %s record, not a damage record (see audit verify)", seq, path, vocab.Printable(d.Stage))
	}
	if dropped != 0 {
		return fmt.Errorf("seq %d of %s was in a rotated file that retention removed (seq %d records the removal)", seq, path, dropped)
	}
	files, err := l.Files()
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s does not exist", path)
	}
	last, err := lastSeq(files)
	switch {
	case err != nil:
		return err
	case last == 0:
		return fmt.Errorf("%s holds no record that reads whole (see audit verify)", path)
	case seq > last:
		return fmt.Errorf("seq %d is past the last record of %s (seq %d)", seq, path, last)
	}
	// No record of no container at seq, within the log: a container's
	// (a chain that reads whole has every seq up to its last).
	return fmt.Errorf("seq %d of %s is a container's record, not a damage record (see audit verify)", seq, path)
}

// lastSeq returns the seq of the last record that reads whole in files
// (chain order), 0 if none does.
func lastSeq(files []string) (uint64, error) {
	for i := len(files) - 1; i >= 0; i-- {
		for line, err := range audit.LinesBackward(files[i]) {
			if err != nil {
				return 0, err
			}
			if r, err := audit.Decode(line); err == nil {
				return r.Seq, nil
			}
		}
	}
	return 0, nil
}

// sameFile reports whether paths a and b name one existing file.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// checkpointCmd emits a checkpoint of the config's log when one is due
// by time (checkpoints.every_seconds) although nothing was appended, and
// ships it: for a timer (nsrel-checkpoint.timer) on a node whose only
// writer is the hook, which emits checkpoints at its appends, so that
// the records after the last one were covered by none for as long as
// the node stayed quiet, and root there later could remove them
// without a trace.
func checkpointCmd(configPath string, stderr io.Writer) int {
	cfg, err := policy.Load(configPath)
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit checkpoint: %s\n", vocab.OneLine(err))
		return 1
	}
	if cfg.Checkpoints == nil || cfg.Checkpoints.EverySeconds <= 0 {
		// Nothing to do, and not a failure for a timer.
		return 0
	}
	failed := false
	warn := func(err error) {
		// Not labelled a warning: the command fails (exit 1).
		failed = true
		fmt.Fprintf(stderr, "nsrel-hook: audit checkpoint: %s\n", vocab.OneLine(err))
	}
	l, err := audit.Open(cfg.AuditLog, cfg.AuditOptions(vocab.Version, warn))
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit checkpoint: %s\n", vocab.OneLine(err))
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.CheckpointIfDue(ctx); err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit checkpoint: %s\n", vocab.OneLine(err))
		return 1
	}
	if failed {
		// A destination that did not take the checkpoint, or a seal
		// missing, said above: the timer's unit fails, for whoever
		// watches it (the checkpoint counts as shipped once one
		// destination took it, and is not sent again).
		return 1
	}
	return 0
}

// sealInitCmd sets up forward-secure sealing for the config's audit log
// and prints the verification key, once.
func sealInitCmd(configPath string, replace bool, stdout, stderr io.Writer) int {
	if isDevNull(stdout) {
		// Writes to /dev/null succeed: the key would be lost with no
		// error to stop sealing. A closed stdout is /dev/null too (Go
		// opens it there at start).
		fmt.Fprintln(stderr, "nsrel-hook: audit seal-init: stdout is /dev/null: the verification key would be shown to nobody; nothing written (run it with stdout a terminal, a file or a pipe)")
		return 1
	}
	cfg, err := policy.Load(configPath)
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit seal-init: %s\n", vocab.OneLine(err))
		return 1
	}
	if cfg.SealState == "" {
		fmt.Fprintf(stderr, "nsrel-hook: audit seal-init: %s sets no seal_state (e.g. \"seal_state\": \"/var/lib/nsrel/audit.seal\")\n", vocab.Printable(cfg.File))
		return 1
	}
	l, err := audit.Open(cfg.AuditLog, cfg.AuditOptions(vocab.Version, warnTo(stderr, "audit seal-init")))
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit seal-init: %s\n", vocab.OneLine(err))
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The key is shown before sealing starts, and sealing starts only
	// when it could be: a closed pipe or a full disk on stdout must not
	// leave a log sealed with a key nobody holds. A write to a closed
	// pipe then fails with EPIPE instead of killing the process.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	defer signal.Reset(syscall.SIGPIPE)
	show := func(key audit.VerifyKey) error {
		_, err := fmt.Fprintf(stdout, `Verification key for %s, shown once: keep it off this node (a password
manager, the auditor's host); whoever has it can check the seals and make them too:

%s

`, vocab.Printable(cfg.AuditLog), key)
		return err
	}
	_, rec, err := l.StartSealingShown(ctx, replace, show)
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit seal-init: %s\n", vocab.OneLine(err))
		return 1
	}
	if _, err := fmt.Fprintf(stdout, `Sealing is on for %s (state %s), from seq %d.
Verify with: nsrel-hook audit verify --key KEY    (or --key @FILE)
`, vocab.Printable(cfg.AuditLog), vocab.Printable(cfg.SealState), rec.Seq); err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit seal-init: sealing is on from seq %d, but: %s\n", rec.Seq, vocab.OneLine(err))
		return 1
	}
	return 0
}

// isDevNull reports whether w is a file open on /dev/null (the character
// device 1:3, whatever its name).
func isDevNull(w io.Writer) bool {
	f, ok := w.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var st unix.Stat_t
	serr := errors.New("no fd")
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3)
}

// warnTo returns an audit.Options.Warn for an operator's command: one
// line on stderr per problem that did not fail the append (a sync that
// failed after the write, a checkpoint not shipped).
func warnTo(stderr io.Writer, cmd string) func(error) {
	return func(err error) {
		fmt.Fprintf(stderr, "nsrel-hook: %s: warning: %s\n", cmd, vocab.OneLine(err))
	}
}
