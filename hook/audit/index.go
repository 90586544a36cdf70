package audit

import (
	"context"
	"hash/maphash"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// rotatedIndex remembers, for the rotated files a long-running writer's
// searches read ([Options.IndexRotated]), which container IDs each holds
// records of: a rotated file does not change, so a search for a
// container it holds no record of skips it. Without it, every search for
// a container the log does not hold (the event recorder's and the NRI
// plugin's "recorded already?" at each start) read the whole search
// window, 5 × rotate_bytes, and a burst of starts waited for one
// another's searches: containers that lived under a second were gone
// before the recorder inspected them.
type rotatedIndex struct {
	mu    sync.Mutex
	seed  maphash.Seed
	files map[fileID]*fileIndex
	tick  uint64
}

// fileIndex is what [rotatedIndex] knows of one rotated file: its size,
// change time and the end of its last complete line when it was read,
// the hashes of the container IDs of its records, and whether it holds
// a damage record (such a file is never skipped: the lines its damage
// records list, and the damage records they uncount, are the search's
// to know: a stale copy of a start in the file before, listed by one
// first in a file skipped, was taken for the container's last).
type fileIndex struct {
	size, end int64
	ctime     unix.StatxTimestamp
	ids       map[uint64]struct{}
	damages   bool
	used      uint64
}

// maxIndexedFiles bounds the files [rotatedIndex] remembers: the search
// window's, and as many again (those rotated out of it are forgotten,
// least recently used first).
func maxIndexedFiles() int { return 2 * (SearchFiles + 1) }

func newRotatedIndex() *rotatedIndex {
	return &rotatedIndex{seed: maphash.MakeSeed(), files: map[fileID]*fileIndex{}}
}

// skip reports whether the rotated file at path surely holds no record of
// container id, reading it once (outside the index's lock, looking at
// ctx: a search out of time is left to make and to fail) if it was not
// read before, or changed since; seen, if not nil, gets the file's
// identity, size and the end of its last complete line, as [lastIn] notes
// them. Any doubt (an error, ctx done) is false: the file is searched.
func (x *rotatedIndex) skip(ctx context.Context, path, id string, seen *searchedFile) bool {
	if ctx != nil && ctx.Err() != nil {
		return false // the search fails with ctx's error, as without the index
	}
	f, err := openOwned(path, unix.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	var st unix.Statx_t
	if unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, statxMask|unix.STATX_CTIME, &st) != nil || st.Mask&unix.STATX_CTIME == 0 {
		return false
	}
	fid, size := statxID(&st)
	if fid.born == 0 && fid.nsec == 0 {
		// Without a birth time, a file removed by retention and a later
		// one given its inode could pass for one.
		return false
	}
	h := maphash.String(x.seed, id)
	x.mu.Lock()
	x.tick++
	fi := x.files[fid]
	if fi != nil && fi.size == size && fi.ctime == st.Ctime {
		fi.used = x.tick
		_, has := fi.ids[h]
		damages := fi.damages
		x.mu.Unlock()
		return !has && !damages && x.skipped(fid, size, fi.end, seen)
	}
	x.mu.Unlock()
	// Not read, or changed in place (a repair, an edit: its change time
	// tells, where its size may not).
	if fi = x.read(ctx, f, path, size); fi == nil {
		return false
	}
	fi.ctime = st.Ctime
	_, has := fi.ids[h]
	x.mu.Lock()
	x.tick++
	fi.used = x.tick // before evict: the newest is never the one evicted
	x.files[fid] = fi
	x.evict()
	x.mu.Unlock()
	return !has && !fi.damages && x.skipped(fid, size, fi.end, seen)
}

// skipped notes in seen (if not nil) what a search of the skipped file
// would have, and returns true.
func (x *rotatedIndex) skipped(fid fileID, size, end int64, seen *searchedFile) bool {
	if seen != nil {
		seen.id, seen.size, seen.end = fid, size, end
	}
	return true
}

// read reads the container IDs of the records of f (path, size bytes):
// each line's as the search decodes it (a line that does not decode
// matches no search, and one that decodes only in part is taken by its
// head). nil when it cannot be read, or ctx is done.
func (x *rotatedIndex) read(ctx context.Context, f *os.File, path string, size int64) *fileIndex {
	fi := &fileIndex{size: size, ids: map[uint64]struct{}{}}
	n := 0
	for l, err := range linesIn(f, path, size) {
		if err != nil {
			return nil
		}
		if n++; ctx != nil && n%searchCheck == 0 && ctx.Err() != nil {
			return nil
		}
		if l.Torn {
			continue // no complete line: a search skips it too
		}
		fi.end = l.Offset + int64(len(l.Data)) + l.Long + 1
		if l.Data == nil {
			continue // longer than any record: no search decodes it
		}
		if h, _, ok := HeadOf(l.Data); ok {
			fi.ids[maphash.String(x.seed, h.ContainerID)] = struct{}{}
		}
		fi.damages = fi.damages || damageHead(l.Data)
	}
	return fi
}

// evict forgets the least recently used files beyond [maxIndexedFiles];
// x.mu is held.
func (x *rotatedIndex) evict() {
	for len(x.files) > maxIndexedFiles() {
		var oldest fileID
		first := true
		for id, fi := range x.files {
			if first || fi.used < x.files[oldest].used {
				oldest, first = id, false
			}
		}
		delete(x.files, oldest)
	}
}

// KeepsBirthTimes reports whether the file at path (which must exist; a
// symlink is followed) has a birth time, which [Options.IndexRotated]
// needs to tell a rotated file from a later one given its inode: on a
// file system without them (ext4 with 128-byte inodes, NFS, FUSE),
// searches read the whole window as without the index.
func KeepsBirthTimes(path string) bool {
	var st unix.Statx_t
	return unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME, &st) == nil && st.Mask&unix.STATX_BTIME != 0
}
