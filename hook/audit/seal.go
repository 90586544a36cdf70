package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/safefile"
)

// Forward-secure sealing (docs/hook.md, "Sealing"). Every record appended
// while sealing is on carries a seal: an HMAC-SHA256 tag of its hash under
// a key used for that record only. The key evolves one-way after each
// record (k[e+1] = HMAC(k[e], "nsrel seal: next key"), a forward-secure
// MAC in the sense of Bellare and Yee, as systemd-journald's Forward
// Secure Sealing after Marson and Poettering, but per record instead of
// per 15-minute epoch), and the node keeps only the key of the next
// record: whoever reads the node's state at time T can seal records after
// T, but cannot compute the key of any record sealed before T, so cannot
// alter, insert, reorder or remove such a record without the seals
// failing verification. The verifier derives every key from the first
// one, k[0], which `nsrel-hook audit seal-init` prints once as the
// verification key, to be kept off the node.

// sealStatePrefix starts the sealing state file: "nsrel-seal 1 ID EPOCH
// KEY\n", fixed width, rewritten in place so that the old key's bytes are
// overwritten in the same blocks (see docs/hook.md for what a file
// system keeps anyway).
const sealStatePrefix = "nsrel-seal 1 "

const sealStateLen = len(sealStatePrefix) + 16 + 1 + 20 + 1 + 64 + 1

// SealID identifies a sealing key (8 random bytes, 16 hex digits in
// records).
type SealID [8]byte

// String returns the ID as 16 hex digits.
func (id SealID) String() string { return hex.EncodeToString(id[:]) }

// sealState is the node's sealing state: the key for the record sealed
// with Epoch.
type sealState struct {
	ID    SealID
	Epoch uint64
	Key   [32]byte
}

// marshal returns the state as the file holds it. It appends by hand:
// fmt's first use in a hook process costs more than the rest of the
// sealing (docs/BENCHMARKS.md, "Issue 14, fourth pass").
func (s *sealState) marshal() []byte {
	b := make([]byte, 0, sealStateLen)
	b = hex.AppendEncode(append(b, sealStatePrefix...), s.ID[:])
	epoch := strconv.AppendUint(nil, s.Epoch, 10)
	b = append(b, ' ')
	for range 20 - len(epoch) {
		b = append(b, '0')
	}
	b = append(append(b, epoch...), ' ')
	return append(hex.AppendEncode(b, s.Key[:]), '\n')
}

func parseSealState(b []byte) (*sealState, error) {
	bad := errors.New("not an nsrel sealing state")
	if len(b) != sealStateLen || !bytes.HasPrefix(b, []byte(sealStatePrefix)) || b[len(b)-1] != '\n' {
		return nil, bad
	}
	f := strings.Fields(string(b[len(sealStatePrefix):]))
	if len(f) != 3 {
		return nil, bad
	}
	s := &sealState{}
	id, err1 := hex.DecodeString(f[0])
	key, err2 := hex.DecodeString(f[2])
	epoch, err3 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || len(id) != 8 || len(key) != 32 {
		return nil, bad
	}
	copy(s.ID[:], id)
	copy(s.Key[:], key)
	s.Epoch = epoch
	return s, nil
}

// nextSealKey is the one-way step from one record's key to the next.
func nextSealKey(k [32]byte) [32]byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte("nsrel seal: next key"))
	var n [32]byte
	m.Sum(n[:0])
	return n
}

// sealTag is the tag of the record with the given hash (32 bytes),
// sealed with key k at epoch under id.
func sealTag(k [32]byte, id SealID, epoch uint64, hash []byte) []byte {
	m := tagMAC(k, "nsrel seal v1\x00", id, epoch)
	m.Write(hash)
	return m.Sum(nil)
}

