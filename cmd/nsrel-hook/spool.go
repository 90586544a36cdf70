package main

import (
	"bufio"
	"container/list"
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// spool writes, for each host, streams of its own to files in a
// directory (a host's file and, with more suffixes, files beside it),
// keeping those of the least recently written hosts open, within a share
// of the descriptors the process may have: a collector's stream may name
// any number of hosts (any peer it accepts can name one).
type spool struct {
	dir, prefix string
	// root is dir, opened at the first write: files are made and
	// opened again through it, so that none is made elsewhere once the
	// directory is moved or removed (an interrupted verify --nodes:
	// another user could make its freed name again in /tmp, and a file
	// opened again by name would follow that user's symlink).
	root     *os.Root
	suffixes []string // one stream per suffix ("" the host's file)
	max      int      // hosts with their files open at once
	hosts    []string // in the order they were first written
	paths    map[string]string
	outs     map[string]spoolOut
	lru      *list.List // hosts with their files open, least recently written first
	elem     map[string]*list.Element
}

type spoolOut struct {
	f []*os.File
	w []*bufio.Writer
}

// newSpool returns a spool writing files named PREFIX<N><suffix> in dir,
// whose open files take at most share of the descriptors the process
// may have (at most 4096 hosts).
func newSpool(dir, prefix string, share uint64, suffixes ...string) *spool {
	open := 64
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		open = int(min(max(lim.Cur/share/uint64(len(suffixes)), 8), 4096))
	}
	return &spool{dir: dir, prefix: prefix, suffixes: suffixes, max: open, paths: map[string]string{},
		outs: map[string]spoolOut{}, lru: list.New(), elem: map[string]*list.Element{}}
}

// writers returns host's streams, opening its files (made at the first
// write) when they are not.
func (s *spool) writers(host string) ([]*bufio.Writer, error) {
	if o, ok := s.outs[host]; ok {
		s.lru.MoveToBack(s.elem[host])
		return o.w, nil
	}
	if s.lru.Len() >= s.max {
		if err := s.closeHost(s.lru.Front().Value.(string)); err != nil {
			return nil, err
		}
	}
	if s.root == nil {
		root, err := os.OpenRoot(s.dir)
		if err != nil {
			return nil, err
		}
		s.root = root
	}
	flags := os.O_WRONLY | os.O_APPEND
	p, known := s.paths[host]
	if !known {
		p = filepath.Join(s.dir, s.prefix+strconv.Itoa(len(s.hosts)))
		flags |= os.O_CREATE | os.O_EXCL
	}
	name := filepath.Base(p)
	var o spoolOut
	for _, suffix := range s.suffixes {
		f, err := s.root.OpenFile(name+suffix, flags, 0o600)
		if err != nil {
			for _, f := range o.f {
				f.Close()
			}
			return nil, err
		}
		o.f, o.w = append(o.f, f), append(o.w, bufio.NewWriter(f))
	}
	if !known {
		s.hosts = append(s.hosts, host)
		s.paths[host] = p
	}
	s.outs[host] = o
	s.elem[host] = s.lru.PushBack(host)
	return o.w, nil
}

// closeHost flushes and closes host's files.
func (s *spool) closeHost(host string) error {
	o := s.outs[host]
	delete(s.outs, host)
	s.lru.Remove(s.elem[host])
	delete(s.elem, host)
	var errs []error
	for i, w := range o.w {
		errs = append(errs, w.Flush(), o.f[i].Close())
	}
	return errors.Join(errs...)
}

// close flushes and closes every file open, and the directory.
func (s *spool) close() error {
	var errs []error
	for s.lru.Len() > 0 {
		errs = append(errs, s.closeHost(s.lru.Front().Value.(string)))
	}
	if s.root != nil {
		errs = append(errs, s.root.Close())
		s.root = nil
	}
	return errors.Join(errs...)
}
