package blob

import (
	"sync"

	"github.com/opencontainers/go-digest"
)

// Locks serialises, within one process, the operations that make a blob
// reachable (store its bytes, then link it or record a manifest naming it)
// with garbage collection deleting that blob. Holders keep the lock of a
// digest from the moment they rely on the stored bytes until the metadata
// that keeps them alive is committed. The zero value is ready to use; a nil
// *Locks locks nothing.
type Locks struct {
	mu sync.Mutex
	m  map[digest.Digest]*digestLock
}

type digestLock struct {
	refs int
	mu   sync.Mutex
}

// Lock locks d and returns the function that unlocks it.
func (l *Locks) Lock(d digest.Digest) (unlock func()) {
	if l == nil {
		return func() {}
	}
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[digest.Digest]*digestLock)
	}
	e := l.m[d]
	if e == nil {
		e = &digestLock{}
		l.m[d] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(l.m, d)
		}
		l.mu.Unlock()
	}
}