// headTag is the tag of a checkpoint's own seal (checkpoint format 1.1):
// an HMAC, under the key of epoch, of everything c says but its own seal
// (its seq, hash, record seal, host, log and time, each string with its
// length first). epoch is the one after that of the record c names: the
// key the node holds when it makes c (the record's own key is gone by
// then), which no record has used yet.
func headTag(k [32]byte, id SealID, epoch uint64, c *Checkpoint) []byte {
	m := tagMAC(k, "nsrel checkpoint seal v1\x00", id, epoch)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], c.Seq)
	m.Write(n[:])
	for _, s := range []string{c.Hash, c.Seal, c.Host, c.Log, c.Time} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// tagMAC starts a tag's HMAC under k: what it is (domain, which tells a
// record's tag from a checkpoint's and from the next key), then id and
// epoch.
func tagMAC(k [32]byte, domain string, id SealID, epoch uint64) hash.Hash {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(domain))
	m.Write(id[:])
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	m.Write(e[:])
	return m
}

// sealChecks reports whether seal p of checkpoint c (its record's seal)
// checks under k, the key of p's epoch.
// Only the hash as a node writes it (lower-case hex) checks: the record's
// is compared with it as written.
func sealChecks(k [32]byte, p ParsedSeal, c *Checkpoint) bool {
	h, err := hex.DecodeString(c.Hash)
	return err == nil && len(h) == sha256.Size && isHex(c.Hash) && hmac.Equal(sealTag(k, p.ID, p.Epoch, h), p.Tag)
}

// headChecks reports whether checkpoint seal q of c checks under k, the
// key of q's epoch.
func headChecks(k [32]byte, q ParsedSeal, c *Checkpoint) bool {
	return hmac.Equal(headTag(k, q.ID, q.Epoch, c), q.Tag)
}

// headSealOf returns the checkpoint seal of c parsed, when it is one a
// node could have made: of the key of c's record seal (p), at the next
// epoch.
func headSealOf(c *Checkpoint, p ParsedSeal) (ParsedSeal, bool) {
	q, err := ParseSeal(c.CheckpointSeal)
	return q, err == nil && q.ID == p.ID && q.Epoch == p.Epoch+1
}

// formatSeal is the seal member's value: "ID.EPOCH.TAG".
func formatSeal(id SealID, epoch uint64, tag []byte) string {
	return id.String() + "." + strconv.FormatUint(epoch, 10) + "." + hex.EncodeToString(tag)
}

// ParsedSeal is a record's seal, read.
type ParsedSeal struct {
	ID    SealID
	Epoch uint64
	Tag   []byte
}

// ParseSeal reads a record's seal ("ID.EPOCH.TAG").
func ParseSeal(s string) (ParsedSeal, error) {
	var p ParsedSeal
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return p, errors.New("seal is not ID.EPOCH.TAG")
	}
	id, err1 := hex.DecodeString(parts[0])
	epoch, err2 := strconv.ParseUint(parts[1], 10, 64)
	tag, err3 := hex.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(id) != 8 || len(tag) != 32 ||
		strconv.FormatUint(epoch, 10) != parts[1] || strings.ToLower(parts[0]+parts[2]) != parts[0]+parts[2] {
		return p, errors.New("seal is not ID.EPOCH.TAG")
	}
	copy(p.ID[:], id)
	p.Epoch, p.Tag = epoch, tag
	return p, nil
}

// validSeal reports whether b has the shape of a seal; splitLine uses it
// to tell a seal at the end of a line.
func validSeal(b []byte) bool {
	_, err := ParseSeal(string(b))
	return err == nil
}

// VerifyKey is the verification key of a sealing: its ID and the first
// key, k[0], from which every record's key follows. Keep it off the node.
type VerifyKey struct {
	ID  SealID
	Key [32]byte
}

// VerifyKeyPrefix starts every verification key as written.
const VerifyKeyPrefix = "nsrel-seal-v1:"

// String returns the key as "nsrel-seal-v1:ID:KEY" (hex).
func (k VerifyKey) String() string {
	return VerifyKeyPrefix + k.ID.String() + ":" + hex.EncodeToString(k.Key[:])
}

