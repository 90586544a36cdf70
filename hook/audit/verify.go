package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Snapshot is a log's files as they were at one moment, open, each with
// the size it had then: readers (verify, show) read them without holding
// the log's lock while writers go on appending. Writers only ever append
// to the current file, rename it when they rotate, remove old rotated
// files and cut a torn last line: an open file keeps its bytes up to the
// recorded size through all of that.
type Snapshot struct {
	files []snapFile
	// log is the path of the log's current file (the last file's, for
	// files given).
	log string
}

type snapFile struct {
	name string
	f    *os.File
	size int64
}

// Snapshot takes the log's shared lock just long enough to open its
// files and note their sizes (so no append is half-written in what it
// sees), waiting for writers until ctx is done. Without a lock file
// (nothing was ever appended by a writer), or with one a writer would
// refuse (owned by another user, or anything in a directory others may
// write: a copy), it takes none. Close it.
//
// A rotated file must be owned by root or the effective user and
// writable by neither group nor others ([safefile.CheckOwner], as
// writers check the current file): the log's file is the one the caller
// named, but its rotated files are whatever the directory holds under
// their names, and in a directory others may write (a copy in /tmp)
// anyone may add one, which verify would read as the log's and report
// as tampering. Such a file is refused, with an error that wraps
// [safefile.ErrUntrusted] and is no [*Problem].
func (l *Log) Snapshot(ctx context.Context) (*Snapshot, error) {
	lf, err := l.openLock(unix.O_RDONLY)
	unlocked := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, fs.ErrPermission):
		// A reader who may read the log but not its lock (root's, 0600:
		// a member of the log's group): read without it, the files
		// listed again after they are opened, until a rotation did not
		// come between ([Log.stableSnapshot]).
		unlocked = true
	case errors.Is(err, safefile.ErrUntrusted),
		errors.Is(err, safefile.ErrNotRegular) && safefile.CheckPrivateDirs(filepath.Dir(l.path)) != nil:
		// A lock in a directory someone else may write (where another
		// user may plant a symlink or FIFO in its place: a copy in
		// /tmp), or owned by someone else: no writer appends there
		// (they refuse it), so
		// there is no append to wait for; it is a copy (a collector's,
		// its daemon's), read without a lock, as Verify reads one.
		// (Whoever can put a lock there could hold it.) Readers that
		// believe records check the files ([Snapshot.CheckTrusted]).
	case err != nil:
		return nil, err
	default:
		unlock, err := flockWait(ctx, lf, unix.LOCK_SH)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	var s *Snapshot
	if unlocked {
		s, err = l.stableSnapshot(ctx)
	} else {
		s, err = l.snapshotFiles()
	}
	if err != nil {
		return nil, err
	}
	s.log = l.path
	for _, sf := range s.files {
		if sf.name == l.path {
			continue
		}
		if err := safefile.CheckOwner(sf.f, sf.name, false); err != nil {
			owner := ownerName(sf.f)
			s.Close()
			return nil, fmt.Errorf("audit: %w%s; it would be read as a rotated file of %s: anyone who can write its directory may have put it there (verify a copy in a directory of your own)", err, owner, l.path)
		}
	}
	return s, nil
}

// snapshotFiles opens the log's files as they are listed now.
func (l *Log) snapshotFiles() (*Snapshot, error) {
	names, err := l.Files()
	if err != nil {
		return nil, err
	}
	return SnapshotFiles(names)
}

// stableSnapshot opens the log's files without its lock: a snapshot
// whose files are still the log's once they are open (the same names,
// the current file the one opened) and whose last line is whole (or was
// cut short at the same size the time before: a torn tail, not an
// append under way), taken again until it is, up to 20 times.
func (l *Log) stableSnapshot(ctx context.Context) (*Snapshot, error) {
	torn := int64(-1) // the size of the current file ending without a newline
	for range 20 {
		s, err := l.snapshotFiles()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A file listed was renamed (rotation) or removed
			// (retention) before it was opened.
		case err != nil:
			return nil, err
		default:
			names, err := l.Files()
			if err != nil {
				s.Close()
				return nil, err
			}
			if slices.Equal(names, s.Files()) && s.currentIs(l.path) {
				// A last line without its newline is an append under
				// way, unless it stays so (a torn tail).
				tail := s.unendedTail()
				if tail < 0 || tail == torn {
					return s, nil
				}
				torn = tail
			}
			s.Close()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, fmt.Errorf("audit: %s was rotated or appended to each time it was read (without its lock, %s, which this user may not read: try again, or read it as root)", l.path, l.path+lockSuffix)
}

// unendedTail returns the size of the snapshot's last file when it
// ends without a newline, -1 otherwise.
func (s *Snapshot) unendedTail() int64 {
	if len(s.files) == 0 {
		return -1
	}
	last := s.files[len(s.files)-1]
	b := make([]byte, 1)
	if last.size == 0 {
		return -1
	}
	if _, err := last.f.ReadAt(b, last.size-1); err != nil || b[0] == '\n' {
		return -1
	}
	return last.size
}

// currentIs reports whether the snapshot's last file is the file at
// path now (or both are missing).
func (s *Snapshot) currentIs(path string) bool {
	now, err := os.Lstat(path)
	if len(s.files) == 0 || s.files[len(s.files)-1].name != path {
		return errors.Is(err, fs.ErrNotExist)
	}
	opened, ferr := s.files[len(s.files)-1].f.Stat()
	return err == nil && ferr == nil && os.SameFile(now, opened)
}

// ownerName is " (owner NAME)" for f's owner, when the user database
// names it; "" otherwise.
func ownerName(f *os.File) string {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return ""
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return ""
	}
	return " (owner " + vocab.GoQuote(u.Username) + ")"
}

// SnapshotFiles opens files (in chain order) as a snapshot without any
// lock: for copies of a log, or a log nobody appends to.
func SnapshotFiles(files []string) (*Snapshot, error) {
	s := &Snapshot{}
	for _, name := range files {
		f, err := openRegular(name, unix.O_RDONLY)
		if err != nil {
			s.Close()
			return nil, err
		}
		size, err := fileSize(f)
		if err != nil {
			f.Close()
			s.Close()
			return nil, err
		}
		s.files = append(s.files, snapFile{name, f, size})
		s.log = name
	}
	return s, nil
}

// CheckTrusted checks that every file of the snapshot is one a writer
// would take for its own: owned by root or the effective user, writable
// by nobody else ([safefile.CheckOwner]), in directories nobody else may
// write ([safefile.CheckPrivateDirs]). For a reader that believes the
// records without verifying the chain (the trees' container source):
// a log someone else wrote or planted, say without a lock file in a
// directory anyone may write, where no writer takes a lock and no
// directory is checked, must not be taken for the hook's. Verify needs
// no such check: it tells a chain anyone could have written by its
// seals and checkpoints. The error wraps [safefile.ErrUntrusted].
func (s *Snapshot) CheckTrusted() error {
	for _, sf := range s.files {
		if err := safefile.CheckPrivateDirs(filepath.Dir(sf.name)); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if err := safefile.CheckOwner(sf.f, sf.name, false); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

// Files returns the names of the snapshot's files, in chain order.
func (s *Snapshot) Files() []string {
	names := make([]string, len(s.files))
	for i, f := range s.files {
		names[i] = f.name
	}
	return names
}

// Lines yields the lines of the snapshot's files, in order, each file up
// to the size it had.
func (s *Snapshot) Lines() iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		for _, sf := range s.files {
			for l, err := range linesIn(sf.f, sf.name, sf.size) {
				if !yield(l, err) || err != nil {
					return
				}
			}
		}
	}
}

// LinesBackward yields the complete lines of the snapshot's file at
// index file, up to the size it had, last line first (see
// [LinesBackward]).
func (s *Snapshot) LinesBackward(file int) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		if file < 0 || file >= len(s.files) {
			yield(Line{}, errors.New("audit: no such file in the snapshot"))
			return
		}
		sf := s.files[file]
		for l, err := range linesBackwardIn(sf.f, sf.name, sf.size) {
			if !yield(l, err) {
				return
			}
		}
	}
}

// ReadLine reads the line of the snapshot's file at index file that
// starts at offset and is n bytes long (without its newline).
func (s *Snapshot) ReadLine(file int, offset int64, n int) ([]byte, error) {
	if file < 0 || file >= len(s.files) || n < 0 || n > MaxLine || offset < 0 || offset+int64(n) > s.files[file].size {
		return nil, errors.New("audit: no such line in the snapshot")
	}
	b := make([]byte, n)
	if _, err := s.files[file].f.ReadAt(b, offset); err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", s.files[file].name, err)
	}
	return b, nil
}

// FileIndex returns the index of the file named name in the snapshot, or -1.
func (s *Snapshot) FileIndex(name string) int {
	for i, f := range s.files {
		if f.name == name {
			return i
		}
	}
	return -1
}

// Close closes the snapshot's files.
func (s *Snapshot) Close() {
	for _, f := range s.files {
		f.f.Close()
	}
	s.files = nil
}

// Problem is the first thing wrong with a chain.
type Problem struct {
	File string `json:"file"`
	// Line counts from 1 (0: the chain as a whole).
	Line int `json:"line"`
	// Seq is the sequence number the line claims, or 0 if unknown.
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// Error formats the problem as "file:line: seq N: reason", without
// ":line" for the chain as a whole and without "seq N" when unknown.
func (p *Problem) Error() string {
	s := p.File
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
	}
	if p.Seq > 0 {
		s += ": seq " + strconv.FormatUint(p.Seq, 10)
	}
	return s + ": " + p.Reason
}

// DamageReport is damage the chain recorded: the [StageDamaged] record,
// where the damaged lines are, and the acknowledgement, if any.
type DamageReport struct {
	// Record is the damage record, as [Summary] keeps records: see
	// [Summary.TornTails].
	Record *Record
	// Lines are file:line of each damaged line, as verify found them.
	Lines []string
	// Ack is the operator's [StageAck] record, nil while unacknowledged.
	Ack *Record
}

// Summary describes a chain that [Verify] checked.
type Summary struct {
	Files   []string
	Records int
	// Host is the host name of the chain's last record.
	Host string
	// FirstSeq and LastSeq are the sequence numbers of the first and last
	// record; LastHash the hash of the last.
	FirstSeq, LastSeq uint64
	LastHash          string
	// TornTails lists the torn-tail records (repaired crashes), each
	// with its seq, time, host, source, stage, prev, hash, torn (cut to
	// [MaxTornKept]), torn_bytes, torn_sha256 and first damaged line
	// alone (an ack, a [DamageReport]'s Ack, with its note and ref too):
	// the members whose size the writer chose (error, annotations, up
	// to a MiB a record) are left out, so that a log of many such
	// records does not hold verify's memory at the size of the log.
	TornTails []*Record
	// Damage lists the damage the chain recorded.
	Damage []DamageReport
	// Dropped lists the rotated files retention removed.
	Dropped []Dropped
	// AnchorRetained says that the anchor's record (VerifyOptions.
	// AnchorSeq) was among the records retention removed: only that the
	// chain goes on past its seq was checked.
	AnchorRetained bool
	// Sealed counts the sealed records, SealsVerified those whose seal a
	// key verified; FirstSealed is the first sealed record's seq.
	Sealed, SealsVerified int
	FirstSealed           uint64
	// SealIDs are the sealing keys met, in order.
	SealIDs []string
	// Checkpoints counts the checkpoints checked against the chain's
	// records; CheckpointsRetained those that name a record retention
	// removed, which only the chain's retention records account for
	// (and root on the node after T can write one: see docs/hook.md).
	Checkpoints, CheckpointsRetained int
	// CheckpointedSeq is the last record a checkpoint matched
	// (CheckpointedTime the checkpoint's time), 0 when none did: records
	// after it no checkpoint covers (root on the node later can write
	// them, sealed with the node's key).
	CheckpointedSeq  uint64
	CheckpointedTime string
	// RetentionUncovered counts the retention records after
	// CheckpointedSeq when checkpoints were given (RetentionUncoveredSeq
	// the first one's seq): root on the node after T could have written
	// them and removed the files they name, as it could any record no
	// checkpoint covers.
	RetentionUncovered    int
	RetentionUncoveredSeq uint64
	// CheckpointsSealed says that verification keys authenticated every
	// checkpoint counted in Checkpoints (their seals checked); false
	// when none was counted.
	CheckpointsSealed bool
	// CheckpointsLateSealed counts, with keys given, the checkpoints
	// not sealed, made while the records they name were unsealed, of
	// records sealed late since: not authenticated, but held against
	// the chain (they match; one that does not fails verify), not
	// counted in Checkpoints.
	CheckpointsLateSealed int
	// CheckpointHosts are the hosts the checkpoints counted name, in the
	// order met (at most 64 of them). With keys, a
	// checkpoint a given key seals counts whatever host it names.
	CheckpointHosts []string
	// IgnoredCheckpoints are checkpoints given that were not held
	// against the chain, each with why (see [VerifySnapshot]).
	IgnoredCheckpoints []IgnoredCheckpoint
	// Repeated counts the lines of a shipper's copy dropped as repeats
	// of a record byte for byte, Reordered the records that came after
	// records later in the chain, Empty its empty lines skipped (rsyslog
	// delivers a crash's line of NUL bytes empty) (VerifyOptions.Shipped).
	Repeated, Reordered, Empty int
	// ListedStart counts the records before a --partial copy's first
	// that its damage records list as older records again, dropped on
	// their word (counted in Repeated too): whether they were copies or
	// the chain's own records cannot be told from the copy.
	ListedStart int
	// LateSealed lists the stretches of records written unsealed (a
	// sealing state that could not be read for a while) that the record
	// after them sealed late ([Record.LateSeals]): sealed as any record
	// is, they count in Sealed (and SealsVerified, with keys).
	LateSealed []LateSealed
}

