package audit

import (
	"hash/maphash"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// rotatedIndex remembers, for the rotated files a long-running writer's
// searches read ([Options.IndexRotated]), which container IDs each holds
// records of: a rotated file never changes, so a search for a container
// it holds no record of skips it. Without it, every search for a
// container the log does not hold (the event recorder's and the NRI
// plugin's "recorded already?" at each start) read the whole search
// window, 5 × rotate_bytes, and a burst of starts waited for one another's
// searches: containers that lived under a second were gone before the
// recorder inspected them.
type rotatedIndex struct {
	mu    sync.Mutex
	seed  maphash.Seed
	files map[fileID]*fileIndex
	tick  uint64
}

// fileIndex is what [rotatedIndex] knows of one rotated file: its size
// and the end of its last complete line when it was read, and the hashes
// of the container IDs of its records.
type fileIndex struct {
	size, end int64
	ids       map[uint64]struct{}
	used      uint64
}

// maxIndexedFiles bounds the files [rotatedIndex] remembers: the search
// window's, and as many again (those rotated out of it are forgotten,
// least recently used first).
func maxIndexedFiles() int { return 2 * (SearchFiles + 1) }

// skip reports whether the rotated file at path surely holds no record of
// container id, reading it once (under the index's lock: searches of the
// same file wait for one read) if it was not read before; seen, if not
// nil, gets the file's identity, size and the end of its last complete
// line, as [lastIn] notes them. Any doubt (an error, a file that changed)
// is false: the file is searched.
func (x *rotatedIndex) skip(path, id string, seen *searchedFile) bool {
	f, err := openOwned(path, unix.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	var st unix.Statx_t
	if unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, statxMask, &st) != nil {
		return false
	}
	fid, size := statxID(&st)
	if fid.born == 0 && fid.nsec == 0 {
		// Without a birth time, a file removed by retention and a later
		// one given its inode could pass for one.
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.files == nil {
		x.files = map[fileID]*fileIndex{}
		x.seed = maphash.MakeSeed()
	}
	x.tick++
	fi := x.files[fid]
	if fi == nil || fi.size != size {
		if fi = x.read(f, path, size); fi == nil {
			return false
		}
		x.files[fid] = fi
		x.evict()
	}
	fi.used = x.tick
	if _, ok := fi.ids[maphash.String(x.seed, id)]; ok {
		return false
	}
	if seen != nil {
		seen.id, seen.size, seen.end = fid, size, fi.end
	}
	return true
}

// read reads the container IDs of the records of f (path, size bytes):
// each line's as the search decodes it (a line that does not decode
// matches no search, and one that decodes only in part is taken by its
// head). nil when it cannot be read.
func (x *rotatedIndex) read(f *os.File, path string, size int64) *fileIndex {
	fi := &fileIndex{size: size, ids: map[uint64]struct{}{}}
	for l, err := range linesIn(f, path, size) {
		if err != nil {
			return nil
		}
		if l.Torn {
			continue // no complete line: a search skips it too
		}
		fi.end = l.Offset + int64(len(l.Data)) + l.Long + 1
		if l.Data == nil {
			continue // longer than any record: no search decodes it
		}
		id, ok := "", false
		if h, hok := PeekHead(l.Data); hok {
			id, ok = h.ContainerID, true
		} else if r, derr := Decode(l.Data); derr == nil {
			id, ok = r.ContainerID, true
		}
		if ok {
			fi.ids[maphash.String(x.seed, id)] = struct{}{}
		}
	}
	return fi
}

// evict forgets the least recently used files beyond [maxIndexedFiles].
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