// ParseVerifyKey reads a key written by [VerifyKey.String].
func ParseVerifyKey(s string) (VerifyKey, error) {
	var k VerifyKey
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), VerifyKeyPrefix)
	idHex, keyHex, ok2 := strings.Cut(rest, ":")
	id, err1 := hex.DecodeString(idHex)
	key, err2 := hex.DecodeString(keyHex)
	if !ok || !ok2 || err1 != nil || err2 != nil || len(id) != 8 || len(key) != 32 {
		return k, errors.New("not an nsrel verification key (nsrel-seal-v1:ID:KEY)")
	}
	copy(k.ID[:], id)
	copy(k.Key[:], key)
	return k, nil
}

// keyChain derives the keys of a sealing forward from k[0], for a
// verifier that meets epochs in increasing order ([verifier.keyAt]).
type keyChain struct {
	id    SealID
	epoch uint64
	key   [32]byte
	// pending are the checkpoints sealed with this key whose tag is not
	// checked yet (indices into verifier.want), by increasing epoch:
	// each is checked when the chain passes its epoch; headPending the
	// same for their checkpoint seals.
	pending, headPending []int
	// logEpoch is the epoch the chain's records took the key to.
	logEpoch uint64
}

// ErrSealStateExists matches the error of [InitSeal] for a sealing state
// that already exists.
var ErrSealStateExists = errors.New("sealing state exists")

// InitSeal writes a new sealing state at path (created 0600, its
// directory 0700 if missing) with a random ID and first key, and returns
// the verification key. It refuses to replace an existing state unless
// replace is set: the verification key of the old one still verifies the
// records it sealed. The first record appended after it is sealed with
// the new key and must be a [StageSealStart] record naming it:
// [Log.StartSealing] does both under the log's lock (an append that
// meets a key no record introduced writes that record itself), after it
// ended the key replaced with a [StageSealEnd] record; InitSeal alone
// writes none, and records cut off the end before it do not show.
func InitSeal(path string, replace bool) (VerifyKey, error) {
	k, touched, err := initSeal(path, replace, nil)
	if err != nil && touched && !replace {
		os.Remove(path) // created here, and never a whole state
	}
	return k, err
}

// newVerifyKey returns a new random sealing key.
func newVerifyKey() (VerifyKey, error) {
	var k VerifyKey
	if _, err := rand.Read(k.ID[:]); err != nil {
		return k, err
	}
	_, err := rand.Read(k.Key[:])
	return k, err
}

// errStateExists is the error for a sealing state at path that exists.
func errStateExists(path string) error {
	return fmt.Errorf("audit: sealing state %s: %w (seal-init --replace starts a new sealing key)", path, ErrSealStateExists)
}

// initSeal is [InitSeal], with the key pre made (nil: a new one),
// saying also whether it created or wrote the file at path, also when
// it failed (a write or fsync that failed after: the file may hold a
// state, or nothing).
func initSeal(path string, replace bool, pre *VerifyKey) (k VerifyKey, touched bool, err error) {
	if pre != nil {
		k = *pre
	} else if k, err = newVerifyKey(); err != nil {
		return k, false, err
	}
	flags := unix.O_RDWR | unix.O_CREAT | unix.O_EXCL
	if replace {
		flags = unix.O_RDWR | unix.O_CREAT
	}
	// In a directory of its own: in one others may write (sticky /tmp),
	// anyone could plant a file, or a hard link, under its name.
	f, err := safefile.OpenPrivate(path, flags, true)
	if errors.Is(err, fs.ErrExist) {
		return k, false, errStateExists(path)
	}
	if err != nil {
		return k, false, fmt.Errorf("audit: sealing state: %w", err)
	}
	defer f.Close()
	st := &sealState{ID: k.ID, Key: k.Key}
	if _, err := f.WriteAt(st.marshal(), 0); err != nil {
		return k, true, fmt.Errorf("audit: sealing state: %w", err)
	}
	if err := f.Truncate(int64(sealStateLen)); err != nil {
		return k, true, fmt.Errorf("audit: sealing state: %w", err)
	}
	if err := unix.Fsync(int(f.Fd())); err != nil {
		return k, true, fmt.Errorf("audit: sealing state: fsync: %w", err)
	}
	if err := syncDir(dirOf(path)); err != nil {
		return k, true, fmt.Errorf("audit: sealing state: %w", err)
	}
	return k, true, nil
}