// LateSealed is a stretch of records written unsealed, seq FirstSeq to
// LastSeq, that record By sealed late; Reason is the first one's
// seal_error (why it was not sealed when written).
type LateSealed struct {
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	By       uint64 `json:"by"`
	Reason   string `json:"reason"`
}

// IgnoredCheckpoint is a checkpoint verify did not hold against the
// chain, and why.
type IgnoredCheckpoint struct {
	Checkpoint
	Reason string `json:"reason"`
}

// Why [VerifySnapshot] ignores a checkpoint when verification keys are
// given: nothing but a seal tells a checkpoint the node sent from one
// anyone wrote (a local user's logger(1) to the syslog socket, another
// node sending to the collector, a copied line with its seq changed).
const (
	CheckpointNotSealed = "not sealed by a given key (forged or foreign, or made before sealing started)"
	CheckpointForged    = "its seal does not check with the key (forged)"
	// CheckpointHeadForged: the record's seal checks, the checkpoint's
	// own does not: a copy of a genuine checkpoint with its host, log,
	// seq or time changed.
	CheckpointHeadForged = "its checkpoint seal does not check with the key (host, log, seq or time changed)"
	CheckpointAltered    = "its seq is not that of the record its seal names (altered)"
	CheckpointTooFar     = "sealed further beyond the log than verify derives keys (MaxSealDerive): not checked"
	// CheckpointOtherLog is a checkpoint of another log of the host
	// (without keys for the chain: with them, the seals pick).
	CheckpointOtherLog = "of another log (its \"log\" names another path than the one chosen)"
	// CheckpointRelabelled: a copy of another host's checkpoint with
	// this host's name (VerifyOptions.SealedElsewhere).
	CheckpointRelabelled = "a copy of another host's checkpoint relabelled with this host (its hash is that of a record of that host)"
)

// maxCheckpointHosts bounds Summary.CheckpointHosts: a checkpoint copied
// with its host changed keeps its seal's tag, and anyone may add copies.
const maxCheckpointHosts = 64

// MaxSealDerive is how many keys verify derives to reach the key of one
// seal, from the last key it derived for that sealing (at first its
// verification key, epoch 0). Records of a sealing take its epochs one
// by one, so the chain from seq 1 never asks for more than one; only the
// first record of a chain that starts after retention (the epochs of the
// records removed) asks for more. A key takes one epoch per record: 2^26
// records are years of container starts on a busy node (replace the key,
// seal-init --replace, before), and about a minute of deriving at a
// microsecond a key. A seal further than that is a problem, not derived
// (a crafted epoch near 2^64 would keep verify busy for ever).
const MaxSealDerive = 1 << 26

// VerifyOptions tune [Verify].
type VerifyOptions struct {
	// Partial accepts a chain that does not start at sequence number 1
	// (older rotated files removed by hand); the first record's prev is
	// then trusted. Files removed by retention need no Partial: the
	// chain records them (but a Shipped copy is a collector's: one that
	// begins with older records again, a copy of the node's files after
	// retention, is verified as the node's files, without Shipped).
	Partial bool
	// Anchor, if set, is the hash of a record known to be in the chain
	// (saved from an earlier verify): a chain without it was truncated
	// or rewritten.
	Anchor string
	// AnchorSeq, if set, is the seq of the Anchor's record: a chain that
	// goes on past it where retention removed it then passes (with
	// Summary.AnchorRetained), and one that ends before it is said to;
	// a chain whose record with the Anchor hash has another seq fails.
	// Without it, an anchor retention removed cannot be told from one
	// cut off or rewritten.
	AnchorSeq uint64
	// Keys are verification keys of the sealings that sealed the chain
	// ([InitSeal]): with the key, a seal proves its record unaltered.
	Keys []VerifyKey
	// Checkpoints are checkpoints of this log shipped off the node: every
	// one must match it (see [VerifySnapshot]); pick a host's from a
	// collector's mixed stream first ([CheckpointsOf]), keeping, with
	// Keys, every one whose seal names one of them, whatever host it
	// names (a host chosen must not set a genuine one aside). With Keys,
	// only those sealed by one of them count.
	Checkpoints []Checkpoint
	// CheckpointLog, if set, is the path the node wrote this log at, as
	// its checkpoints name it (their "log"): without Keys, checkpoints
	// of other logs are ignored. Unset, the checkpoints must all name
	// one log: a host may keep several, a collector's copy of a log is
	// at another path than the one its checkpoints name, and the "log"
	// of a checkpoint is not sealed in format 1.0 (nor in any of an
	// unsealed log), so the log's own path cannot pick. With Keys for
	// this chain, every checkpoint a key of the chain authenticates
	// judges it, whatever path it names (root on the node after T could
	// move a log it cut and name the new path; see [verifier.ofThisLog]);
	// CheckpointLog then only sets aside those of other given keys (the
	// host's other logs) that name another path.
	CheckpointLog string
	// KeysOfOthers says that Keys may be those of other chains (a
	// collector's nodes, each verified alone): a seal of another key
	// among them is not this chain's. A chain none of whose seals has a
	// key among them (or without seals) still fails, saying so: keys
	// were given, and root after T could have rewritten the whole chain
	// under a key of its own.
	KeysOfOthers bool
	// OtherChainKey, with KeysOfOthers, if set, says whether the other
	// chains' lines carry seals of a key ([ChainKeys], seals not
	// checked): only to say so when a checkpoint sealed by one of them
	// fails this chain. Such a checkpoint is not set aside as another
	// node's: a line anyone adds to a collector's stream can carry any
	// seal, and one that stole the key of records cut off this chain
	// would hide the cut.
	OtherChainKey func(SealID) bool
	// SealedElsewhere, if set, says whether c's hash is that of a
	// record of another host (a record's hash covers its host): a
	// checkpoint without checkpoint seal is then a copy of that host's
	// checkpoint relabelled with this host (anyone can make one),
	// ignored, not held against the chain.
	SealedElsewhere func(c Checkpoint) bool
	// Seals, if set, derives the keys of checkpoints beyond the chain's
	// records (made by [NewSealChecker] with Keys): verifies that share
	// one derive each key once (a checkpoint forged at a far epoch costs
	// up to a minute of deriving, once per key and not per node, with
	// --nodes). Nil: one of its own.
	Seals *SealChecker
	// Shipped says that the files are a copy a shipper delivered (a
	// collector's): records it sent again byte for byte are dropped and
	// records it sent out of order put back into chain order before the
	// chain is checked (Summary.Repeated, Summary.Reordered).
	Shipped bool
	// AckLog, if set, is the log to name in the command a problem of
	// unacknowledged damage gives (`nsrel-hook audit ack SEQ --reason
	// TEXT LOG`): the LOG the operator verified; the command says that a
	// copy's damage is acknowledged in the original. Unset, the command
	// names none, and acknowledges in the config's log.
	AckLog string
	// AckOnNode says that the files are a copy of a node's log (a
	// collector's): its damage is acknowledged in the node's own log, on
	// the node, and the command says so (an ack appended to the copy
	// acknowledges nothing the node holds).
	AckOnNode bool
	// AckConfig, if set, is the config to name in that command
	// (--config): the one verify was given, when not the default, whose
	// audit_log the command acknowledges in when it names no LOG.
	AckConfig string
}

// Verify checks the chain formed by files, in order (use [Files]); see
// [VerifySnapshot]. It reads the files without any lock: use
// [Log.Snapshot] for a log writers may be appending to.
func Verify(files []string, opts VerifyOptions) (*Summary, error) {
	s, err := SnapshotFiles(files)
	if err != nil {
		return &Summary{Files: files}, err
	}
	defer s.Close()
	return VerifySnapshot(s, opts)
}

// VerifySnapshot checks the chain in s: every line a record whose hash
// matches its bytes, sequence numbers without gaps from 1 (or from the
// end of what retention removed), each prev equal to the hash of the
// record before, and no torn line. Complete lines that do not decode
// must be covered by the [StageDamaged] record after them, and that
// damage acknowledged ([StageAck]). Seals must go on once the first
// record was sealed, with increasing epochs, and match under a key in
// opts.Keys when one is given for their sealing. Every checkpoint in
// opts.Checkpoints must name a record of the chain with its hash (and
// seal): a checkpoint beyond the last record shows records cut off the
// end (or a current or rotated file removed), a different hash a
// rewritten chain, a different seal a changed seal.
//
// Checkpoints are authenticated only by their seals. With opts.Keys, a checkpoint
// counts only if it is sealed by one of the keys and its tag checks,
// and, when the
// chain holds the record sealed at the same key and epoch with its hash,
// names that record's seq; without a checkpoint seal (which covers the
// seq), it must not name another seq than the checkpoints with one put
// its record at (those of the same record seal, or of earlier records
// of its key: see sealedSeqs), nor be the copy of another host's that
// opts.SealedElsewhere says; the others go to Summary.IgnoredCheckpoints
// with the reason (Checkpoint… constants) and do not judge the chain, and
// if none counts the chain fails. Without keys every checkpoint counts.
// A counting checkpoint whose key seals no record left in the chain
// fails it. Without keys, the checkpoints of another log of the host
// (opts.CheckpointLog) are ignored too; with keys, the path a checkpoint
// names sets none aside.
// It returns the summary and, if the chain does not hold, the first
// [*Problem].
func VerifySnapshot(snap *Snapshot, opts VerifyOptions) (*Summary, error) {
	v := &verifier{s: &Summary{Files: snap.Files()}, opts: opts, keys: map[SealID]*keyChain{}, at: map[uint64]placed{}}
	for _, k := range opts.Keys {
		v.keys[k.ID] = &keyChain{id: k.ID, key: k.Key}
	}
	v.offsets, v.firstBy = map[SealID]uint64{}, map[SealID]*Problem{}
	v.want = append(v.want, opts.Checkpoints...)
	v.cps = make([]cpSeal, len(v.want))
	v.wantSeq = make(map[uint64]bool, len(v.want))
	for i, c := range v.want {
		v.wantSeq[c.Seq] = true
		p, err := ParseSeal(c.Seal)
		if c.Seal == "" || err != nil {
			continue
		}
		v.cps[i].seal, v.cps[i].parsed = p, true
		v.cps[i].head, v.cps[i].headParsed = headSealOf(&v.want[i], p)
		if kc, ok := v.keys[p.ID]; ok {
			kc.pending = append(kc.pending, i)
			if v.cps[i].headParsed {
				kc.headPending = append(kc.headPending, i)
			}
			if v.bySeal == nil {
				v.bySeal = map[sealAt][]int{}
			}
			v.bySeal[sealAt{p.ID, p.Epoch}] = append(v.bySeal[sealAt{p.ID, p.Epoch}], i)
		}
	}
	for _, kc := range v.keys {
		slices.SortStableFunc(kc.pending, func(a, b int) int { return cmp.Compare(v.cps[a].seal.Epoch, v.cps[b].seal.Epoch) })
		slices.SortStableFunc(kc.headPending, func(a, b int) int { return cmp.Compare(v.cps[a].head.Epoch, v.cps[b].head.Epoch) })
	}
	if opts.Shipped {
		// A record sent again is dropped; on the node, a copy of one
		// at the end of the log (stale blocks a crash exposed) is a
		// damaged line a damage record lists: the copy holds it.
		repeat := func(l Line) { v.shipped.repeated(LineKeyOf(l.Data)) }
		if p := shippedLines(snap, &opts, v.s, v.decoded, repeat); p != nil {
			return v.s, p
		}
	} else {
		v.startListed, v.startBefore = startListed(snap)
		// A record missing where it belongs is looked for in the rest
		// of the files: there, the records are out of order, as a
		// shipper's copy may hold them.
		var gap *Problem
		for l, err := range snap.Lines() {
			if gap != nil {
				if err != nil {
					break
				}
				if peekSeq(l.Data) == v.missing {
					gap.Reason = fmt.Sprintf("expected seq %d after seq %d, which comes later, at %s:%d (records reordered; if this is a shipper's copy, which may hold records sent again or out of order, verify it as shipped)", v.missing, v.missing-1, l.File, l.Number)
					break
				}
				continue
			}
			if err != nil {
				return v.s, &Problem{File: l.File, Line: l.Number, Reason: err.Error()}
			}
			if p := v.line(l); p != nil {
				if v.missing == 0 {
					return v.s, p
				}
				gap = p
			}
		}
		if gap != nil {
			return v.s, gap
		}
		if p := v.farCheck(snap); p != nil {
			return v.s, p
		}
	}
	if p := v.end(); p != nil {
		return v.s, p
	}
	return v.s, nil
}

