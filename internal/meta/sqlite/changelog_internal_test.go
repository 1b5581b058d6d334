package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/tlog"
)

// TestChangeWaitingLeavesEntriesToGroupCommit: a change with pending audit
// entries that has to wait for the write connection (another write holds
// it) commits without a flush of its own and leaves its entries to the
// log's writer (Seal reports them not committed), as PostgreSQL does when
// the log's head row is busy; a change alone stores them in its own
// durable transaction.
func TestChangeWaitingLeavesEntriesToGroupCommit(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	signer, vkey, err := tlog.LoadOrCreateKey(t.TempDir(), "custody/test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(ctx, s, tlog.Options{Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	entry := tlog.Entry{Action: "blob.upload", Actor: "alice", Auth: "password", Repo: "r", Result: "ok"}

	started, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- s.write(ctx, func(*sql.Tx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	p := l.Within(func() []tlog.Entry { return []tlog.Entry{entry} })
	changed := make(chan error, 1)
	go func() { changed <- s.LinkBlob(tlog.WithPending(ctx, p), "r", digest.FromString("waiting"), 1) }()
	// The change is waiting for the connection once it counts as writing.
	for deadline := time.Now().Add(10 * time.Second); s.commits.writing.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the change never waited for the write connection")
		}
		time.Sleep(time.Millisecond)
	}
	_, deferredBefore := s.Commits()
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-changed; err != nil {
		t.Fatalf("LinkBlob while another write held the connection: %v", err)
	}
	if _, err := s.BlobSize(ctx, "r", digest.FromString("waiting")); err != nil {
		t.Fatalf("the change was not committed: %v", err)
	}
	if _, deferred := s.Commits(); deferred != deferredBefore+1 {
		t.Fatalf("deferred commits %d -> %d; want one more (the waiting change)", deferredBefore, deferred)
	}
	if p.Seal() {
		t.Fatal("entries reported committed with a change that waited for the connection")
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 0 {
		t.Fatalf("TlogSize = %d, %v; want 0 (the entries are the caller's to append)", n, err)
	}

	p = l.Within(func() []tlog.Entry { return []tlog.Entry{entry} })
	if err := s.LinkBlob(tlog.WithPending(ctx, p), "r", digest.FromString("alone"), 1); err != nil {
		t.Fatal(err)
	}
	if !p.Seal() {
		t.Fatal("entries of a change alone not committed in its transaction")
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 1 {
		t.Fatalf("TlogSize = %d, %v; want 1", n, err)
	}
}