// StartSealing sets up sealing for the log: under the log's lock it
// writes a new sealing state at [Options.SealState] ([InitSeal], replace
// as there) and appends the [StageSealStart] record that introduces its
// key, the first record the key seals. It returns the verification key
// and that record. When the record could not be written sealed, a state
// it wrote is removed again (nobody saw its key), and the error says why.
//
// When the log's records are sealed (or should be), an append before
// writes a [StageSealEnd] record with the state replaced, as any append
// would: sealed where that state seals on the log's last key, so that
// its epoch shows keys that sealed no record in the log (records cut
// off the end, the state moved on past them), and unsealed, saying why,
// where the state is missing or cannot seal on: verify fails at it. The
// new key would otherwise hide either from verify, starting a chain of
// its own right after the last record left.
func (l *Log) StartSealing(ctx context.Context, replace bool) (VerifyKey, *Record, error) {
	return l.StartSealingShown(ctx, replace, nil)
}

// StartSealingShown is [Log.StartSealing], with show given the
// verification key before the sealing state or any record is written,
// and before the log's lock is taken (a terminal that does not take the
// output must not hold up every writer): when show fails (the key could
// not be printed), nothing is written, and an existing state is left as
// it was. A key nobody holds must never seal.
func (l *Log) StartSealingShown(ctx context.Context, replace bool, show func(VerifyKey) error) (VerifyKey, *Record, error) {
	var key VerifyKey
	if l.opts.SealState == "" {
		return key, nil, errors.New("audit: no sealing state configured (seal_state)")
	}
	if _, err := os.Lstat(l.opts.SealState); err == nil && !replace {
		return key, nil, errStateExists(l.opts.SealState)
	} else if err == nil {
		// A state the new one could not be written over (of the wrong
		// mode or owner, a directory) fails now, before the seal-end
		// record: a failed seal-init leaves the log as it was.
		f, err := safefile.OpenPrivate(l.opts.SealState, unix.O_RDWR, true)
		if err != nil {
			return key, nil, fmt.Errorf("audit: sealing state: %w", err)
		}
		f.Close()
	} else if err := safefile.CheckPrivateDirs(filepath.Dir(l.opts.SealState)); err != nil {
		return key, nil, fmt.Errorf("audit: sealing state: %w", err)
	}
	// The log as an append opens it, before a key is shown: a log in a
	// directory others may write, or one that is a directory, failed
	// only after the key was shown, which then sealed nothing.
	if err := safefile.CheckPrivateDirs(filepath.Dir(l.path)); err != nil {
		return key, nil, fmt.Errorf("audit: sealing not started: %w", err)
	}
	if err := CheckWritable(l.path); err != nil {
		return key, nil, fmt.Errorf("audit: sealing not started: %w", err)
	}
	var pre *VerifyKey
	if show != nil {
		k, err := newVerifyKey()
		if err != nil {
			return key, nil, err
		}
		if err := show(k); err != nil {
			return key, nil, fmt.Errorf("audit: the verification key could not be shown, sealing not started: %w", err)
		}
		pre = &k
	}
	// The key replaced ends with a record of its own, after the log's
	// own records an append owes (the damage record of lines a crash
	// damaged, a torn tail's, retention's), all sealed with the state
	// replaced: verify judges damaged sealed lines by the key that
	// sealed them, which a record of the new key after its seal-start
	// cannot show. (In a log not sealed before they go after the
	// seal-start record, sealed with the new key.)
	if err := l.endKey(ctx); err != nil {
		return key, nil, err
	}
	created := false
	// old is the state replaced, put back if the seal-start record did
	// not reach the log: a failed --replace must leave the log sealed as
	// it was, not unsealed.
	var old []byte
	r, err := l.appendWith(ctx, func(*Searcher) (*Record, error) {
		if created {
			// Built again (an append that rotates first under a file
			// size limit): the state is made once, and old stays the
			// state it replaced.
			return &Record{Source: SourceAudit, Stage: StageSealStart, SealID: key.ID.String()}, nil
		}
		if replace {
			old = readSealState(l.opts.SealState)
		}
		k, touched, err := initSeal(l.opts.SealState, replace, pre)
		if touched {
			// Undone if anything fails from here, its own write too:
			// an empty state left by a full disk kept every record
			// unsealed, and a retry from starting; one whose fsync
			// failed sealed on with a key seal-init said was not
			// used.
			key, created = k, true
		}
		if err != nil {
			return nil, err
		}
		return &Record{Source: SourceAudit, Stage: StageSealStart, SealID: k.ID.String()}, nil
	}, func(r *Record, err error) error {
		if err == nil && (r == nil || r.Seal == "") {
			err = errors.New("the seal-start record was not sealed")
			if r != nil && r.SealError != "" {
				err = errors.New(r.SealError)
			}
		}
		if err != nil && created {
			// Still under the append's lock: no other writer has met
			// the new state yet.
			err = l.undoSealStart(key.ID, old, err)
		}
		return err
	}, false)
	if err != nil {
		return key, nil, err
	}
	return key, r, nil
}