// damagedAt is an undecodable line verify met.
type damagedAt struct {
	file   string
	line   int
	seq    uint64
	sum    string
	bytes  int
	reason string
	kind   string
}

// key is the line's key, as a damage record lists it.
func (d damagedAt) key() LineKey { return LineKey{d.sum, d.bytes} }

// cpSeal is a checkpoint's seal and what verify learnt of it.
type cpSeal struct {
	seal   ParsedSeal
	parsed bool
	// checked: the tag was compared under the key of its epoch; tagOK:
	// it matched.
	checked, tagOK bool
	// rec is the record of the chain sealed with the same key and epoch
	// (its seal checked), if the chain holds it: its seq and hash.
	rec *Ref
	// head is the checkpoint's own seal (format 1.1), headParsed when it
	// is of the same key as seal, at the next epoch; headChecked and
	// headOK as for the tag.
	head                            ParsedSeal
	headParsed, headChecked, headOK bool
}

// sealAt is a key and an epoch of it.
type sealAt struct {
	id    SealID
	epoch uint64
}

// placed is a record a checkpoint names: what the checkpoint is checked
// against, and where the record is (not the whole record: a year of
// checkpoints names a hundred thousand records).
type placed struct {
	ok         bool
	hash, seal string
	file       string
	line       int
}

type verifier struct {
	dropped *droppedIdx // built once the chain is read ([verifier.droppedIndex])
	// retentionSeqs are the seqs of the retention records, in order.
	retentionSeqs []uint64
	s             *Summary
	opts          VerifyOptions
	// prev is the last good record; first the first.
	prev, first *Record
	lastFile    string
	damaged     []damagedAt // since the last good record
	// Sealing: the current sealing and its last epoch.
	sealID    SealID
	sealed    bool
	lastEpoch uint64
	keys      map[SealID]*keyChain
	// offsets are, for each key, seq minus epoch of its records (the seq
	// of the record that introduced it: every record takes the next
	// epoch), and firstBy where its first record is.
	offsets map[SealID]uint64
	firstBy map[SealID]*Problem
	// unsealed is the highest seq of a record without a seal (none
	// sealed late).
	unsealed uint64
	// run is the stretch of unsealed records met since the last sealed
	// one, waiting for the record after it, which may seal them late.
	run *unsealedRun
	// lateCps are the checkpoints, not sealed, of records sealed late
	// (with keys given: see end).
	lateCps  []Checkpoint
	anchored bool
	// anchorAt is the seq of the record with the anchor hash, once met.
	anchorAt uint64
	// authed: keys for this chain authenticate the checkpoints (see
	// authenticCheckpoints).
	authed bool
	// whole are the checkpoints whose checkpoint seal checked: their
	// host, log and seq are the node's.
	whole map[Checkpoint]bool
	// at keeps the records checkpoints ask about, by seq.
	want []Checkpoint
	// wantSeq holds the seqs the checkpoints name, at those of the
	// records met.
	wantSeq map[uint64]bool
	at      map[uint64]placed
	// cps are the seals of want (same index), and bySeal the checkpoints
	// sealed with a given key, by key and epoch.
	cps    []cpSeal
	bySeal map[sealAt][]int
	// damageBySeq indexes s.Damage.
	damageBySeq map[uint64]int
	// missing is the seq the first gap lacks.
	missing uint64
	// torn is a line ended with TornMark, met after the last good
	// record, waiting for its torn-tail record. In a shipper's copy such
	// lines keep no place: shipped matches them (see shippedTorn).
	torn    *tornLine
	shipped shippedTorn
	// absent are the files (base names) of damaged lines that damage
	// records list and the files given lack: retention must have
	// removed them (checked at the end).
	absent map[string]absentLines
	// hashes are the hashes of the last records of the chain, by seq:
	// what an older record met again is compared with.
	hashes hashRing
	// firstLine is where the first record is and its key, firstAt its
	// file and line.
	firstLine DamagedLine
	firstAt   string
	// startListed are the lines before the chain's first record that
	// the damage record after them lists, and startBefore that record's
	// seq (see startListed).
	startListed map[lineAt]bool
	startBefore uint64
	// far are the older records again met whose seq's record was too
	// far back for hashes: compared in a second pass.
	far map[farKey]farLine
	// startCopies are the records of those lines met, in order (the
	// first's seq and prev, the last's seq and hash), and whether each
	// goes on from the one before: retention by an nsrel before the
	// pre-pass described the file before them by the first.
	startCopies         int
	copyFirst, copyLast uint64
	copyPrev, copyHash  string
	copiesLinked        bool
	// removedCopies are the older records again whose seq's record is
	// not in the files given (before the chain's first record: removed
	// by retention), by seq: held against the checkpoints that name
	// those seqs (see removedCopy).
	removedCopies map[uint64][]copyLine
	// checkpointed are the seqs the checkpoints given name (made at the
	// first removedCopy).
	checkpointed map[uint64]bool
}

// copyLine is an older record again: its hash and where it is.
type copyLine struct {
	hash string
	file string
	line int
}

// removedCopy keeps r, an older record again at line l whose seq's
// record the files given lack, for the checkpoints that name its seq:
// root on the node later can file a record it made up, with the seq of
// one retention removed, as an older record again (a damage record,
// sealed with the key it holds, and an ack pass it), where readers
// that take it for a copy would show it; it must be that record's copy.
// Only those of a seq a checkpoint given names are kept (so many as the
// checkpoints: a cap on them let root file that many made-up copies of
// other seqs first, and the one a checkpoint names pass unchecked).
func (v *verifier) removedCopy(l Line, r *Record) {
	if v.checkpointed == nil {
		v.checkpointed = map[uint64]bool{}
		for _, c := range v.opts.Checkpoints {
			v.checkpointed[c.Seq] = true
		}
	}
	if !v.checkpointed[r.Seq] {
		return
	}
	if v.removedCopies == nil {
		v.removedCopies = map[uint64][]copyLine{}
	}
	if cs := v.removedCopies[r.Seq]; !slices.ContainsFunc(cs, func(c copyLine) bool { return c.hash == r.Hash }) {
		v.removedCopies[r.Seq] = append(cs, copyLine{r.Hash, l.File, l.Number})
	}
}

// startListed finds where the files given begin with lines that the
// damage record after them lists, records among them: older records
// again first in a rotated file, after a rotated file a crash zeroed
// whole (two crashes in a row), once retention removed the files
// before them. The append that wrote the damage record judged them so;
// verify takes them for damaged lines too, where it would take the
// first of them for the chain's first record and fail. It returns the
// lines (see [listedBefore]) and the damage record's seq.
func startListed(snap *Snapshot) (map[lineAt]bool, uint64) {
	files := snap.Files()
	if len(files) == 0 {
		return nil, 0
	}
	listed, d := listedBefore(snap.Lines(), filepath.Base(files[len(files)-1]), maxDamagedLines)
	if d == nil {
		return nil, 0
	}
	return listed, d.Seq
}

// listedBefore reads lines (of a log's files, from the first) for the
// first damage record, among the first max lines, that
// lists every line before it (seal-start records right before it
// aside: they open its write), and at least one record: those lines
// are no records of the chain, and the damage record is the first that
// is. current is the base name of the log's current file (a damage
// record names so the lines of the file it was written to). Lines are
// matched by file and offset; verify's covers checks their keys. It
// returns nil when lines begin with a record of seq 1 or no such
// damage record comes.
func listedBefore(lines iter.Seq2[Line, error], current string, max int) (map[lineAt]bool, *Record) {
	var before []lineAt
	seals := 0 // seal-start records right before the line
	records := false
	for l, err := range lines {
		if err != nil || len(before) == max {
			return nil, nil
		}
		at := lineAt{filepath.Base(l.File), l.Offset}
		h, ok := PeekHead(l.Data)
		if ok && h.Stage == StageDamaged && damageHead(l.Data) && records {
			if r, err := Decode(l.Data); err == nil && r.Stage == StageDamaged && r.Prev != "" && r.Seq > 1 {
				lists := map[lineAt]bool{}
				for _, d := range r.Damage {
					f := d.File
					if f == current {
						// Written when the file holding the line was
						// the current one.
						f = at.file
					}
					lists[lineAt{f, d.Offset}] = true
				}
				all := true
				for _, b := range before[:len(before)-seals] {
					if all = lists[b]; !all {
						break
					}
				}
				if all {
					out := map[lineAt]bool{}
					for _, b := range before[:len(before)-seals] {
						out[b] = true
					}
					return out, r
				}
			}
		}
		if ok && h.Stage == StageSealStart {
			seals++
		} else {
			seals = 0
			// A record not counting the seal-start records, which
			// stand right before a damage record when they do.
			records = records || ok
		}
		before = append(before, at)
	}
	return nil, nil
}

// farKey is an older record again whose seq's record was more than
// maxRingHashes records back: its seq and the digest of its hash;
// farLine where it first came, and the seq of the record before it.
type farKey struct {
	seq  uint64
	hash digest
}

type farLine struct {
	file  string
	line  int
	after uint64
}

// maxFar bounds the older records again (distinct seq and hash) that
// farCheck compares: past it verify fails, rather than pass one
// unchecked.
const maxFar = 1 << 20

// farCheck reads the files again for the records of the seqs of v.far
// (older records again further back than the ring of hashes reaches) and
// fails the first whose record has another hash: forged, not an older
// record again. The chain's record of a seq is the first record line of
// that seq in the files, as no older record of it can come before it.
func (v *verifier) farCheck(snap *Snapshot) *Problem {
	if len(v.far) == 0 {
		return nil
	}
	want := map[uint64][]farKey{}
	for k := range v.far {
		want[k.seq] = append(want[k.seq], k)
	}
	for l, err := range snap.Lines() {
		if err != nil {
			return &Problem{File: l.File, Line: l.Number, Reason: "second read, for the records of older records again: " + err.Error()}
		}
		if len(want) == 0 {
			break
		}
		seq, ok := headSeq(l.Data)
		if !ok || want[seq] == nil {
			continue
		}
		r, err := Decode(l.Data)
		if err != nil || r.Seq != seq {
			continue
		}
		for _, k := range want[seq] {
			if k.hash != hashDigest(r.Hash) {
				f := v.far[k]
				return replacedProblem(f.file, f.line, k.seq, f.after, l.File, l.Number)
			}
		}
		delete(want, seq)
	}
	for seq, ks := range want {
		f := v.far[ks[0]]
		return &Problem{File: f.file, Line: f.line, Seq: seq, Reason: fmt.Sprintf("seq %d again after seq %d, and no record of seq %d in the files on a second read (changed while verify read them?)", seq, f.after, seq)}
	}
	return nil
}

// replacedProblem reports the line at file:line, a record of seq after
// the record of seq after, with other bytes than the chain's record of
// that seq at origFile:origLine.
func replacedProblem(file string, line int, seq, after uint64, origFile string, origLine int) *Problem {
	return &Problem{File: file, Line: line, Seq: seq, Reason: fmt.Sprintf("seq %d again after seq %d, with other bytes than the record of seq %d at %s:%d (a record replaced or forged, not an older record again)", seq, after, seq, origFile, origLine)}
}

// listed reports whether a damage record the chain holds lists the line
// at at's offset, of its key.
func (v *verifier) listed(at DamagedLine) bool {
	for _, rep := range v.s.Damage {
		for _, d := range rep.Record.Damage {
			if d.Offset == at.Offset && d.Key() == at.Key() {
				return true
			}
		}
	}
	return false
}

// hashRing remembers the hashes of the last maxRingHashes records by seq,
// and where each is.
type hashRing struct {
	ring []ringHash
}

type ringHash struct {
	seq  uint64
	hash digest
	file string
	line int
}

const maxRingHashes = 1 << 16

func (h *hashRing) add(seq uint64, hash digest, file string, line int) {
	if h.ring == nil {
		h.ring = make([]ringHash, maxRingHashes)
	}
	h.ring[seq%maxRingHashes] = ringHash{seq, hash, file, line}
}

func (h *hashRing) at(seq uint64) (ringHash, bool) {
	if h.ring == nil {
		return ringHash{}, false
	}
	e := h.ring[seq%maxRingHashes]
	return e, e.seq == seq && seq != 0
}

// hashDigest is the first bytes of a record's hex hash.
func hashDigest(hash string) digest {
	var d digest
	hex.Decode(d[:], []byte(hash[:min(len(hash), 2*len(d))]))
	return d
}

// tornLine is a torn line an append ended with [TornMark].
type tornLine struct {
	at  damagedAt
	key TornKey
}

