package postgres_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta/postgres"
)

// TestTryLock elects a leader among two stores (replicas) on one schema.
func TestTryLock(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)

	releaseA, ok, err := a.TryLock(ctx, "gc")
	if err != nil || !ok {
		t.Fatalf("first TryLock(gc) = %v, %v; want acquired", ok, err)
	}
	if _, ok, err := b.TryLock(ctx, "gc"); err != nil || ok {
		t.Fatalf("TryLock(gc) on a second replica while the first holds it = %v, %v; want refused", ok, err)
	}
	// The lock is per store connection, not per Store: the holder's own
	// Store does not get it twice either.
	if _, ok, err := a.TryLock(ctx, "gc"); err != nil || ok {
		t.Fatalf("second TryLock(gc) on the holder = %v, %v; want refused", ok, err)
	}
	releaseB, ok, err := b.TryLock(ctx, "scrub")
	if err != nil || !ok {
		t.Fatalf("TryLock(scrub) = %v, %v; want acquired: names are independent", ok, err)
	}
	releaseB()
	releaseB() // idempotent

	// Another schema (another custody installation on the same server)
	// has its own locks.
	other := open(t, freshSchema(t))
	releaseO, ok, err := other.TryLock(ctx, "gc")
	if err != nil || !ok {
		t.Fatalf("TryLock(gc) in another schema = %v, %v; want acquired", ok, err)
	}
	releaseO()

	releaseA()
	releaseB2, ok, err := b.TryLock(ctx, "gc")
	if err != nil || !ok {
		t.Fatalf("TryLock(gc) after the holder released = %v, %v; want acquired", ok, err)
	}
	releaseB2()
}

// TestTryLockExclusive has two replicas run a job guarded by TryLock many
// times at once: the job never runs on both at the same time.
func TestTryLockExclusive(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	stores := []*postgres.Store{open(t, u), open(t, u)}
	var (
		running, maxRunning, runs atomic.Int32
		wg                        sync.WaitGroup
		errs                      [2]error
	)
	for i, s := range stores {
		wg.Go(func() {
			for range 30 {
				release, ok, err := s.TryLock(ctx, "job")
				if err != nil {
					errs[i] = err
					return
				}
				if !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				n := running.Add(1)
				if n > maxRunning.Load() {
					maxRunning.Store(n)
				}
				runs.Add(1)
				time.Sleep(2 * time.Millisecond)
				running.Add(-1)
				release()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if maxRunning.Load() != 1 || runs.Load() == 0 {
		t.Fatalf("job ran %d times, at most %d at once; want at least once and never concurrently", runs.Load(), maxRunning.Load())
	}
	t.Logf("job ran %d times in 60 attempts", runs.Load())
}

// TestConcurrentOpenFullSchema opens 4 stores at once on an empty schema
// and uses the tables of the latest migration through each at once.
func TestConcurrentOpenFullSchema(t *testing.T) {
	u := freshSchema(t)
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), u) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	for i := range n {
		wg.Go(func() {
			_, errs[i] = stores[i].PutPolicy(t.Context(), "p", []byte(`{}`), time.Now(), nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("PutPolicy through store %d: %v", i, err)
		}
	}
	ps, err := stores[0].CurrentPolicies(t.Context())
	if err != nil || len(ps) != 1 || ps[0].Version != n {
		t.Fatalf("CurrentPolicies = %+v, %v; want version %d", ps, err, n)
	}
	var rows, version int
	if err := rawConn(t, u).QueryRow(t.Context(), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion || version != postgres.SchemaVersion {
		t.Fatalf("schema_migrations: %d rows up to version %d; want each of the %d versions once", rows, version, postgres.SchemaVersion)
	}
}