// endKey appends, when the log's records are sealed or should be
// ([sealedChain]), the records the log owes and a [StageSealEnd] record,
// sealed with the sealing state as it is (see [Log.StartSealing]).
func (l *Log) endKey(ctx context.Context) error {
	r, err := l.appendWith(ctx, func(*Searcher) (*Record, error) {
		return &Record{Source: SourceAudit, Stage: StageSealEnd,
			Error: "seal-init ends the sealing key of the records before here, to start a new one (a seal-start record introduces it)"}, nil
	}, nil, true)
	if err != nil {
		return fmt.Errorf("audit: the record ending the sealing key replaced was not written, sealing not started: %w", err)
	}
	if r != nil && r.Seal == "" {
		l.warn(fmt.Errorf("audit: seq %d, which ends the sealing key replaced, is not sealed (%s): verify fails there, as after any append the sealing state cannot seal", r.Seq, r.SealError))
	}
	return nil
}

// undoSealStart puts the sealing state back as it was before the append
// of a seal-start record of key id failed (err); the caller holds the
// log's lock. The state old replaced is written back (none: the new one
// removed), unless a record sealed with the new key reached the log
// whole (a write stopped after the seal-start record
// and before the records after it): the key shown then seals on, since
// the state put back could not seal what follows. It returns err, with
// what became of the state.
func (l *Log) undoSealStart(id SealID, old []byte, err error) error {
	if seq, ok := l.lastSealedWith(id); ok {
		return fmt.Errorf("%w; a record sealed with the new key (seq %d) is in the log all the same: sealing is on with the key shown", err, seq)
	}
	if old == nil {
		// Durably: a state back after a power loss would seal with a
		// key the operator was told is not used.
		if os.Remove(l.opts.SealState) == nil {
			if serr := syncDir(filepath.Dir(l.opts.SealState)); serr != nil {
				return fmt.Errorf("%w; the new sealing state was removed, but its directory not synced (%v): after a crash it may be back", err, serr)
			}
		}
		return err
	}
	if werr := writeSealState(l.opts.SealState, old); werr != nil {
		return fmt.Errorf("%w; the sealing state replaced could not be put back (%v): %s seals with a key no record introduced", err, werr, l.opts.SealState)
	}
	return fmt.Errorf("%w; the sealing state replaced was put back: the log is sealed as before", err)
}