// TornKey is a torn line's length and SHA-256 as its torn-tail record
// holds them (format 1.3: a record without the digest, older, matches no
// line).
type TornKey struct {
	Bytes int
	Sum   string
}

// TornLineKey tells whether line (without its newline) is a torn line an
// append ended with [TornMark], and its key if so.
func TornLineKey(line []byte) (TornKey, bool) {
	n := len(line) - len(TornMark)
	if n <= 0 || !bytes.HasSuffix(line, []byte(TornMark)) {
		return TornKey{}, false
	}
	sum := sha256.Sum256(line[:n])
	return TornKey{n, hex.EncodeToString(sum[:])}, true
}

// TornKey is the key of the torn line a torn-tail record holds.
func (r *Record) TornKey() TornKey { return TornKey{r.TornBytes, r.TornSHA256} }

// flushTorn makes the torn line waiting, if any, a damaged line: its
// torn-tail record did not follow it.
func (v *verifier) flushTorn() {
	if v.torn == nil {
		return
	}
	d := v.torn.at
	d.reason += " (ended as a torn line, but its torn-tail record does not follow)"
	v.damaged = append(v.damaged, d)
	v.torn = nil
}

func (v *verifier) line(l Line) *Problem {
	if l.Torn {
		v.lastFile = l.File
		return &Problem{File: l.File, Line: l.Number, Reason: fmt.Sprintf("torn last line (%d bytes without a newline: a write was cut short, or the log was truncated); the %d record(s) before it are intact", max(int64(len(l.Data)), l.Long), v.s.Records)}
	}
	r, derr := decodeLine(l)
	return v.decoded(l, r, derr)
}

// decoded checks line l, which decoded to r or did not (derr); a torn
// line or one too long comes with neither.
func (v *verifier) decoded(l Line, r *Record, derr error) *Problem {
	if r == nil && derr == nil {
		return v.line(l)
	}
	v.lastFile = l.File
	if derr == nil && v.prev == nil && r.Seq < v.startBefore && v.startListed[lineAt{filepath.Base(l.File), l.Offset}] {
		// Before the chain's first record, a line the damage record
		// after it lists (see startListed): an older record again, as
		// the append that wrote that record judged.
		if v.startCopies == 0 {
			v.copyFirst, v.copyPrev, v.copiesLinked = r.Seq, r.Prev, true
		} else {
			v.copiesLinked = v.copiesLinked && r.Seq == v.copyLast+1 && r.Prev == v.copyHash
		}
		v.startCopies++
		v.copyLast, v.copyHash = r.Seq, r.Hash
		v.removedCopy(l, r)
		r, derr = nil, &ReplayError{r.Seq, v.startBefore - 1, false}
	}
	if derr == nil && !v.opts.Shipped && v.prev != nil && r.Seq <= v.prev.Seq {
		// An older record again (a shipper's copy may hold records sent
		// again: verify drops those that repeat one byte for byte).
		// One with other bytes than the chain's record of its seq is
		// no crash's: forged.
		at, ok := v.hashes.at(r.Seq)
		if ok && at.hash != hashDigest(r.Hash) {
			return replacedProblem(l.File, l.Number, r.Seq, v.prev.Seq, at.file, at.line)
		}
		if !ok && r.Seq >= v.s.FirstSeq {
			// Its record is further back than the ring reaches: compared
			// after the chain is read, in a second pass (see farCheck),
			// each seq and hash once.
			k := farKey{r.Seq, hashDigest(r.Hash)}
			if _, seen := v.far[k]; !seen {
				if len(v.far) == maxFar {
					return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("more than %d older records again whose records are further back than %d records: too many to compare with them", maxFar, maxRingHashes)}
				}
				if v.far == nil {
					v.far = map[farKey]farLine{}
				}
				v.far[k] = farLine{l.File, l.Number, v.prev.Seq}
			}
		}
		if r.Seq < v.s.FirstSeq {
			v.removedCopy(l, r)
		}
		r, derr = nil, &ReplayError{r.Seq, v.prev.Seq, false}
	}
	if derr != nil {
		if errors.Is(derr, ErrNewerFormat) {
			return &Problem{File: l.File, Line: l.Number, Seq: peekSeq(l.Data), Reason: derr.Error() + "; verify with the nsrel that wrote it"}
		}
		d := damagedLine(filepath.Base(l.File), l, derr)
		at := damagedAt{l.File, l.Number, peekSeq(l.Data), d.SHA256, d.Bytes, derr.Error(), d.Kind}
		key, torn := TornLineKey(l.Data)
		if v.opts.Shipped {
			v.shipped.met(at)
			if torn {
				// A shipper's copy may hold a torn line anywhere: it is
				// matched with its torn-tail record, or with the
				// damage record that lists it, wherever they are.
				accounted, p := v.shipped.line(key, at)
				if accounted {
					v.s.Reordered++
				}
				return p
			}
		}
		v.flushTorn()
		if len(v.damaged) == maxDamagedLines {
			return v.damageProblem("more damaged lines than an append records")
		}
		if torn {
			v.torn = &tornLine{at, key}
		} else {
			v.damaged = append(v.damaged, at)
		}
		return nil
	}
	// A torn line's record comes right after it (a seal-start record
	// that introduces the key sealing it may come first); the damage
	// record of the damaged lines before it, if any, after it.
	tornEnds := false
	listed := r.Damage // the damaged lines it lists that keep their place
	var elsewhere []DamagedLine
	switch {
	case v.opts.Shipped && r.Stage == StageTornTail:
		v.shipped.record(r)
		tornEnds = true
	case v.opts.Shipped && r.Stage == StageDamaged:
		listed, elsewhere = v.shipped.damage(r, v.damaged)
	case v.torn != nil && r.Stage == StageTornTail && r.TornKey() == v.torn.key:
		v.torn, tornEnds = nil, true
	case v.torn == nil && len(v.damaged) == 0 && r.Stage == StageTornTail && r.TornSHA256 != "" && r.TornBytes+len(TornMark) < MaxLine:
		// The append ended the torn line with the mark and wrote this
		// record right after it, in the same write and file: the line
		// is gone. (Damaged lines before it fail below.)
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("torn-tail record of a torn line of %d bytes, but no line ended with the torn mark and holding them comes right before it (deleted?)", r.TornBytes)}
	case r.Stage != StageSealStart:
		v.flushTorn()
	}
	// The first record a new sealing key seals introduces it, so an
	// append that records damage and starts sealing an unsealed log
	// (seal-init after a crash) writes the seal-start record before the
	// damage record. Not after sealed records: the damage record, sealed
	// with the new key, would no longer show that the damaged lines had
	// been sealed (their keys destroyed: no crash explains that).
	sealStartsHere := r.Stage == StageSealStart && (v.prev == nil || v.prev.Seal == "")
	var absent []DamagedLine
	chainStart := v.prev == nil || v.prev == v.first && v.prev.Stage == StageSealStart
	if chainStart && r.Prev != "" && r.Stage == StageDamaged && len(listed) > len(v.damaged) {
		// The chain starts after files retention removed, and the
		// damage record's first lines were at the end of the last of
		// them; the lines it lists after those must be the damaged
		// lines met.
		n := len(listed) - len(v.damaged)
		absent, listed = listed[:n], listed[n:]
		v.noteAbsent(absent, r.Seq, true)
	}
	if p := replacedListed(l, r); p != nil {
		return p
	}
	if p := pathNamed(l, r); p != nil {
		return p
	}
	if len(v.damaged) > 0 && !sealStartsHere && !tornEnds {
		// At the chain's start the damage record may follow records
		// retention removed: end() checks its prev as any first record's.
		if r.Stage != StageDamaged || !v.covers(listed) || v.prev == nil && r.Prev != "" && r.Seq == 1 || v.prev != nil && (r.Prev != v.prev.Hash || r.Seq != v.prev.Seq+1) {
			extra := ""
			if r.Stage == StageDamaged && len(listed) != len(v.damaged) {
				extra = fmt.Sprintf("the damage record after them (seq %d) lists %d", r.Seq, len(listed))
			}
			return v.damageProblem(extra)
		}
		rep := DamageReport{Record: r, Lines: notGiven(absent)}
		for _, d := range v.damaged {
			rep.Lines = append(rep.Lines, d.file+":"+strconv.Itoa(d.line))
		}
		for _, d := range elsewhere {
			rep.Lines = append(rep.Lines, fmt.Sprintf("%s at offset %d, elsewhere in the copy", d.File, d.Offset))
		}
		v.addDamage(rep)
		v.damaged = nil
	} else if r.Stage == StageDamaged && len(r.Damage) > 0 && !sealStartsHere {
		// Its lines are not in the files given: in a file retention
		// removed, or dropped as repeats from a shipper's copy (two
		// crashes can zero lines of one length). The damage still
		// wants its acknowledgement. Or the chain's first record, an
		// older record again (end checks it against retention's).
		lines := r.Damage
		var first []string
		if v.prev != nil && v.prev == v.first {
			lines = slices.DeleteFunc(slices.Clone(lines), func(d DamagedLine) bool { return d.Offset == v.firstLine.Offset && d.Key() == v.firstLine.Key() })
			if len(lines) < len(r.Damage) {
				first = []string{v.firstAt}
			}
		}
		v.noteAbsent(lines, r.Seq, v.prev == nil || v.prev == v.first && v.prev.Stage == StageSealStart)
		v.addDamage(DamageReport{Record: r, Lines: append(first, notGiven(lines)...)})
	}
	if p := v.chain(l, r); p != nil {
		return p
	}
	if p := v.seal(l, r); p != nil {
		return p
	}
	switch r.Stage {
	case StageTornTail:
		v.s.TornTails = append(v.s.TornTails, summaryRecord(r))
	case StageRetention:
		if r.Dropped != nil {
			v.s.Dropped = append(v.s.Dropped, *r.Dropped)
			v.retentionSeqs = append(v.retentionSeqs, r.Seq)
		}
	case StageAck:
		if r.Ref != nil {
			if i, ok := v.damageBySeq[r.Ref.Seq]; ok && v.s.Damage[i].Record.Hash == r.Ref.Hash {
				ack := summaryRecord(r)
				ack.Note, ack.Ref = r.Note, r.Ref
				v.s.Damage[i].Ack = ack
			}
		}
	}
	if v.wantSeq[r.Seq] {
		v.at[r.Seq] = placed{true, r.Hash, r.Seal, l.File, l.Number}
	}
	v.hashes.add(r.Seq, hashDigest(r.Hash), l.File, l.Number)
	if v.first == nil {
		v.first = r
		v.s.FirstSeq = r.Seq
		v.firstLine, v.firstAt = DamagedLine{Offset: l.Offset}, l.File+":"+strconv.Itoa(l.Number)
		k := LineKeyOf(l.Data)
		v.firstLine.Bytes, v.firstLine.SHA256 = k.Bytes, k.SHA256
	}
	v.s.Records++
	v.s.LastSeq, v.s.LastHash, v.s.Host = r.Seq, r.Hash, r.Host
	if r.Hash == v.opts.Anchor && !v.anchored {
		v.anchored, v.anchorAt = true, r.Seq
	}
	v.prev = r
	return nil
}

// replacedListed fails a damage record r, on line l, that lists a
// record of a seq the chain had with other bytes: forged, wherever the
// line is (met, removed by retention, elsewhere in a copy).
func replacedListed(l Line, r *Record) *Problem {
	if r.Stage != StageDamaged {
		return nil
	}
	for _, d := range r.Damage {
		if d.Kind == "replaced" {
			return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("the damage record lists a record of a seq the chain had, with other bytes (%s at offset %d: %s): forged, not left by a crash; acknowledging does not clear this", d.File, d.Offset, d.Reason)}
		}
	}
	return nil
}

// pathNamed fails a damage or retention record r, on line l, that names
// a file by a path (writers name the log's files by their base names
// alone), and a retention record of a file of no rotated file's name
// (retention removes rotated files only, LOG.NNNNNNNNNNNN). Root on the
// node later, with the current sealing state, made up a retention record
// and a damage record naming the log's current file by its path, listing
// a sealed record of the chain at its place: verify took the line for
// one in a file retention removed, and the readers, placing the path's
// base name, left the record out.
func pathNamed(l Line, r *Record) *Problem {
	var names []string
	for _, d := range r.Damage {
		names = append(names, d.File)
	}
	if r.Dropped != nil {
		names = append(names, r.Dropped.File)
	}
	for _, name := range names {
		if namedByPath(name) {
			return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("the %s record names the file %s by a path: a writer names the log's files by their names alone (made up)", r.Stage, vocab.Quote(name))}
		}
	}
	if r.Dropped != nil {
		if _, ok := rotatedSeq(filepath.Ext(r.Dropped.File)); !ok {
			return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("the retention record names %s, no rotated file's name (a log's name, a dot and 12 to 20 digits): retention removes rotated files only (made up)", vocab.Quote(r.Dropped.File))}
		}
	}
	return nil
}

