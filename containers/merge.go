package containers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// rank orders engines by how much they know: the daemon's own view
// (namespace, pod name) beats a state directory, which beats the audit log.
func rank(c discover.Container) int {
	switch c.Engine {
	case EngineContainerd:
		if c.Name != "" {
			return 0
		}
		return 1
	case EnginePodman, EngineCRIO:
		return 2
	case EngineAuditLog:
		return 4
	default:
		return 3
	}
}

// Key tells containers apart: entries of several sources with one Key
// describe the same container ([Merge] keeps one of them), and entries
// with different Keys are different containers, also when they share an
// engine, namespace and ID (two PIDs: one of them may be a user's state
// naming the ID of root's container).
type Key struct {
	PID int
	ID  string
	// User is the uid=UID namespace of a user's container, else "".
	User string
}

// KeyOf returns the [Key] of c.
func KeyOf(c discover.Container) Key {
	k := Key{PID: c.PID, ID: c.ID}
	if vocab.UsersContainer(c.Namespace) {
		k.User = c.Namespace
	}
	return k
}

// Merge combines container lists from several sources into one, sorted
// by engine, namespace and ID. Entries with the same PID (and ID) describe
// the same container: the most informative is kept, and a missing name or
// namespace is filled from the others. A user's container (namespace
// uid=UID) is merged only with that user's: a state file of a local
// user's that names a root container's ID and PID (a process the state
// source believes to be the user's: see [State.Alive]) would otherwise
// give it the user's name and namespace, or replace it.
func Merge(lists ...[]discover.Container) []discover.Container {
	best := make(map[Key]discover.Container)
	for _, l := range lists {
		for _, c := range l {
			k := KeyOf(c)
			old, ok := best[k]
			if !ok {
				best[k] = c
				continue
			}
			keep, other := old, c
			if rank(c) < rank(old) {
				keep, other = c, old
			}
			if keep.Name == "" {
				keep.Name = other.Name
			}
			if keep.StartTime == 0 {
				keep.StartTime = other.StartTime
			}
			if keep.Namespace == "" && keep.Engine == other.Engine {
				keep.Namespace = other.Namespace
			}
			best[k] = keep
		}
	}
	out := make([]discover.Container, 0, len(best))
	for _, c := range best {
		out = append(out, c)
	}
	// Users' containers after root's: a row or a picture's node lists
	// the first few, and a user picks its engine's name.
	slices.SortFunc(out, func(a, b discover.Container) int {
		return cmp.Or(CompareBool(vocab.UsersContainer(a.Namespace), vocab.UsersContainer(b.Namespace)), cmp.Compare(a.Engine, b.Engine), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.ID, b.ID), cmp.Compare(a.PID, b.PID))
	})
	return out
}

// Multi is a [discover.ContainerSource] that asks several sources at once
// and merges their answers with [Merge]. Its List returns the merged
// containers of every source that answered, together with an error
// joining, per source, why it could not be read: callers print the
// containers and report the error once.
type Multi []discover.ContainerSource

// Name implements [discover.ContainerSource].
func (m Multi) Name() string { return "containers" }

// List implements [discover.ContainerSource].
func (m Multi) List(ctx context.Context) ([]discover.Container, error) {
	cs, errs := listAll(ctx, m, "")
	return cs, errors.Join(errs...)
}

// listAll asks the sources at once and returns their answers merged
// ([Merge]) and the errors of those that failed, each named by its
// source but one named self (said once by the caller).
func listAll(ctx context.Context, sources []discover.ContainerSource, self string) ([]discover.Container, []error) {
	lists := make([][]discover.Container, len(sources))
	errs := make([]error, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		wg.Go(func() {
			l, err := s.List(ctx)
			lists[i] = l
			if err != nil && s.Name() != self {
				err = fmt.Errorf("%s: %w", s.Name(), err)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return Merge(lists...), slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// NamedError is the failure of a source the user named, in
// $NSREL_AUDIT_LOG or an entry of $NSREL_RUNTIME_ROOTS: one missing is
// said (a path mistyped left its containers out without a word), where a
// default one missing only means that the runtime or hook is not
// installed. Path is the path as named.
type NamedError struct {
	Env, Path string
	Err       error
}

func (e *NamedError) Error() string {
	// Quoted, not escaped: the notice escapes it ([vocab.Escape]).
	return fmt.Sprintf("%s names \"%s\": %v", e.Env, e.Path, e.Err)
}

func (e *NamedError) Unwrap() error { return e.Err }

// Local is a [discover.ContainerSource] that needs no daemon: it asks
// its sources at once (normally a [StateSource] and an [AuditSource]) and
// merges their answers with [Merge], so a container both know appears
// once, under the most informative engine. Unlike [Multi] it fails only
// when every source failed: one unreadable source does not hide the
// others' containers. It says so, though ([PartialError]): a source that
// failed while another answered (a bad NSREL_RUNTIME_ROOTS, an audit log
// refused as untrusted) left its containers out without a word, the
// tools exiting 0. A source with nothing to read (no such root or log)
// is not a failure, unless the user named it ([NamedError]); whether one the caller may not read is worth a
// notice is the caller's to decide (not for an unprivileged user).
type Local Multi

// Name implements [discover.ContainerSource].
func (l Local) Name() string { return "runtime-state" }

// List implements [discover.ContainerSource].
func (l Local) List(ctx context.Context) ([]discover.Container, error) {
	// The state source's errors unnamed: it is named as this one is.
	cs, errs := listAll(ctx, l, l.Name())
	if len(errs) == 0 {
		return cs, nil
	}
	if len(cs) == 0 && len(errs) == len(l) {
		return nil, errors.Join(errs...)
	}
	var said []error
	for _, e := range errs {
		var pe *PartialError
		switch {
		case errors.As(e, &pe):
			said = append(said, pe.Err) // a source that did not read everything in time
		case errors.Is(e, fs.ErrNotExist) && !errors.As(e, new(*NamedError)):
		default:
			said = append(said, e)
		}
	}
	if len(said) == 0 {
		return cs, nil
	}
	return cs, &PartialError{Err: errors.Join(said...)}
}

// CompareBool orders false before true, as [cmp.Compare] orders numbers:
// for sorts that put one kind of entry (containers of a user, namespaces
// with containers) apart.
func CompareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