// lastSealedWith returns the seq of the last record sealed with key id
// among the complete lines at the end of the log, reading back only
// while the records are sealed with id (the key of a seal-start record
// that was just appended: no other record can carry it).
func (l *Log) lastSealedWith(id SealID) (uint64, bool) {
	f, err := openRegular(l.path, unix.O_RDONLY)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	var last uint64
	found := false
	for line, rerr := range linesBackwardIn(f, l.path, st.Size()) {
		if rerr != nil {
			break
		}
		r, derr := Decode(line.Data)
		if derr != nil {
			break
		}
		p, perr := ParseSeal(r.Seal)
		if perr != nil || p.ID != id {
			break
		}
		if !found {
			last, found = r.Seq, true
		}
	}
	return last, found
}

// readSealState returns the sealing state at path as its file holds
// it, nil if there is none that parses.
func readSealState(path string) []byte {
	s, err := openSealer(path)
	if s == nil || err != nil {
		return nil
	}
	defer s.close()
	return s.state.marshal()
}

// writeSealState writes state back to the sealing state file at path.
func writeSealState(path string, state []byte) error {
	f, err := safefile.OpenTrusted(path, unix.O_RDWR, true)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(state, 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(state))); err != nil {
		return err
	}
	return unix.Fsync(int(f.Fd()))
}

// sealer seals the records of one append: it holds the state file open
// (under the log's lock) and the key of the next record.
type sealer struct {
	f     *os.File
	path  string
	state *sealState
	// introduce is set when no record in the log introduced the state's
	// key yet: the first record it seals must be a seal-start record.
	introduce bool
	// skipped counts the keys the state is past the log's last record
	// of its key: keys that sealed no record in the log, which the next
	// seal shows.
	skipped uint64
	// behind counts the keys [sealer.advance] destroyed in memory: the
	// state on the disk still holds them until [sealer.commit] or
	// [sealer.persist].
	behind uint64
	// late are the records written unsealed after the log's last sealed
	// record, in order, when they are sealed late by this append (see
	// [Record.LateSeals]): the state is at the key that would have
	// sealed the first of them.
	late []chained
	// gapSeq, when the state is past the keys of unsealed records after
	// the log's last sealed record, is that record's seq: keys sealed
	// records cut off the log, and the stretch is not sealed late.
	gapSeq uint64
}

// chained is a record's place in the chain: its seq, prev and hash, and
// whether it is unsealed because sealing had stopped.
type chained struct {
	seq        uint64
	prev, hash string
	stopped    bool
}

// lateSeals returns the seals of the records s.late with the keys
// given, the first of epoch first.
func (s *sealer) lateSeals(first uint64, keys [][32]byte) []string {
	seals := make([]string, len(s.late))
	for i, c := range s.late {
		h, _ := hex.DecodeString(c.hash)
		e := first + uint64(i)
		seals[i] = formatSeal(s.state.ID, e, sealTag(keys[i], s.state.ID, e, h))
	}
	return seals
}

// openSealer opens the sealing state for an append. It returns nil, nil
// when path is "" or no state was ever written there (sealing not set
// up).
func openSealer(path string) (*sealer, error) {
	if path == "" {
		return nil, nil
	}
	f, err := safefile.OpenTrusted(path, unix.O_RDWR, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sealStateLen+1)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	st, err := parseSealState(buf[:n])
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &sealer{f: f, path: path, state: st}, nil
}