// noteAbsent notes the files of damaged lines the record seq lists that
// the files given lack (a shipper's copy needs none: it drops repeats).
func (v *verifier) noteAbsent(lines []DamagedLine, seq uint64, atStart bool) {
	if v.opts.Shipped {
		return
	}
	if v.absent == nil {
		v.absent = map[string]absentLines{}
	}
	for _, d := range lines {
		if _, ok := v.absent[d.File]; !ok {
			v.absent[d.File] = absentLines{seq, atStart}
		}
	}
}

// absentLines says which damage record (seq) lists lines of a file the
// files given lack, and whether it is at the start of the chain given
// (where --partial excuses them: files removed by hand).
type absentLines struct {
	seq     uint64
	atStart bool
}

// notGiven names damaged lines that are not in the files given.
func notGiven(lines []DamagedLine) []string {
	var out []string
	for _, d := range lines {
		out = append(out, fmt.Sprintf("%s at offset %d, not in the files given", d.File, d.Offset))
	}
	return out
}

// addDamage adds rep to the damage the chain recorded, for its ack.
func (v *verifier) addDamage(rep DamageReport) {
	if v.damageBySeq == nil {
		v.damageBySeq = map[uint64]int{}
	}
	v.damageBySeq[rep.Record.Seq] = len(v.s.Damage)
	rep.Record = summaryRecord(rep.Record)
	v.s.Damage = append(v.s.Damage, rep)
}

// summaryRecord is r as [Summary] keeps it (see [Summary.TornTails]).
// Kept whole, 600 torn-tail records of 900 KB each held 552 MB of a
// verify's memory (a review found it): a chain root on a node can write,
// and ship to a collector.
func summaryRecord(r *Record) *Record {
	c := &Record{Format: r.Format, Seq: r.Seq, Time: r.Time, Host: r.Host, Source: r.Source, Stage: r.Stage, Prev: r.Prev, Hash: r.Hash,
		Torn: vocab.Cut(r.Torn, MaxTornKept), TornBytes: r.TornBytes, TornSHA256: r.TornSHA256}
	if len(r.Damage) > 0 {
		c.Damage = []DamagedLine{r.Damage[0]}
	}
	return c
}

// covers reports whether a damage record lists exactly the damaged lines
// met since the last good record.
func (v *verifier) covers(list []DamagedLine) bool {
	if len(list) != len(v.damaged) {
		return false
	}
	for i, d := range list {
		if d.Key() != v.damaged[i].key() {
			return false
		}
	}
	return true
}

// damageProblem reports the first damaged line not covered by a damage
// record, in words that tell a crash from an edit where the bytes allow.
func (v *verifier) damageProblem(extra string) *Problem {
	d := v.damaged[0]
	reason := d.reason
	switch d.kind {
	case "zeroed":
		reason += " (NUL bytes: what a crash leaves where data had not reached the disk)"
	case "edited":
		// The reason says so.
	case "replayed":
		reason += " (records reordered or repeated; if this is a shipper's copy, which may hold records sent again or out of order, verify it as shipped)"
	default:
		reason += " (a crash or an edit)"
	}
	if len(v.damaged) > 1 {
		reason += fmt.Sprintf("; %d damaged lines in a row", len(v.damaged))
	}
	if extra != "" {
		reason += "; " + extra
	}
	return &Problem{File: d.file, Line: d.line, Seq: d.seq, Reason: reason}
}

// chain checks r's place in the chain.
func (v *verifier) chain(l Line, r *Record) *Problem {
	prev := v.prev
	switch {
	case prev != nil && r.Seq != prev.Seq+1:
		v.missing = prev.Seq + 1
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("expected seq %d after seq %d (records deleted or reordered)", prev.Seq+1, prev.Seq)}
	case prev != nil && r.Prev != prev.Hash:
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("prev does not match the hash of seq %d (records replaced or reordered)", prev.Seq)}
	case prev == nil && r.Seq == 1 && r.Prev != "":
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: "the first record refers to a previous one"}
	}
	return nil
}

// unsealedRun is a stretch of unsealed records of the chain, with no
// sealed record in between.
type unsealedRun struct {
	// problem is the first record's when the stretch follows sealed
	// records: reported unless the record after the stretch seals it
	// late.
	problem *Problem
	// chainStart: the stretch starts the chain, after seq 1 (the
	// records before it removed by retention, or not given).
	chainStart  bool
	first, last uint64
	// hashes are the records' hashes, in order (at most MaxSealSearch:
	// an append seals no longer stretch late).
	hashes []string
	n      int
	// before is verifier.unsealed before the stretch.
	before uint64
	reason string
}

// seal checks r's seal.
func (v *verifier) seal(l Line, r *Record) *Problem {
	bad := func(format string, args ...any) *Problem {
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf(format, args...)}
	}
	if r.Seal == "" {
		if len(r.LateSeals) > 0 {
			return bad("carries late seals (of the records before it), but is not sealed itself")
		}
		if v.run == nil {
			v.run = &unsealedRun{first: r.Seq, chainStart: v.prev == nil && r.Seq != 1, before: v.unsealed, reason: r.SealError}
			if v.sealed {
				why := ""
				if r.SealError != "" {
					why = ": " + r.SealError
				}
				v.run.problem = bad("not sealed, though the log is sealed since seq %d%s", v.s.FirstSealed, why)
			}
		}
		v.unsealed = max(v.unsealed, r.Seq)
		v.run.last, v.run.n = r.Seq, v.run.n+1
		if len(v.run.hashes) < MaxSealSearch {
			v.run.hashes = append(v.run.hashes, r.Hash)
		}
		return nil
	}
	p, err := ParseSeal(r.Seal)
	if err != nil {
		return bad("%v", err)
	}
	run := v.run
	v.run = nil
	if len(r.LateSeals) > 0 {
		if pr := v.lateSeals(r, p, run, bad); pr != nil {
			return pr
		}
	} else if run != nil && run.problem != nil {
		pr := *run.problem
		gap := ""
		if p.ID == v.sealID && p.Epoch > v.lastEpoch+1 {
			// Keys went without records: records after it were cut
			// (the record that sealed it late among them), or the
			// sealed record before it replaced.
			gap = fmt.Sprintf(", and is sealed with key %d after key %d: %d key(s) sealed no record here (records removed)", p.Epoch, v.lastEpoch, p.Epoch-v.lastEpoch-1)
		}
		pr.Reason += fmt.Sprintf(" (seq %d, the sealed record after it, does not seal it late%s)", r.Seq, gap)
		return &pr
	}
	if v.prev == nil && r.Seq != 1 {
		// The chain starts after records removed by retention (or left
		// out with Partial; end checks which): the record that
		// introduced the key may be among them, but not before seq 1.
		if p.Epoch >= r.Seq {
			return bad("sealed with epoch %d as seq %d: its key would have been introduced before seq 1 (records sealed again with a later key)", p.Epoch, r.Seq)
		}
		v.sealID, v.sealed = p.ID, true
		v.s.SealIDs = append(v.s.SealIDs, p.ID.String())
		v.s.FirstSealed = r.Seq
	} else if !v.sealed || p.ID != v.sealID {
		if r.Stage != StageSealStart || r.SealID != p.ID.String() {
			return bad("sealed with key %s, which no seal-start record introduced", p.ID)
		}
		if p.Epoch != 0 {
			return bad("a new sealing key starts with epoch 0, not %d (records sealed with it removed)", p.Epoch)
		}
		v.sealID, v.sealed = p.ID, true
		v.s.SealIDs = append(v.s.SealIDs, p.ID.String())
		if v.s.FirstSealed == 0 {
			v.s.FirstSealed = r.Seq
		}
	} else {
		switch {
		case p.Epoch <= v.lastEpoch:
			return bad("seal epoch %d does not follow epoch %d (records reordered or resealed)", p.Epoch, v.lastEpoch)
		case p.Epoch > v.lastEpoch+1 && r.Stage == StageDamaged && p.Epoch-v.lastEpoch-1 <= uint64(len(r.Damage)):
			// The lines it records as damaged had been sealed: their
			// keys were destroyed once they were on the disk, so no
			// crash explains the damage.
			keys := fmt.Sprintf("key %d", v.lastEpoch+1)
			if p.Epoch-1 > v.lastEpoch+1 {
				keys = fmt.Sprintf("keys %d to %d", v.lastEpoch+1, p.Epoch-1)
			}
			return bad("the damaged line(s) it records had been sealed (with %s, destroyed once they were on the disk): sealed records were destroyed afterwards, by tampering or a fault of the disk, not by a crash; acknowledging does not clear this", keys)
		case p.Epoch > v.lastEpoch+1:
			// A key is destroyed only once the record it sealed is on
			// the disk (a failed write or a crash hands it to the next
			// append): every key seals a record. Keys without one are
			// records removed, or replaced and sealed again later.
			why := "records removed, or replaced and sealed again after they were sealed"
			if r.Stage == StageSealEnd {
				// seal-init's record with the state it replaced.
				why = "records removed from the end before seal-init started a new key: the sealing state it replaced had moved on past them"
			}
			return bad("sealed with key %d after key %d: %d key(s) sealed no record (%s)",
				p.Epoch, v.lastEpoch, p.Epoch-v.lastEpoch-1, why)
		}
	}
	v.lastEpoch = p.Epoch
	v.s.Sealed++
	if off, ok := v.offsets[p.ID]; !ok {
		v.offsets[p.ID] = r.Seq - p.Epoch
		v.firstBy[p.ID] = bad("") // the reason is written if it is reported
	} else if r.Seq-p.Epoch != off {
		return bad("sealed with epoch %d of key %s, whose earlier records put this seq at epoch %d (the key was introduced again)", p.Epoch, p.ID, r.Seq-off)
	}
	if kc, ok := v.keys[p.ID]; ok {
		if p.Epoch < kc.epoch {
			return bad("seal epoch %d went back", p.Epoch)
		}
		if p.Epoch-kc.epoch > MaxSealDerive {
			// Only the first record of a chain that starts after seq 1
			// can be that far: its epoch is what the record claims.
			return bad("sealed with epoch %d of key %s, %d keys after epoch %d: further than verify derives keys (%d; a forged seal, or a key that sealed more records than a key should)",
				p.Epoch, p.ID, p.Epoch-kc.epoch, kc.epoch, MaxSealDerive)
		}
		if !v.sealMatches(kc, p, r.Seq, r.Hash) {
			return bad("the seal does not match the record (altered after it was sealed, or forged)")
		}
		kc.logEpoch = p.Epoch
	}
	return nil
}

// sealMatches checks seal q of the record seq, of hash, with kc's key of
// its epoch (not below the epoch kc derived to, nor more than
// MaxSealDerive past it: the callers check); when it matches, the seal
// counts as verified, and the checkpoints with that seal name that
// record (one made of it with another seq is a copy altered).
func (v *verifier) sealMatches(kc *keyChain, q ParsedSeal, seq uint64, hash string) bool {
	h, _ := hex.DecodeString(hash)
	if !hmac.Equal(sealTag(v.keyAt(kc, q.Epoch), q.ID, q.Epoch, h), q.Tag) {
		return false
	}
	v.s.SealsVerified++
	for _, i := range v.bySeal[sealAt{q.ID, q.Epoch}] {
		v.cps[i].rec = &Ref{Seq: seq, Hash: hash}
	}
	return true
}

// lateCheckpoints holds the checkpoints not sealed of records sealed
// late (lateCps, with keys given) against the chain: not authenticated
// (anyone who can write where checkpoints are collected can add one),
// but the only word on those records before they were sealed late, when
// root on the node could change them. Only those of this log and node:
// of the path CheckpointLog names, or else the paths and hosts the
// checkpoints whose checkpoint seal checks name (the node's word, which
// root after T can add to but not take from; not the records' host,
// which root could change after T with a record of its own), or else
// the only path and host the checkpoints name; the others are set
// aside.
func (v *verifier) lateCheckpoints(judged []Checkpoint) *Problem {
	logs, hosts := map[string]bool{}, map[string]bool{}
	for _, c := range judged {
		if v.whole[c] {
			logs[c.Log], hosts[c.Host] = true, true
		}
	}
	if len(hosts) == 0 {
		for _, c := range v.want {
			logs[c.Log], hosts[c.Host] = true, true
		}
		if len(logs) > 1 || len(hosts) > 1 {
			// Which are this log's cannot be told.
			clear(logs)
			clear(hosts)
		}
	}
	if v.opts.CheckpointLog != "" {
		clear(logs)
		logs[v.opts.CheckpointLog] = true
	}
	for _, c := range v.lateCps {
		if !logs[c.Log] || !hosts[c.Host] {
			v.s.IgnoredCheckpoints = append(v.s.IgnoredCheckpoints, IgnoredCheckpoint{c, CheckpointNotSealed})
			continue
		}
		switch p := v.at[c.Seq]; {
		case !p.ok:
			v.s.IgnoredCheckpoints = append(v.s.IgnoredCheckpoints, IgnoredCheckpoint{c, CheckpointNotSealed})
		case p.hash != c.Hash:
			return &Problem{File: p.file, Line: p.line, Seq: c.Seq, Reason: fmt.Sprintf("the record differs from the checkpoint of %s (host %s, log %s; hash %s, checkpoint %s), which is not sealed: it was made while the record was unsealed, before a later record sealed it late; the record was changed in between (by root on the node), or the checkpoint is not the node's (whoever can write where checkpoints are collected can add one)", c.Time, vocab.Printable(c.Host), vocab.Printable(c.Log), p.hash, c.Hash)}
		default:
			v.s.CheckpointsLateSealed++
		}
	}
	return nil
}

