package tlog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// Appends inside another transaction.
//
// Append hands entries to the log's writer, which stores them in a
// transaction of its own. The entries of a change to the metadata
// database that holds the log can instead be stored in the change's own
// transaction, so that the change and its entries commit together, with
// one durable commit: Within returns such a Pending append, WithPending
// puts it in the context of the change's write, and the metadata store
// (the log's Store) runs it inside that write's transaction, just before
// its COMMIT, which is then durable, and reports it committed after. A
// store's write under a context without a Pending, or with one of another
// log or store, does neither.

// ErrAppendBusy is wrapped by the error of a TxStore's TlogInsertAt, and
// then of Pending.Append, when another transaction is appending to the
// log and the store does not wait for it: the transaction then commits
// its other writes without the entries (Pending.Committed is not
// called), and the caller stores them with Log.Append, whose group
// commit shares one append among the changes that met one another.
var ErrAppendBusy = errors.New("tlog: another transaction is appending")

// TxStore is the log's storage as one transaction of its Store sees it:
// what a Pending append reads and writes inside that transaction.
type TxStore interface {
	// TlogInsertAt stores leaves (numbered from size) and the nodes they
	// complete, if the log holds size leaves; nodes overwrite nodes of
	// the same ID. Either way it keeps other appenders (other replicas'
	// transactions) from appending until the transaction ends, and
	// returns the number of leaves the log held: if that is not size, it
	// stored nothing. It may instead fail with an error wrapping
	// ErrAppendBusy when another transaction is appending. Checking and
	// storing in one call saves a round trip to a database server.
	TlogInsertAt(ctx context.Context, size uint64, leaves []Leaf, nodes []Node) (uint64, error)
	// TlogNodes returns the hashes of the nodes ids, or ErrNotFound if one
	// is missing.
	TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
}

// Pending is an append of entries that a transaction of the log's Store
// makes together with the other writes of that transaction (see Within).
type Pending struct {
	l       *Log
	entries func() []Entry

	mu        sync.Mutex
	rng       *compact.Range // the tree after the last Append; nil: nothing appended
	committed bool           // Committed was called after an Append
	sealed    bool           // Seal was called: no more Appends
}

// Within returns an append of the entries entries returns, to be made
// inside a transaction of l's Store (WithPending). entries is called by
// each Append, inside the transaction, so it may describe what the
// transaction's other writes did.
func (l *Log) Within(entries func() []Entry) *Pending {
	return &Pending{l: l, entries: entries}
}

// For reports whether p is to be appended by a transaction of store: p is
// not nil, p's log is stored in store, and p is neither committed nor
// sealed.
func (p *Pending) For(store Store) bool {
	if p == nil || p.l.store != store {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.committed && !p.sealed
}

// Append stores p's entries through st, the view of the log of a
// transaction that has not committed yet, on top of the entries st holds
// (reloading the tree from st when other writers appended first). The
// transaction must commit durably and then call Committed; if it does not
// commit, nothing happened. It may be called again by a retried
// transaction.
func (p *Pending) Append(ctx context.Context, st TxStore) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.committed || p.sealed {
		return fmt.Errorf("audit log: appending entries that were committed or given up")
	}
	p.rng = nil
	es := p.entries()
	if len(es) == 0 {
		return nil
	}
	batch := p.l.canonical(es)
	p.l.mu.Lock()
	base := p.l.rng
	p.l.mu.Unlock()
	for reloaded := false; ; reloaded = true {
		rng, leaves, nodes, err := extend(base, batch)
		if err != nil {
			return err
		}
		size, err := st.TlogInsertAt(ctx, base.End(), leaves, nodes)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		if size == base.End() {
			p.rng = rng
			return nil
		}
		if reloaded {
			return fmt.Errorf("audit log: the log's size went from %d to %d inside one transaction", base.End(), size)
		}
		// Another writer (the log's writer, or a replica) appended
		// first: the transaction's tree is the one to extend.
		ids := compact.RangeNodes(0, size, nil)
		hashes, err := st.TlogNodes(ctx, ids)
		if err == nil {
			base, err = factory.NewRange(0, size, hashes)
		}
		if err != nil {
			return fmt.Errorf("audit log: loading the tree of size %d: %w", size, err)
		}
	}
}

// Committed records that the transaction of p's last Append committed
// durably: p's entries are stored, and the log's tree grows to include
// them.
func (p *Pending) Committed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.committed || p.sealed {
		return
	}
	p.committed = true
	if p.rng != nil {
		p.l.advance(p.rng)
	}
}

// Seal ends p: no transaction appends it any more. It reports whether p's
// entries were committed; if not, the caller stores them another way
// (Log.Append).
func (p *Pending) Seal() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sealed = true
	return p.committed
}

// Log returns the log p appends to.
func (p *Pending) Log() *Log { return p.l }

type pendingKey struct{}

// WithPending returns a context under which the next write of p's log's
// Store appends p inside its transaction and commits durably (see
// "Appends inside another transaction" above).
func WithPending(ctx context.Context, p *Pending) context.Context {
	return context.WithValue(ctx, pendingKey{}, p)
}

// PendingIn returns the Pending of ctx (WithPending), or nil.
func PendingIn(ctx context.Context) *Pending {
	p, _ := ctx.Value(pendingKey{}).(*Pending)
	return p
}
