package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/tlog"
)

// TestReviewSearchStaleRowsBelowIdenticalLeaf: a log rolled back behind
// the server's back and appended to again, where one re-appended leaf
// happens to be the very entry the log held at that index before. The
// rows between the rollback point and that leaf are stale, yet below
// the last row that matches its leaf (searchTop): searches must still
// find the leaves there, before and after the indexer catches up.
func TestReviewSearchStaleRowsBelowIdenticalLeaf(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 600, "a")
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, u)
	for _, q := range []string{`DELETE FROM tlog_leaves WHERE idx >= 450`, `DELETE FROM tlog_nodes`, `UPDATE tlog_head SET size = 450`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rng = (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	redo, redoNodes := searchLog(t, rng, 0, 450, "a")
	var (
		other      []tlog.Leaf
		otherNodes []tlog.Node
	)
	// 450..499 differ, 500 is the entry the log held there, 501..549 differ.
	for _, part := range []struct {
		first, n int
		salt     string
	}{{450, 50, "bb"}, {500, 1, "a"}, {501, 49, "bb"}} {
		ls, ns := searchLog(t, rng, part.first, part.n, part.salt)
		other, otherNodes = append(other, ls...), append(otherNodes, ns...)
	}
	if string(other[50].Entry) != string(leaves[500].Entry) {
		t.Fatal("leaf 500 was meant to be re-appended as it was")
	}
	if err := s.TlogFillNodes(ctx, redoNodes); err != nil {
		t.Fatal(err)
	}
	if err := s.TlogAppend(ctx, 450, other, otherNodes); err != nil {
		t.Fatal(err)
	}
	all := append(redo, other...)
	agreeWithScan(t, s, "rolled back, stale rows", all, 100, 460, 549)
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	agreeWithScan(t, s, "rolled back, indexed", all, 100, 460, 549)
}

// TestReviewMigration12Rerun: migration 12 run again on a database that
// already has it (the migration tests rewind schema_migrations), with
// leaves the indexer has not reached yet: those leaves have no doc (it
// is no longer written), and must not be filed as indexed with nothing
// to find.
func TestReviewMigration12Rerun(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 200, "a")
	if err := s.TlogAppend(ctx, 0, leaves[:100], nodes); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.TlogAppend(ctx, 100, leaves[100:], nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rawConn(t, u).Exec(ctx, `DELETE FROM schema_migrations WHERE version >= 12`); err != nil {
		t.Fatal(err)
	}
	s = open(t, u)
	s.StopSearchIndexer()
	agreeWithScan(t, s, "migration 12 run again", leaves, 0, 150, 199)
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	agreeWithScan(t, s, "migration 12 run again, indexed", leaves, 0, 150, 199)
}

// TestReviewSearchOddEntriesAsSQLite: entries the server does not write
// but a log may hold (non-object JSON, fields that are not strings, a
// time that is a number or a boolean) are found by the same searches on
// both backends, whether indexed or in the tail.
func TestReviewSearchOddEntriesAsSQLite(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	pg := open(t, u)
	pg.StopSearchIndexer()
	lite, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	entries := []string{
		`[1,2]`, `["r"]`, `"r"`, `5`, `null`, `true`, `{}`,
		`{"repo":"r","time":"2026-03-03T00:00:00.000000000Z"}`,
		`{"repo":5,"time":"2026-03-03T00:00:00.000000000Z"}`,
		`{"repo":["r"]}`, `{"repo":{"a":null}}`, `{"repo":null}`,
		`{"repo":"r","time":5}`, `{"repo":"r","time":true}`, `{"repo":"r","time":null}`,
		`{"repo":"r","time":"9"}`, `{"repo":"r","actor":"a","actor":"b"}`,
		`{"repo":"r","action":"x","nested":{"repo":"q"}}`,
	}
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	var (
		leaves []tlog.Leaf
		nodes  []tlog.Node
	)
	for i, e := range entries {
		h := rfc6962.DefaultHasher.HashLeaf([]byte(e))
		leaves = append(leaves, tlog.Leaf{Index: uint64(i), Entry: []byte(e), Hash: h})
		if err := rng.Append(h, func(id compact.NodeID, hash []byte) { nodes = append(nodes, tlog.Node{ID: id, Hash: hash}) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []tlog.Store{pg, lite} {
		if err := st.TlogAppend(ctx, 0, leaves, nodes); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	queries := []tlog.Query{
		{}, {Repo: "r"}, {Repo: "q"}, {Repo: "5"}, {Actor: "a"}, {Actor: "b"},
		{Since: at}, {Until: at}, {Repo: "r", Since: at}, {Repo: "r", Until: at.Add(time.Hour)},
		{Newest: true, Limit: 3},
	}
	search := func(st tlog.Store, q tlog.Query) []uint64 {
		t.Helper()
		ls, err := st.TlogSearch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out := []uint64{}
		for _, l := range ls {
			out = append(out, l.Index)
		}
		return out
	}
	compare := func(when string) {
		t.Helper()
		// Let SQLite's indexer catch up so both sides are compared as read
		// through their search tables as well as the tail.
		for _, q := range queries {
			if p, l := search(pg, q), search(lite, q); !slices.Equal(p, l) {
				t.Errorf("%s: search %+v: PostgreSQL finds %v, SQLite %v", when, q, p, l)
			}
		}
	}
	compare("tail")
	if err := pg.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	compare("indexed")
}

// TestReviewReplicasChangesAndWriters: three replicas' changes (each
// appending its entries in its own transaction, TlogInsertAt) and their
// logs' own writers append at once; the log stays one contiguous
// sequence with a valid tree: every entry is in it once, a checkpoint of
// each replica verifies, and Scrub finds nothing wrong.
func TestReviewReplicasChangesAndWriters(t *testing.T) {
	u := freshSchema(t)
	ctx := t.Context()
	signer, vkey, err := tlog.LoadOrCreateKey(t.TempDir(), "custody/test")
	if err != nil {
		t.Fatal(err)
	}
	const replicas, changes = 3, 15
	type replica struct {
		s interface {
			LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
		}
		l *tlog.Log
	}
	var rs []replica
	for range replicas {
		s := open(t, u)
		l, err := tlog.Open(ctx, s, tlog.Options{Signer: signer, VerifierKey: vkey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		rs = append(rs, replica{s, l})
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		inTx   int
		errs   []error
		report = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	)
	for r, rp := range rs {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range changes {
					repo := fmt.Sprintf("r%d-%d-%d", r, w, i)
					es := []tlog.Entry{
						{Action: "blob.upload", Actor: "alice", Auth: "password", Repo: repo, Result: "ok"},
						{Action: "tag.set", Actor: "alice", Auth: "password", Repo: repo, Result: "ok"},
					}
					p := rp.l.Within(func() []tlog.Entry { return es })
					if err := rp.s.LinkBlob(tlog.WithPending(ctx, p), repo, digest.FromString(repo), 1); err != nil {
						report(err)
						return
					}
					if p.Seal() {
						mu.Lock()
						inTx++
						mu.Unlock()
					} else if err := rp.l.Append(es...); err != nil {
						report(err)
						return
					}
					if err := rp.l.Append(tlog.Entry{Action: "writer", Actor: "bob", Auth: "password", Repo: repo, Result: "ok"}); err != nil {
						report(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d of %d changes committed their entries in their own transaction", inTx, replicas*2*changes)
	want := uint64(replicas * 2 * changes * 3)
	for _, rp := range rs {
		rp.l.Flush()
	}
	for i, rp := range rs {
		cp, err := rp.l.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("checkpoint of replica %d: %v", i, err)
		}
		if cp.Size > want {
			t.Fatalf("checkpoint of replica %d has size %d, more than the %d entries", i, cp.Size, want)
		}
	}
	check := open(t, u)
	n, err := check.TlogSize(ctx)
	if err != nil || n != want {
		t.Fatalf("TlogSize = %d, %v; want %d", n, err, want)
	}
	ls, err := check.TlogLeaves(ctx, 0, n)
	if err != nil || uint64(len(ls)) != n {
		t.Fatalf("TlogLeaves = %d leaves, %v", len(ls), err)
	}
	seen := map[string]int{}
	for i, l := range ls {
		if l.Index != uint64(i) {
			t.Fatalf("leaf %d has index %d", i, l.Index)
		}
		if string(l.Hash) != string(tlog.LeafHash(l.Entry)) {
			t.Fatalf("leaf %d's hash is not its entry's", i)
		}
		seen[string(l.Entry)]++
	}
	l, err := tlog.Open(ctx, check, tlog.Options{Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint of the whole log: %v", err)
	}
	if ok, err := l.Scrub(ctx); err != nil || !ok {
		t.Fatalf("Scrub = %v, %v", ok, err)
	}
	if err := check.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if rows := indexedRows(t, u); rows != int64(want) {
		t.Fatalf("tlog_search holds %d rows, want %d", rows, want)
	}
	for r := range replicas {
		repo := fmt.Sprintf("r%d-1-7", r)
		got, err := check.TlogSearch(ctx, tlog.Query{Repo: repo})
		if err != nil || len(got) != 3 {
			t.Fatalf("search of %s = %d leaves, %v; want 3", repo, len(got), err)
		}
	}
}