// lateSealedAt says whether seq is that of a record sealed late.
func (v *verifier) lateSealedAt(seq uint64) bool {
	for _, u := range v.s.LateSealed {
		if u.FirstSeq <= seq && seq <= u.LastSeq {
			return true
		}
	}
	return false
}

// lateSeals checks the late seals of r (sealed, with seal p) against
// the stretch of unsealed records right before it (run, nil for none).
// Each must be of r's key, at the epochs right before r's, following
// the sealed record before the stretch; with the key given, each must
// match its record's hash. Sealing the stretch with the keys that
// would have sealed it shows that no sealed record was replaced by an
// unsealed one: its key was gone.
func (v *verifier) lateSeals(r *Record, p ParsedSeal, run *unsealedRun, bad func(string, ...any) *Problem) *Problem {
	k := len(r.LateSeals)
	switch {
	case run == nil && v.prev == nil:
		// The chain's first record: the records it seals late are not
		// among those given (removed by retention).
		return nil
	case run == nil:
		return bad("seals %d record(s) late, but the record before it is sealed", k)
	case k > MaxSealSearch:
		return bad("seals %d records late, more than an append seals late (%d)", k, MaxSealSearch)
	case run.chainStart && !v.sealed && k >= run.n:
		// The stretch starts the chain: its first records may be in
		// files retention removed.
	case run.problem == nil:
		return bad("seals %d record(s) late, but no sealed record comes before the %d unsealed one(s) before it", k, run.n)
	case k != run.n:
		return bad("seals %d record(s) late, but %d unsealed record(s) come right before it", k, run.n)
	}
	seals := make([]ParsedSeal, k)
	for i, ls := range r.LateSeals {
		q, err := ParseSeal(ls)
		if err != nil {
			return bad("late seal %d: %v", i+1, err)
		}
		if q.ID != p.ID || q.Epoch+uint64(k-i) != p.Epoch {
			return bad("late seal %d is of key %s epoch %d; the record is sealed with key %s epoch %d: late seals take the keys right before the record's", i+1, q.ID, q.Epoch, p.ID, p.Epoch)
		}
		seals[i] = q
	}
	if v.sealed {
		if p.ID != v.sealID || seals[0].Epoch != v.lastEpoch+1 {
			return bad("seals %d record(s) late with key %s from epoch %d, but the sealed record before them is of key %s epoch %d: keys sealed no record (records removed, or sealed records replaced by unsealed ones)", k, p.ID, seals[0].Epoch, v.sealID, v.lastEpoch)
		}
	} else {
		// As a chain's first sealed record: its epoch is what it claims.
		if seals[0].Epoch+uint64(k) > r.Seq-1 {
			return bad("seals %d record(s) late from epoch %d before seq %d: its key would have been introduced before seq 1 (records sealed again with a later key)", k, seals[0].Epoch, r.Seq)
		}
		v.sealID, v.sealed = p.ID, true
		v.s.SealIDs = append(v.s.SealIDs, p.ID.String())
		v.s.FirstSealed = run.first
	}
	// The last run.n seals are the records met, in order.
	kc, given := v.keys[p.ID]
	for i, q := range seals[k-run.n:] {
		if !given || i >= len(run.hashes) {
			continue
		}
		if kc.epoch > q.Epoch || q.Epoch-kc.epoch > MaxSealDerive {
			return bad("late seal of seq %d at epoch %d of key %s: further than verify derives keys from epoch %d", run.first+uint64(i), q.Epoch, p.ID, kc.epoch)
		}
		if !v.sealMatches(kc, q, run.first+uint64(i), run.hashes[i]) {
			return bad("its late seal of seq %d does not match that record (altered after it was sealed, or forged)", run.first+uint64(i))
		}
	}
	v.lastEpoch = seals[k-1].Epoch
	v.s.Sealed += run.n
	v.unsealed = run.before
	v.s.LateSealed = append(v.s.LateSealed, LateSealed{FirstSeq: run.first, LastSeq: run.last, By: r.Seq, Reason: run.reason})
	return nil
}

// checkFar checks the tag and checkpoint seal of checkpoint i of a key
// that seals no record here (another node's, or one whose records were
// cut), with keys from the shared [SealChecker]: with --nodes every
// node's verify asks for them.
func (v *verifier) checkFar(i int) {
	cs, c := &v.cps[i], &v.want[i]
	if v.opts.Seals == nil {
		v.opts.Seals = NewSealChecker(v.opts.Keys)
	}
	if !cs.checked {
		if k, ok := v.opts.Seals.keyAt(cs.seal.ID, cs.seal.Epoch); ok {
			cs.checked, cs.tagOK = true, sealChecks(k, cs.seal, c)
		}
	}
	if cs.headParsed && !cs.headChecked {
		if k, ok := v.opts.Seals.keyAt(cs.head.ID, cs.head.Epoch); ok {
			cs.headChecked, cs.headOK = true, headChecks(k, cs.head, c)
		}
	}
}

// keyAt returns the key of epoch e of kc's sealing, deriving it from
// the last key kc derived (e must not be below that epoch), and checks
// the tags and checkpoint seals of the checkpoints sealed at the epochs
// it passes.
func (v *verifier) keyAt(kc *keyChain, e uint64) [32]byte {
	if e > kc.epoch+sealStride {
		v.jump(kc, e)
	}
	for {
		for len(kc.pending) > 0 && v.cps[kc.pending[0]].seal.Epoch <= kc.epoch {
			c := &v.cps[kc.pending[0]]
			if c.seal.Epoch == kc.epoch {
				c.checked, c.tagOK = true, sealChecks(kc.key, c.seal, &v.want[kc.pending[0]])
			}
			kc.pending = kc.pending[1:]
		}
		for len(kc.headPending) > 0 && v.cps[kc.headPending[0]].head.Epoch <= kc.epoch {
			c := &v.cps[kc.headPending[0]]
			if c.head.Epoch == kc.epoch {
				c.headChecked, c.headOK = true, headChecks(kc.key, c.head, &v.want[kc.headPending[0]])
			}
			kc.headPending = kc.headPending[1:]
		}
		if kc.epoch >= e {
			return kc.key
		}
		kc.key = nextSealKey(kc.key)
		kc.epoch++
	}
}

// jump takes kc to epoch e from the shared [SealChecker], which derives
// each key once per run: the first record of a chain that starts after
// seq 1 claims its epoch, and with --nodes every host of a stream has a
// chain of its own (a made-up host's one record at epoch 2^26 cost 37 s
// of derivations, again for each such host). The checkpoints pending
// at the epochs passed are checked with its keys.
func (v *verifier) jump(kc *keyChain, e uint64) {
	if v.opts.Seals == nil {
		v.opts.Seals = NewSealChecker(v.opts.Keys)
	}
	// Only from where the checker's keys are ahead of kc's: it derives
	// from the first key, and a chain of a key that sealed millions of
	// records would derive them all again for a checkpoint a few
	// hundred records beyond its last.
	ch := v.opts.Seals.chains[kc.id]
	if ch == nil || ch.epoch < kc.epoch {
		return
	}
	k, ok := v.opts.Seals.keyAt(kc.id, e)
	if !ok {
		return
	}
	for len(kc.pending) > 0 && v.cps[kc.pending[0]].seal.Epoch < e {
		c := &v.cps[kc.pending[0]]
		if c.seal.Epoch >= kc.epoch {
			if ck, ok := v.opts.Seals.keyAt(kc.id, c.seal.Epoch); ok {
				c.checked, c.tagOK = true, sealChecks(ck, c.seal, &v.want[kc.pending[0]])
			}
		}
		kc.pending = kc.pending[1:]
	}
	for len(kc.headPending) > 0 && v.cps[kc.headPending[0]].head.Epoch < e {
		c := &v.cps[kc.headPending[0]]
		if c.head.Epoch >= kc.epoch {
			if ck, ok := v.opts.Seals.keyAt(kc.id, c.head.Epoch); ok {
				c.headChecked, c.headOK = true, headChecks(ck, c.head, &v.want[kc.headPending[0]])
			}
		}
		kc.headPending = kc.headPending[1:]
	}
	kc.key, kc.epoch = k, e
}