// sealCheckpoint gives c its checkpoint seal, under the state's key,
// when the state is at the epoch after that of the record c names (as
// right after the append that sealed it); otherwise c keeps none.
func (s *sealer) sealCheckpoint(c *Checkpoint) {
	if s == nil || c.Seal == "" {
		return
	}
	p, err := ParseSeal(c.Seal)
	if err != nil || p.ID != s.state.ID || s.state.Epoch != p.Epoch+1 {
		return
	}
	// Sealed as a reader reads it: its line carries strings that are not
	// UTF-8 (a log path, in the library) with U+FFFD in their place.
	if !utf8.ValidString(c.Host) || !utf8.ValidString(c.Log) || !utf8.ValidString(c.Time) || !utf8.ValidString(c.Hash) || !utf8.ValidString(c.Seal) {
		if read, ok := ParseCheckpoint(c.Line()); ok {
			*c = read
		}
	}
	c.CheckpointSeal = formatSeal(s.state.ID, s.state.Epoch, headTag(s.state.Key, s.state.ID, s.state.Epoch, c))
}

func (s *sealer) close() {
	if s != nil {
		s.f.Close()
	}
}

// MaxSealLag is how many records the sealing state may be behind the log
// and still be evolved past them: a crash leaves it one behind, a failed
// write of the state one per append until one works. More means a state
// restored from an older copy (a backup, a snapshot: which also hold keys
// that should be gone); the records are then written unsealed, with the
// reason, until `seal-init --replace`.
const MaxSealLag = 4096

// advance makes the state at least epoch e (after a record sealed with
// e-1 that the state does not know of), and notes how many keys it is
// past e (skipped).
func (s *sealer) advance(id SealID, e uint64) error {
	if id != s.state.ID || s.state.Epoch >= e {
		if id == s.state.ID {
			s.skipped = s.state.Epoch - e
		}
		return nil
	}
	if lag := e - s.state.Epoch; lag > MaxSealLag {
		return fmt.Errorf("%s is %d records behind the log (restored from an older copy?)", s.path, lag)
	}
	s.behind += e - s.state.Epoch
	s.evolve(e)
	return nil
}

// persist writes the state back and waits for it to reach the disk:
// for a reader that moved a state left behind the log (a crash before a
// commit's write-back landed) and appends nothing, so that the keys of
// records written do not stay on the node until the next append.
func (s *sealer) persist() error {
	if _, err := s.f.WriteAt(s.state.marshal(), 0); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", s.path, err)
	}
	s.behind = 0
	return nil
}

// evolve moves the state to epoch e, destroying the keys before it.
func (s *sealer) evolve(e uint64) {
	for s.state.Epoch < e {
		s.state.Key = nextSealKey(s.state.Key)
		s.state.Epoch++
	}
}

// keys returns the keys of the next n records and the first one's
// epoch. The state on the disk keeps them until [sealer.commit].
func (s *sealer) keys(n int) (uint64, [][32]byte) {
	keys := make([][32]byte, n)
	k := s.state.Key
	for i := range n {
		keys[i] = k
		k = nextSealKey(k)
	}
	return s.state.Epoch, keys
}

// commit replaces the state on the disk with the one past the first n
// keys handed out, once the n records they sealed are on the disk: the
// keys are then gone from the node. Destroying them only after the write
// means every key seals a record (a failed write hands the same keys to
// the next append, and keys of records not written stay), so a verifier
// can demand that epochs follow each other without a gap. The state's
// block is written back without waiting for it: a crash before it lands
// leaves the old state, and the next append, or the next checkpoint
// ([Log.CheckpointIfDue], which writes it back), evolves it past the
// last sealed record in the log (see [Log.sealerFor]).
func (s *sealer) commit(n int) error {
	if s == nil || n == 0 {
		return nil
	}
	// The n keys were handed out by this sealer: no lag check (advance's
	// is for a state restored from an older copy).
	s.evolve(s.state.Epoch + uint64(n))
	if _, err := s.f.WriteAt(s.state.marshal(), 0); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := unix.SyncFileRange(int(s.f.Fd()), 0, int64(sealStateLen), unix.SYNC_FILE_RANGE_WRITE); err != nil {
		return fmt.Errorf("sync %s: %w", s.path, err)
	}
	return nil
}

