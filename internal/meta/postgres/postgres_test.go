package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/metatest"
	"github.com/custody-dev/custody/internal/meta/postgres"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"
)

// serverURL returns the URL of the test server from CUSTODY_TEST_POSTGRES
// (scripts/postgres.sh starts one). Without it the test is skipped, or
// fails under CI, where the server must be there.
func serverURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("CUSTODY_TEST_POSTGRES")
	if u != "" {
		return u
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("CUSTODY_TEST_POSTGRES is not set under CI: scripts/postgres.sh must start PostgreSQL " +
			"(scripts/test.sh runs it)")
	}
	tb.Skip("CUSTODY_TEST_POSTGRES is not set; run `eval \"$(bash scripts/postgres.sh start)\"` " +
		"or scripts/test.sh to test the PostgreSQL backend")
	return ""
}

// freshSchema creates an empty schema on the test server, dropped when tb
// ends, and returns a URL whose connections use it.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	base := serverURL(tb)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(ctx)
	// Lower case: search_path folds unquoted names.
	schema := "test_" + strings.ToLower(rand.Text())
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("CUSTODY_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(tb testing.TB, url string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	serverURL(t)
	metatest.Run(t, func(t *testing.T) meta.Store {
		return open(t, freshSchema(t))
	})
}

// TestConcurrentOpen starts several stores on one empty schema at once, as
// replicas starting together do: the migrations are applied exactly once
// and every Open succeeds.
func TestConcurrentOpen(t *testing.T) {
	u := freshSchema(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), u) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}

	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, version int
	if err := conn.QueryRow(t.Context(), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != version || rows < 1 {
		t.Errorf("schema_migrations has %d rows up to version %d, want one row per version", rows, version)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	u := freshSchema(t)
	s := open(t, u)
	s.Close()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations(version, applied) VALUES (1000, 0)`); err != nil {
		t.Fatal(err)
	}
	if s, err := postgres.Open(t.Context(), u); err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
}

func TestOpenBadURL(t *testing.T) {
	if s, err := postgres.Open(t.Context(), "postgres://%zz"); err == nil {
		s.Close()
		t.Fatal("Open of a malformed URL succeeded")
	}
}

// TestCheckReadsStore checks that a TagCheck can read from the store while
// its transaction is open, and sees the last committed state.
func TestCheckReadsStore(t *testing.T) {
	ctx := t.Context()
	s := open(t, freshSchema(t))
	m1 := meta.Manifest{Repo: "r", Digest: digest.FromString("one"), MediaType: "application/vnd.oci.image.manifest.v1+json"}
	m2 := meta.Manifest{Repo: "r", Digest: digest.FromString("two"), MediaType: "application/vnd.oci.image.manifest.v1+json"}
	if err := s.PutManifest(ctx, m1, []string{"latest"}, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.PutManifest(ctx, m2, []string{"latest"}, func(tag string, current, next digest.Digest) error {
			d, err := s.ResolveTag(ctx, "r", tag)
			if err != nil {
				return err
			}
			if d != current {
				return fmt.Errorf("ResolveTag in check = %s, want %s", d, current)
			}
			if _, err := s.GetManifest(ctx, "r", next); err == nil {
				return fmt.Errorf("uncommitted manifest %s visible to readers", next)
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read inside a write transaction blocked")
	}
}

// BenchmarkPutManifest compares PutManifest on SQLite and PostgreSQL with
// the same workload as the SQLite package's benchmark.
func BenchmarkPutManifest(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) {
		s, err := sqlite.Open(filepath.Join(b.TempDir(), "meta.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchPut(b, s)
	})
	b.Run("PostgreSQL", func(b *testing.B) {
		benchPut(b, open(b, freshSchema(b)))
	})
	b.Run("PostgreSQL-parallel", func(b *testing.B) {
		s := open(b, freshSchema(b))
		var mu sync.Mutex
		next := 0
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if err := s.PutManifest(b.Context(), benchManifest(i), []string{"latest", fmt.Sprint("v", i)}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func benchPut(b *testing.B, s meta.Store) {
	ctx := b.Context()
	i := 0
	for b.Loop() {
		if err := s.PutManifest(ctx, benchManifest(i), []string{"latest", fmt.Sprint("v", i)}, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchManifest(i int) meta.Manifest {
	return meta.Manifest{
		Repo:      fmt.Sprintf("bench/%d", i%8),
		Digest:    digest.FromString(fmt.Sprint("manifest ", i)),
		MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size:      1000,
		Blobs: []digest.Digest{
			digest.FromString(fmt.Sprint("config ", i)),
			digest.FromString("base layer"),
			digest.FromString(fmt.Sprint("layer ", i)),
		},
		Created: time.Now(),
	}
}

// TestFlushLaterCommitsAsynchronously: a write under meta.FlushLater
// commits with synchronous_commit off, and only it: the setting is local
// to its transaction, so the writes after it (the audit log's among them)
// wait for their WAL flush, which flushes the deferred write's too.
func TestFlushLaterCommitsAsynchronously(t *testing.T) {
	serverURL(t)
	s := open(t, freshSchema(t))
	ctx := t.Context()
	for _, c := range []struct {
		ctx  context.Context
		want string
	}{{ctx, "on"}, {meta.FlushLater(ctx), "off"}, {ctx, "on"}} {
		got, err := s.SynchronousCommit(c.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Fatalf("synchronous_commit = %q under FlushLater=%v, want %q", got, meta.FlushesLater(c.ctx), c.want)
		}
	}
}

// TestChangeLogBusyHead: when another transaction holds the audit log's
// head row, a change's write does not wait for it: it commits the change
// without its entries and without waiting for its flush, and reports the
// entries not committed, so the caller appends them with the log's group
// commit. Once the row is free, the entries go in the change's
// transaction again.
func TestChangeLogBusyHead(t *testing.T) {
	u := freshSchema(t)
	s := open(t, u)
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

	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	holder, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT size FROM tlog_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	p := l.Within(func() []tlog.Entry { return []tlog.Entry{entry} })
	wctx, cancel := context.WithTimeout(tlog.WithPending(ctx, p), 5*time.Second)
	defer cancel()
	if err := s.LinkBlob(wctx, "r", digest.FromString("busy"), 1); err != nil {
		t.Fatalf("LinkBlob while the log's head is locked: %v", err)
	}
	if _, err := s.BlobSize(ctx, "r", digest.FromString("busy")); err != nil {
		t.Fatalf("the change was not committed: %v", err)
	}
	if p.Seal() {
		t.Fatal("entries reported committed while the log's head was locked")
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 0 {
		t.Fatalf("TlogSize = %d, %v; want 0", n, err)
	}
	p = l.Within(func() []tlog.Entry { return []tlog.Entry{entry} })
	if err := s.LinkBlob(tlog.WithPending(ctx, p), "r", digest.FromString("free"), 1); err != nil {
		t.Fatal(err)
	}
	if !p.Seal() {
		t.Fatal("entries not committed with the change once the head was free")
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 1 {
		t.Fatalf("TlogSize = %d, %v; want 1", n, err)
	}
}

// TestChangeLogAfterAnotherReplica: a change's entries go in its own
// transaction also when another replica appended since this replica's
// log last looked: the insert finds the log larger than expected, stores
// nothing, and the entries go on top of the stored tree instead.
func TestChangeLogAfterAnotherReplica(t *testing.T) {
	u := freshSchema(t)
	ctx := t.Context()
	signer, vkey, err := tlog.LoadOrCreateKey(t.TempDir(), "custody/test")
	if err != nil {
		t.Fatal(err)
	}
	openLog := func(s *postgres.Store) *tlog.Log {
		l, err := tlog.Open(ctx, s, tlog.Options{Signer: signer, VerifierKey: vkey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		return l
	}
	a, b := open(t, u), open(t, u)
	la, lb := openLog(a), openLog(b)
	entry := func(repo string) tlog.Entry {
		return tlog.Entry{Action: "blob.upload", Actor: "alice", Auth: "password", Repo: repo, Result: "ok"}
	}
	for _, r := range []string{"a0", "a1", "a2"} {
		if err := la.Append(entry(r)); err != nil {
			t.Fatal(err)
		}
	}
	la.Flush() // lb's tree is still the empty one it opened with
	p := lb.Within(func() []tlog.Entry { return []tlog.Entry{entry("b0"), entry("b1")} })
	if err := b.LinkBlob(tlog.WithPending(ctx, p), "r", digest.FromString("b"), 1); err != nil {
		t.Fatal(err)
	}
	if !p.Seal() {
		t.Fatal("the entries were not committed with the change")
	}
	if n, err := b.TlogSize(ctx); err != nil || n != 5 {
		t.Fatalf("TlogSize = %d, %v; want 5", n, err)
	}
	if n := lb.Size(); n != 5 {
		t.Fatalf("the replica's log has %d entries after the change, want 5", n)
	}
	if _, err := lb.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint after the change: %v", err)
	}
	ok, err := openLog(open(t, u)).Scrub(ctx)
	if err != nil || !ok {
		t.Fatalf("Scrub of the log = %v, %v", ok, err)
	}
}