// end checks what only the whole chain tells.
func (v *verifier) end() *Problem {
	last := v.lastFile
	if len(v.s.Files) > 0 {
		last = v.s.Files[len(v.s.Files)-1]
	}
	v.flushTorn()
	if len(v.damaged) > 0 {
		if v.s.Records == 0 {
			// Nothing but damaged lines: a log damaged whole (a crash
			// zeroed it), whose writer's next append records it, or no
			// log at all (/etc/passwd), which no append ever will.
			return v.damageProblem("no line reads as a record: a log damaged whole (its writer's next append records it) or no audit log")
		}
		return v.damageProblem("not recorded yet: the next append records it")
	}
	if v.run != nil && v.run.problem != nil {
		pr := *v.run.problem
		pr.Reason += " (no record after it seals it late yet: the next append with a usable sealing state does)"
		return &pr
	}
	if p := v.shipped.end(last, v.s.Empty > 0); p != nil {
		return p
	}
	retained := false // the chain starts where retention removed files
	if f := v.first; f != nil && f.Seq != 1 {
		for _, d := range v.s.Dropped {
			// Or the first record is the removed file's last again, a
			// line a damage record lists (stale blocks first in a new
			// file): the chain goes on from it as from that record.
			if d.LastSeq == f.Seq-1 && d.LastHash == f.Prev || d.LastSeq == f.Seq && d.LastHash == f.Hash && v.listed(v.firstLine) {
				retained = true
			}
			// Or the chain begins with older records again its first
			// record lists (see startListed), each going on from the
			// one before and the first record from the last of them,
			// and retention by an nsrel before this check described
			// the file before them as ending where the first of them
			// goes on from.
			if v.startCopies > 0 && v.copiesLinked && f.Prev == v.copyHash && f.Seq == v.copyLast+1 && d.LastSeq == v.copyFirst-1 && d.LastHash == v.copyPrev {
				retained = true
			}
		}
		if !retained && !v.opts.Partial {
			return &Problem{File: v.s.Files[0], Line: 1, Seq: f.Seq, Reason: fmt.Sprintf("the chain starts at seq %d, not 1, and no retention record accounts for the records before (records deleted?)", f.Seq)}
		}
	}
	if v.opts.Anchor != "" && !v.anchored {
		if p := v.anchorProblem(last, retained); p != nil {
			return p
		}
	}
	if v.anchored && v.opts.AnchorSeq != 0 && v.anchorAt != v.opts.AnchorSeq {
		// The hash found, at another seq: the anchor saved is not what
		// verify printed (SEQ:HASH of one record), and the seq it gives
		// was passed over unchecked (--anchor 5:HASH-of-seq-22 passed).
		return &Problem{File: last, Seq: v.anchorAt, Reason: fmt.Sprintf("the record with the anchor hash %s is seq %d, not %d: the anchor's seq and hash are of two records (check the saved anchor)", v.opts.Anchor, v.anchorAt, v.opts.AnchorSeq)}
	}
	// Damaged lines the files given lack were in files retention removed:
	// a retention record names each, a file not given, whose records came
	// before the damage record. At the chain's start, --partial excuses
	// them (files removed by hand).
	given := map[string]bool{}
	for _, f := range v.s.Files {
		given[filepath.Base(f)] = true
	}
	for _, file := range slices.Sorted(maps.Keys(v.absent)) {
		a := v.absent[file]
		first, ok := v.droppedIndex().firstLast[file]
		removed := ok && first < a.seq
		if given[file] || !removed && !(v.opts.Partial && a.atStart) {
			return &Problem{File: last, Seq: a.seq, Reason: fmt.Sprintf("the damage record seq %d lists damaged lines of %s, which the files given lack and no retention record removed (lines deleted?)", a.seq, file)}
		}
	}
	if p := v.keysProblem(); p != nil {
		return p
	}
	judged, p := v.ofThisLog(v.authenticCheckpoints(), last)
	if p != nil {
		return p
	}
	if p := v.lateCheckpoints(judged); p != nil {
		return p
	}
	if len(v.want) > 0 && len(judged) == 0 {
		why := "each is one not sealed, of records sealed late since, which no key authenticates"
		if len(v.s.IgnoredCheckpoints) > 0 {
			why = v.s.IgnoredCheckpoints[0].Reason
		}
		return &Problem{File: last, Reason: fmt.Sprintf("none of the %d checkpoint(s) given can be used: %s", len(v.want), why)}
	}
	// Sealed checkpoints only when there are checkpoints to say so of.
	v.s.CheckpointsSealed = v.authed && len(judged) > 0
	seenHost := map[string]bool{}
	for _, c := range judged {
		if !seenHost[c.Host] && len(seenHost) < maxCheckpointHosts {
			seenHost[c.Host] = true
			v.s.CheckpointHosts = append(v.s.CheckpointHosts, c.Host)
		}
	}
	for _, c := range judged {
		removed := v.droppedHas(c.Seq) || retained && c.Seq < v.s.FirstSeq
		if removed && !v.at[c.Seq].ok {
			v.s.CheckpointsRetained++
		} else {
			v.s.Checkpoints++
		}
		if p := v.checkpointSeal(c, last, removed); p != nil {
			return p
		}
		switch p := v.at[c.Seq]; {
		case c.Seq > v.s.LastSeq && (v.opts.Shipped || v.opts.AckOnNode):
			// A collector's copy: checkpoints travel by syslog as they
			// are written, records as the shipper tails the log, later;
			// nobody on the node can cut the collector's copy.
			return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s names seq %d, beyond the copy's last record (seq %d): %s", c.Time, c.Seq, v.s.LastSeq, notInCopy)}
		case c.Seq > v.s.LastSeq:
			return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s names seq %d, beyond the last record (seq %d): records were cut off the end, or a current or rotated file removed", c.Time, c.Seq, v.s.LastSeq)}
		case !p.ok && removed:
			// Removed by retention, which the chain recorded (the
			// records of older removals went with the files removed
			// after them). An older record again of its seq in the
			// files given must be its copy.
			for _, cl := range v.removedCopies[c.Seq] {
				if cl.hash != c.Hash {
					return &Problem{File: cl.file, Line: cl.line, Seq: c.Seq, Reason: fmt.Sprintf("a line filed as an older record again (seq %d, hash %s) differs from the record the checkpoint of %s names (hash %s): no copy of that record, which retention removed; made up and filed so (root on the node can seal the damage record that lists it)", c.Seq, cl.hash, c.Time, c.Hash)}
				}
			}
		case !p.ok:
			return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s names seq %d, which the log does not hold (it starts at seq %d): records were removed", c.Time, c.Seq, v.s.FirstSeq)}
		case p.hash != c.Hash:
			return &Problem{File: p.file, Line: p.line, Seq: c.Seq, Reason: fmt.Sprintf("the record differs from the checkpoint of %s (hash %s, checkpoint %s): the chain was rewritten", c.Time, p.hash, c.Hash)}
		case c.Seal != "" && p.seal != c.Seal:
			return &Problem{File: p.file, Line: p.line, Seq: c.Seq, Reason: fmt.Sprintf("the record's seal differs from the checkpoint of %s: the seal was changed", c.Time)}
		}
		if p := v.at[c.Seq]; p.ok && (c.Seq > v.s.CheckpointedSeq || c.Seq == v.s.CheckpointedSeq && laterTime(c.Time, v.s.CheckpointedTime)) {
			// Of a head checkpointed again and again (a quiet node's
			// timer), the latest: the records after it came later.
			v.s.CheckpointedSeq, v.s.CheckpointedTime = c.Seq, c.Time
		}
	}
	if len(judged) > 0 {
		for _, seq := range v.retentionSeqs {
			if seq > v.s.CheckpointedSeq {
				if v.s.RetentionUncovered++; v.s.RetentionUncovered == 1 {
					v.s.RetentionUncoveredSeq = seq
				}
			}
		}
	}
	for _, d := range v.s.Damage {
		if d.Ack == nil {
			cmd := "nsrel-hook"
			if v.opts.AckConfig != "" {
				cmd += " --config " + vocab.ShellQuote(v.opts.AckConfig)
			}
			how := fmt.Sprintf("`%s audit ack %d --reason TEXT`", cmd, d.Record.Seq)
			switch {
			case v.opts.AckOnNode:
				how = fmt.Sprintf("on the node, `nsrel-hook [--config FILE] audit ack %d --reason TEXT [LOG]` (in the log these files copy)", d.Record.Seq)
			case v.opts.AckLog != "":
				how = fmt.Sprintf("`%s audit ack %d --reason TEXT %s` (for a copy of a log: in the original, on the node that writes it)", cmd, d.Record.Seq, vocab.ShellQuote(v.opts.AckLog))
			}
			return &Problem{File: last, Seq: d.Record.Seq, Reason: fmt.Sprintf("damage recorded at seq %d (%s: %s) is not acknowledged: check it, then %s",
				d.Record.Seq, d.Lines[0], d.Record.Damage[0].Kind, how)}
		}
	}
	return nil
}

// authenticCheckpoints returns the checkpoints to hold against the
// chain: with keys for it, those whose seals the keys authenticate (the
// rest go to IgnoredCheckpoints with the reason); without, all.
func (v *verifier) authenticCheckpoints() []Checkpoint {
	ours := false // a given key seals records of this chain
	for id := range v.offsets {
		if _, ok := v.keys[id]; ok {
			ours = true
		}
	}
	if len(v.keys) == 0 || v.opts.KeysOfOthers && !ours {
		return v.want
	}
	v.authed = true
	reasons := make([]string, len(v.want))
	// Where the checkpoints whose checkpoint seal checks (which covers
	// their seq) put their records: see sealedSeqs.
	var sealed sealedSeqs
	for i := range v.want {
		cs := &v.cps[i]
		kc, given := v.keys[cs.seal.ID]
		switch {
		case !cs.parsed || !given:
			reasons[i] = CheckpointNotSealed
		case !cs.checked && cs.seal.Epoch > kc.logEpoch && cs.seal.Epoch-kc.logEpoch > MaxSealDerive:
			// Beyond the log by more than verify derives: a genuine
			// one needs that many records cut off the end with no
			// checkpoint in between.
			reasons[i] = CheckpointTooFar
		}
		if _, ours := v.offsets[cs.seal.ID]; reasons[i] == "" && ours {
			// A key of this chain: derived on from its records' (the
			// newest checkpoint is a step or two beyond them), however
			// far its epochs go.
			if !cs.checked {
				v.keyAt(kc, cs.seal.Epoch)
			}
			if cs.headParsed && !cs.headChecked {
				v.keyAt(kc, cs.head.Epoch)
			}
		} else if reasons[i] == "" {
			v.checkFar(i)
		}
		if reasons[i] == "" && cs.tagOK && cs.headOK {
			sealed.add(&v.want[i], cs.seal)
		}
	}
	var out []Checkpoint
	for i, c := range v.want {
		cs, reason := &v.cps[i], reasons[i]
		switch {
		case reason != "":
		case !cs.tagOK:
			reason = CheckpointForged
		case cs.rec != nil && cs.rec.Hash == c.Hash && cs.rec.Seq != c.Seq:
			// The seal covers the hash, not the seq: the record it
			// names is in the chain, at another seq.
			reason = CheckpointAltered
		case c.CheckpointSeal != "" && !cs.headOK:
			reason = CheckpointHeadForged
		case c.CheckpointSeal == "" && sealed.moved(&c, cs.seal):
			// Its seq, which no checkpoint seal covers, is not where the
			// node's checkpoints whose checkpoint seals check put its
			// record: a copy of a genuine checkpoint with its seq
			// changed (and its checkpoint seal left out), which anyone
			// who can add a line to the collector's file can make. Held
			// against the chain where the chain does not hold its
			// record (removed by retention, or beyond the end), it
			// failed an intact log as "sealed again".
			reason = CheckpointAltered
		case c.CheckpointSeal == "" && v.opts.SealedElsewhere != nil && v.opts.SealedElsewhere(c):
			// Its hash is that of a record of another host, which
			// names that host: held against this chain it failed an
			// intact node as "another node's relabelled".
			reason = CheckpointRelabelled
		}
		if reason == CheckpointNotSealed && c.Seal == "" && v.lateSealedAt(c.Seq) {
			// Made while the record it names was unsealed: held
			// against the chain all the same (see end).
			v.lateCps = append(v.lateCps, c)
			continue
		}
		if reason != "" {
			v.s.IgnoredCheckpoints = append(v.s.IgnoredCheckpoints, IgnoredCheckpoint{c, reason})
			continue
		}
		if cs.headOK {
			if v.whole == nil {
				v.whole = map[Checkpoint]bool{}
			}
			v.whole[c] = true
		}
		out = append(out, c)
	}
	return out
}

// sealedSeqs holds where the checkpoints whose checkpoint seal checks
// (which covers their seq) put their records, to tell a checkpoint
// without one whose seq was changed (a copy anyone can add to a
// collector's file) from the node's.
//
// Root on the node after T holds the keys from the epoch E of its
// sealing state on: it can make a checkpoint seal for a record sealed
// at E-1 or later (the checkpoint seal is of the epoch after the
// record's), at any seq. So only two things count: the seqs that
// checkpoints with the same record seal name (root can add one only for
// the record of E-1, the last before T), and the offsets (seq minus
// epoch) of the key's checkpoints of records sealed at earlier epochs
// than the record in question (below E-1 for any record sealed before T:
// the node's). A chain root sealed again after T under another offset
// is still failed by the node's checkpoints of records before T.
type sealedSeqs struct {
	// bySeal: the record seals of the checkpoints, and at: their seqs.
	bySeal map[string]bool
	at     map[sealSeq]bool
	// first: for each key and offset, the earliest epoch of a record
	// a checkpoint puts there; earliest: the key's earliest of all.
	first    map[SealID]map[uint64]uint64
	earliest map[SealID]uint64
}

// sealSeq is a record seal and a seq a checkpoint names with it.
type sealSeq struct {
	seal string
	seq  uint64
}

func (s *sealedSeqs) add(c *Checkpoint, p ParsedSeal) {
	if s.bySeal == nil {
		s.bySeal, s.at, s.first, s.earliest = map[string]bool{}, map[sealSeq]bool{}, map[SealID]map[uint64]uint64{}, map[SealID]uint64{}
	}
	// Not bounded: only the node and root after T can make them, and
	// a bound would let root's push the node's out.
	s.bySeal[c.Seal], s.at[sealSeq{c.Seal, c.Seq}] = true, true
	off := c.Seq - p.Epoch
	if s.first[p.ID] == nil {
		s.first[p.ID] = map[uint64]uint64{}
	}
	if e, ok := s.first[p.ID][off]; !ok || p.Epoch < e {
		s.first[p.ID][off] = p.Epoch
	}
	if e, ok := s.earliest[p.ID]; !ok || p.Epoch < e {
		s.earliest[p.ID] = p.Epoch
	}
}

// moved says whether c (with record seal p) names another seq than the
// checkpoints of its record seal, or than the key's checkpoints of
// earlier records put its epoch at.
func (s *sealedSeqs) moved(c *Checkpoint, p ParsedSeal) bool {
	if s.bySeal[c.Seal] && !s.at[sealSeq{c.Seal, c.Seq}] {
		return true
	}
	e, ok := s.earliest[p.ID]
	if !ok || e >= p.Epoch {
		return false
	}
	at, ok := s.first[p.ID][c.Seq-p.Epoch]
	return !ok || at >= p.Epoch
}

// ofThisLog returns the checkpoints among cs that are this log's; the
// others go to IgnoredCheckpoints. With keys for this chain (authed),
// every checkpoint a given key authenticates is this log's, whatever
// path it names: one key seals one log, and a checkpoint seal (format
// 1.1) that checks is the node's word for the path it names, which
// root on the node after T may have moved the log from after cutting
// it (and sent one checkpoint of its own naming the new path: a path
// given with CheckpointLog must not set the genuine ones aside). One
// sealed by another given key judges the log too, and fails it when
// its key seals nothing left in it, unless CheckpointLog names another
// path than it does (the host's other log, whose keys were given too). Without keys, checkpoints are taken
// at their word: when they name several logs, CheckpointLog must say
// which is this one (else root could set the genuine checkpoints of the
// old path aside in the same way, unseen).
func (v *verifier) ofThisLog(cs []Checkpoint, last string) ([]Checkpoint, *Problem) {
	var out []Checkpoint
	if v.authed {
		// Every checkpoint a given key authenticates judges the chain:
		// the keys given are this chain's (or, with KeysOfOthers, were
		// left in when no other chain holds them). One whose key seals
		// nothing left in the chain fails it (see the judging loop).
		// With CheckpointLog, one whose key seals none of the chain's
		// records (another log's of the host, whose keys were given
		// too) judges it only when it names that path; one sealed by a
		// key of the chain judges it whatever path it names.
		if v.opts.CheckpointLog == "" {
			return cs, nil
		}
		for _, c := range cs {
			p, err := ParseSeal(c.Seal)
			if _, ours := v.offsets[p.ID]; err != nil || ours || c.Log == v.opts.CheckpointLog {
				out = append(out, c)
			} else {
				v.s.IgnoredCheckpoints = append(v.s.IgnoredCheckpoints, IgnoredCheckpoint{c, CheckpointOtherLog})
			}
		}
		return out, nil
	}
	var logs []string
	seen := map[string]bool{}
	for _, c := range cs {
		if !seen[c.Log] {
			seen[c.Log] = true
			logs = append(logs, c.Log)
		}
	}
	want := v.opts.CheckpointLog
	switch {
	case want != "":
	case len(logs) <= 1:
		return cs, nil
	default:
		return nil, &Problem{File: last, Reason: fmt.Sprintf("the checkpoints name %d logs (%s): pick this log's with --checkpoint-log PATH (the path the node wrote it at), or give the sealing key (--key), whose seals tell", len(logs), QuotedFew(logs))}
	}
	for _, c := range cs {
		if c.Log == want {
			out = append(out, c)
		} else {
			v.s.IgnoredCheckpoints = append(v.s.IgnoredCheckpoints, IgnoredCheckpoint{c, CheckpointOtherLog})
		}
	}
	return out, nil
}

