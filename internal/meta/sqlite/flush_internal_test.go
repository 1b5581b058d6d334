package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/internal/meta"
)

// TestFlushLaterLeavesFull: a write under meta.FlushLater commits with
// synchronous=NORMAL and leaves the write connection at FULL, whether it
// committed or failed, so every other write still fsyncs its commit; and
// Commits counts each kind.
func TestFlushLaterLeavesFull(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	level := func(ctx context.Context) int {
		t.Helper()
		var n int
		err := s.write(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const normal, full = 1, 2
	if got := level(ctx); got != full {
		t.Fatalf("synchronous = %d at open, want FULL (%d)", got, full)
	}
	if got := level(meta.FlushLater(ctx)); got != normal {
		t.Fatalf("synchronous = %d under FlushLater, want NORMAL (%d)", got, normal)
	}
	if got := level(ctx); got != full {
		t.Fatalf("synchronous = %d after a write under FlushLater, want FULL (%d)", got, full)
	}
	boom := errors.New("boom")
	if err := s.write(meta.FlushLater(ctx), func(*sql.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing write: %v", err)
	}
	if got := level(ctx); got != full {
		t.Fatalf("synchronous = %d after a failed write under FlushLater, want FULL (%d)", got, full)
	}
	// Commits: three flushed (the level checks), one
	// deferred; the failed write counts as neither.
	if f, d := s.Commits(); f != 3 || d != 1 {
		t.Fatalf("Commits() = %d flushed, %d deferred; want 3, 1", f, d)
	}
}

// TestFlushLaterConcurrent: deferred and flushing writes from many
// goroutines share the one write connection; every flushing write still
// runs at FULL and every deferred one at NORMAL.
func TestFlushLaterConcurrent(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	const workers, writes = 8, 25
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range writes {
				c, want := ctx, 2
				if (w+i)%2 == 0 {
					c, want = meta.FlushLater(ctx), 1
				}
				var got int
				err := s.write(c, func(tx *sql.Tx) error {
					return tx.QueryRowContext(c, `PRAGMA synchronous`).Scan(&got)
				})
				if err == nil && got != want {
					err = fmt.Errorf("write %d of worker %d ran at synchronous=%d, want %d", i, w, got, want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if f, d := s.Commits(); f+d != workers*writes {
		t.Fatalf("Commits() = %d + %d, want %d in all", f, d, workers*writes)
	}
}
