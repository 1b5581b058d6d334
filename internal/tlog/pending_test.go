package tlog_test

import (
	"context"
	"testing"

	"github.com/transparency-dev/merkle/compact"

	"github.com/custody-dev/custody/internal/tlog"
)

// rolledBack is a transaction's view of the log whose inserts are never
// committed: it reads the store, and keeps what it was given.
type rolledBack struct {
	st     tlog.Store
	leaves []tlog.Leaf
}

func (r *rolledBack) TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	return r.st.TlogNodes(ctx, ids)
}
func (r *rolledBack) TlogInsertAt(ctx context.Context, at uint64, leaves []tlog.Leaf, _ []tlog.Node) (uint64, error) {
	size, err := r.st.TlogSize(ctx)
	if err == nil && size == at {
		r.leaves = append(r.leaves, leaves...)
	}
	return size, err
}

// TestPendingNotCommitted: an append made in a transaction that does not
// commit (a crash or a rollback after the append ran) does not move the
// Log's tree, is not reported committed, and the log goes on from the
// stored entries.
func TestPendingNotCommitted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, st := openLog(t, dir)
	t.Cleanup(func() { l.Close(); st.Close() })
	if err := l.Append(entry(0)); err != nil {
		t.Fatal(err)
	}
	p := l.Within(func() []tlog.Entry { return []tlog.Entry{entry(1), entry(2)} })
	tx := &rolledBack{st: st}
	if err := p.Append(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if len(tx.leaves) != 2 || tx.leaves[0].Index != 1 {
		t.Fatalf("the append inserted %d leaves from %d, want 2 from 1", len(tx.leaves), tx.leaves[0].Index)
	}
	// No Committed: the transaction rolled back.
	if p.Seal() {
		t.Fatal("Seal reports an append whose transaction did not commit")
	}
	if n := l.Size(); n != 1 {
		t.Fatalf("Size = %d after a rolled-back append, want 1", n)
	}
	if err := p.Append(ctx, tx); err == nil {
		t.Fatal("a sealed append was made again")
	}
	if err := l.Append(entry(3)); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tlog.Verify(ctx, l.Source(), tlog.VerifyOptions{Key: l.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 2 || !v.OK() {
		t.Fatalf("after a rolled-back append: checkpoint of size %d (want 2), problems %+v", cp.Size, v.Problems)
	}
}