// SealChecker checks the seals of checkpoints one at a time against
// keys: whether a checkpoint is one a node made, not a line anyone could
// add to a collector's stream. It derives each key once, as far as the
// epochs checked claim and at most [MaxSealDerive], and keeps every
// [sealStride]-th key: a checkpoint whose epoch is below the farthest
// derived costs at most sealStride derivations, in any order.
type SealChecker struct {
	chains map[SealID]*sealChain
	// derived counts the keys derived (tests).
	derived uint64
}

// sealChain is what a [SealChecker] derived of one key.
type sealChain struct {
	kept  [][32]byte // kept[i]: the key of epoch i*sealStride
	epoch uint64     // the farthest epoch derived
	cur   [32]byte   // its key
}

// sealStride is how many keys apart [SealChecker] keeps one: at most
// 8 MiB of keys per key at MaxSealDerive, and a check costs at most 256
// derivations (about 0.25 ms) below the farthest epoch derived, forged
// ones too (a given key's ID is in every seal it made).
const sealStride = 256

// NewSealChecker returns a [SealChecker] of keys.
func NewSealChecker(keys []VerifyKey) *SealChecker {
	sc := &SealChecker{chains: map[SealID]*sealChain{}}
	for _, k := range keys {
		sc.chains[k.ID] = &sealChain{kept: [][32]byte{k.Key}, cur: k.Key}
	}
	return sc
}

// Sealed reports whether c carries a seal of one of the keys whose tag
// checks.
func (sc *SealChecker) Sealed(c Checkpoint) bool {
	_, _, ok := sc.sealed(&c)
	return ok
}

// HeadSealed reports whether c carries a seal of one of the keys whose
// tag checks and a checkpoint seal of the same key that checks too: c's
// host, log, seq and time are then those the node wrote, not only its
// hash (checkpoint format 1.1).
func (sc *SealChecker) HeadSealed(c Checkpoint) bool {
	p, ch, ok := sc.sealed(&c)
	if !ok {
		return false
	}
	q, ok := headSealOf(&c, p)
	return ok && headChecks(sc.key(ch, q.Epoch), q, &c)
}

// sealed checks c's record seal; it returns the seal and its key's chain.
func (sc *SealChecker) sealed(c *Checkpoint) (ParsedSeal, *sealChain, bool) {
	p, err := ParseSeal(c.Seal)
	if c.Seal == "" || err != nil || p.Epoch > MaxSealDerive {
		return p, nil, false
	}
	ch, ok := sc.chains[p.ID]
	h, err := hex.DecodeString(c.Hash)
	if !ok || err != nil || len(h) != sha256.Size {
		return p, nil, false
	}
	return p, ch, sealChecks(sc.key(ch, p.Epoch), p, c)
}

// keyAt returns the key of epoch e of the key id, if it is one of the
// checker's and e at most MaxSealDerive+1.
func (sc *SealChecker) keyAt(id SealID, e uint64) ([32]byte, bool) {
	ch, ok := sc.chains[id]
	if !ok || e > MaxSealDerive+1 {
		return [32]byte{}, false
	}
	return sc.key(ch, e), true
}

// key returns the key of epoch e of ch (e at most MaxSealDerive+1).
func (sc *SealChecker) key(ch *sealChain, e uint64) [32]byte {
	if e >= ch.epoch {
		// Derive on, keeping every sealStride-th key, up to the epoch.
		for ch.epoch < e {
			ch.cur = nextSealKey(ch.cur)
			sc.derived++
			if ch.epoch++; ch.epoch%sealStride == 0 {
				ch.kept = append(ch.kept, ch.cur)
			}
		}
		return ch.cur
	}
	k := ch.kept[e/sealStride]
	for i := e / sealStride * sealStride; i < e; i++ {
		k = nextSealKey(k)
	}
	return k
}