// keysProblem: with verification keys given, every seal must be checked
// with one. A key without a verification key can be one made on the
// node after T (a seal-start record introduces any key), and a log with
// no seal at all can be one written again without them, or emptied: a
// log without records has no seal either.
func (v *verifier) keysProblem() *Problem {
	if len(v.keys) == 0 {
		return nil
	}
	if v.s.Records == 0 {
		file := v.lastFile
		if len(v.s.Files) > 0 {
			file = v.s.Files[0]
		}
		return &Problem{File: file, Reason: "no record, though verification keys were given (a sealed log emptied, or its files removed?)"}
	}
	var unknown []SealID
	for id := range v.offsets {
		if _, ok := v.keys[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) == len(v.offsets) && v.opts.KeysOfOthers {
		// None of the keys given is this chain's: verified without
		// them, a chain root rewrote under a key of its own (or without
		// seals) after T would pass, though keys were given.
		what := "not sealed"
		if len(unknown) > 0 {
			slices.SortFunc(unknown, func(a, b SealID) int { return strings.Compare(a.String(), b.String()) })
			what = "sealed with key " + unknown[0].String()
			if len(unknown) > 1 {
				what = fmt.Sprintf("%s and %d more", what, len(unknown)-1)
			}
		}
		return &Problem{File: v.s.Files[0], Line: 1, Seq: v.s.FirstSeq, Reason: fmt.Sprintf("none of the keys given seals these records (%s): give its key, or verify it without --key", what)}
	}
	if len(v.offsets) == 0 {
		return &Problem{File: v.s.Files[0], Line: 1, Seq: v.s.FirstSeq, Reason: "not sealed, though verification keys were given (a sealed log written again without seals?)"}
	}
	if len(unknown) == 0 {
		return nil
	}
	// The first record sealed with a key that has no verification key.
	id := unknown[0]
	for _, u := range unknown[1:] {
		if v.firstBy[u].Seq < v.firstBy[id].Seq {
			id = u
		}
	}
	p := v.firstBy[id]
	p.Reason = fmt.Sprintf("sealed with key %s, for which no verification key was given: give every key seal-init printed (a key made on the node after T can seal anything)", id)
	return p
}

// checkpointSeal checks a checkpoint's seal against the log: a key takes
// one epoch per record, so the checkpoint's seq and epoch must fit the
// log's records of the same key, even where retention removed the record
// it names; and the records after a sealed checkpoint are sealed.
// checkpointSeal checks c's seal against the chain; removed says that
// retention accounts for the record c names.
func (v *verifier) checkpointSeal(c Checkpoint, last string, removed bool) *Problem {
	if c.Seal == "" {
		return nil
	}
	p, err := ParseSeal(c.Seal)
	if err != nil {
		return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s names seq %d with an unreadable seal: %v", c.Time, c.Seq, err)}
	}
	if _, ok := v.offsets[p.ID]; !ok && v.authed && !removed {
		// (A key whose records retention removed seals none left.)
		other := v.opts.OtherChainKey != nil && v.opts.OtherChainKey(p.ID)
		switch {
		case v.whole[c] && other:
			// Made with that key naming this node: by its node, or by
			// whoever read that node's sealing state.
			return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s (seq %d) is sealed by key %s, a key given, which seals no record left in the log; lines of another node carry that key, and the checkpoint seal that names this node checks: this node's records sealed by that key were cut off, or whoever held the key on the other node (root there, reading its sealing state) made the checkpoint", c.Time, c.Seq, p.ID)}
		case v.whole[c]:
			return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s (seq %d) is sealed by key %s, a key given, which seals no record left in the log, and its checkpoint seal shows that node %s wrote it for log %s: the records it sealed were cut off (after seal-init --replace, say), or that path is another log of the node, whose key was given too (give only this log's keys: every checkpoint a given key seals is held against the log, whatever path it names)", c.Time, c.Seq, p.ID, c.Host, c.Log)}
		}
		whose := "another log's, whose key was given too (give only this log's keys: every checkpoint a given key seals is held against the log, whatever path it names)"
		if other {
			whose = "another node's relabelled with this node's host (lines of another node carry that key)"
		}
		return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s (seq %d) is sealed by key %s, a key given, which seals no record left in the log: the records it sealed were cut off (after seal-init --replace, say), or the checkpoint is %s", c.Time, c.Seq, p.ID, whose)}
	}
	if off, ok := v.offsets[p.ID]; ok && c.Seq-p.Epoch != off {
		return &Problem{File: last, Reason: fmt.Sprintf("checkpoint of %s has seq %d sealed with epoch %d of key %s; the log's records of that key put seq %d at epoch %d: they were sealed again (the chain rewritten)", c.Time, c.Seq, p.Epoch, p.ID, c.Seq, c.Seq-off)}
	}
	if v.unsealed > c.Seq {
		return &Problem{File: last, Seq: v.unsealed, Reason: fmt.Sprintf("seq %d is not sealed, though the checkpoint of %s shows the log sealed at seq %d", v.unsealed, c.Time, c.Seq)}
	}
	return nil
}

func (v *verifier) droppedHas(seq uint64) bool {
	spans := v.droppedIndex().spans
	// The first span starting after seq; the one before it may hold it.
	i, _ := slices.BinarySearchFunc(spans, seq, func(d [2]uint64, seq uint64) int {
		if d[0] > seq {
			return 1
		}
		return -1
	})
	return i > 0 && seq <= spans[i-1][1]
}

// notInCopy says why a collector's copy ends before a record the
// checkpoints or the anchor name.
const notInCopy = "records not in the copy (yet): still in transit (verify again), or never sent (verify the node's log)"

// anchorProblem says what the chain's lack of the anchor's record means,
// or nil when retention removed it (the anchor's seq given).
func (v *verifier) anchorProblem(last string, retained bool) *Problem {
	s, first := v.opts.AnchorSeq, v.s.FirstSeq
	p := &Problem{File: last}
	switch {
	case s == 0:
		p.Reason = fmt.Sprintf("no record has the anchor hash %s (records removed from the end, or the log rewritten", v.opts.Anchor)
		if retained {
			// Saved months ago, the record may have gone the normal
			// way: only its seq tells.
			p.Reason += fmt.Sprintf("; or retention removed it with the records before seq %d: give the anchor as SEQ:HASH to tell", first)
		}
		p.Reason += ")"
	case (v.s.Records == 0 || s > v.s.LastSeq) && (v.opts.Shipped || v.opts.AckOnNode):
		p.Reason = fmt.Sprintf("the copy ends at seq %d, before the anchor's record (seq %d, hash %s): %s", v.s.LastSeq, s, v.opts.Anchor, notInCopy)
	case v.s.Records == 0 || s > v.s.LastSeq:
		p.Reason = fmt.Sprintf("the chain ends at seq %d, before the anchor's record (seq %d, hash %s): records removed from the end, or the log rewritten", v.s.LastSeq, s, v.opts.Anchor)
	case s < first && (retained || v.droppedHas(s)):
		// The chain still names the hash of the record before its first
		// and of each removed file's last: one of those must match.
		known, hash := v.removedHash(s)
		if known && hash != v.opts.Anchor {
			p.Seq = s
			p.Reason = fmt.Sprintf("the record seq %d, which retention removed, had hash %s, not the anchor's %s: the log rewritten", s, hash, v.opts.Anchor)
			return p
		}
		v.s.AnchorRetained = true
		return nil
	case s < first:
		p.Reason = fmt.Sprintf("the anchor's record (seq %d) is not in the files given, which start at seq %d, and no retention record removed it", s, first)
	default:
		p.Seq = s
		p.Reason = fmt.Sprintf("the record seq %d does not have the anchor hash %s: the log rewritten", s, v.opts.Anchor)
	}
	return p
}

// removedHash returns the hash of record seq, before the chain's first,
// where the chain names it: the first record's prev, or a retention
// record's last_hash.
func (v *verifier) removedHash(seq uint64) (bool, string) {
	if f := v.first; f != nil && seq == f.Seq-1 {
		return true, f.Prev
	}
	for _, d := range v.s.Dropped {
		if d.LastSeq == seq {
			return true, d.LastHash
		}
	}
	return false, ""
}

// droppedIdx indexes the retention records read, once the chain is read:
// a chain of many of them, with as many damaged lines or checkpoints to
// look them up for, took their product in time.
type droppedIdx struct {
	firstLast map[string]uint64 // file -> the lowest LastSeq recorded for it
	spans     [][2]uint64       // FirstSeq..LastSeq, sorted and merged
}

func (v *verifier) droppedIndex() *droppedIdx {
	if v.dropped != nil {
		return v.dropped
	}
	x := &droppedIdx{firstLast: map[string]uint64{}}
	for _, d := range v.s.Dropped {
		if l, ok := x.firstLast[d.File]; !ok || d.LastSeq < l {
			x.firstLast[d.File] = d.LastSeq
		}
		if d.FirstSeq <= d.LastSeq {
			x.spans = append(x.spans, [2]uint64{d.FirstSeq, d.LastSeq})
		}
	}
	slices.SortFunc(x.spans, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	merged := x.spans[:0]
	for _, sp := range x.spans {
		if n := len(merged); n > 0 && sp[0] <= merged[n-1][1] {
			merged[n-1][1] = max(merged[n-1][1], sp[1])
			continue
		}
		merged = append(merged, sp)
	}
	x.spans = merged
	v.dropped = x
	return x
}

// peekSeq reads the seq a line claims, for problem reports.
func peekSeq(line []byte) uint64 {
	if h, ok := PeekHead(line); ok {
		return h.Seq
	}
	return 0
}

// ChainKeys returns the keys whose seals the records in files carry
// (lines that do not decode are skipped: verify judges them).
func ChainKeys(files ...string) (map[SealID]bool, error) {
	keys := map[SealID]bool{}
	for r, err := range Records(files...) {
		if err != nil {
			return nil, err
		}
		if p, err := ParseSeal(r.Seal); r.Seal != "" && err == nil {
			keys[p.ID] = true
		}
	}
	return keys, nil
}

// CheckpointsOf returns the checkpoints of host among cs. With host "",
// all of cs when they are all of one host, and an error naming the hosts
// when they are not: a collector's stream mixes nodes, and verifying a
// log against another node's checkpoints (or none) must not pass by
// accident.
func CheckpointsOf(cs []Checkpoint, host string) ([]Checkpoint, error) {
	var out []Checkpoint
	hosts := map[string]bool{}
	for _, c := range cs {
		hosts[c.Host] = true
		if host == "" || c.Host == host {
			out = append(out, c)
		}
	}
	if host == "" && len(hosts) > 1 {
		return nil, CheckpointHostsError(slices.Collect(maps.Keys(hosts)))
	}
	if host != "" && len(out) == 0 {
		return nil, fmt.Errorf("no checkpoint of host %q", host)
	}
	return out, nil
}

// CheckpointHostsError is [CheckpointsOf]'s refusal of checkpoints of
// several hosts (hosts, in any order) for one log.
func CheckpointHostsError(hosts []string) error {
	slices.Sort(hosts)
	return fmt.Errorf("checkpoints of %d hosts (%s): pick the log's with --host", len(hosts), QuotedFew(hosts))
}

// QuotedFew quotes the first 8 of names, joined, and counts the rest:
// names from checkpoints are anyone's to multiply.
func QuotedFew(names []string) string {
	const few = 8
	var b strings.Builder
	for i, n := range names[:min(len(names), few)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(vocab.GoQuote(n))
	}
	if len(names) > few {
		fmt.Fprintf(&b, " and %d more", len(names)-few)
	}
	return b.String()
}

// laterTime reports whether the RFC 3339 time a is after b (false when
// either does not parse: their strings do not compare, RFC3339Nano
// trims trailing zeros).
func laterTime(a, b string) bool {
	ta, err := time.Parse(time.RFC3339Nano, a)
	if err != nil {
		return false
	}
	tb, err := time.Parse(time.RFC3339Nano, b)
	return err == nil && ta.After(tb)
}
