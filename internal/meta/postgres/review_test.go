package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/meta/postgres"
	"github.com/custody-dev/custody/internal/tlog"
)

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

// TestReviewIndexersRaceAppends: two replicas' indexers (and their
// catch-ups called at once) run while both append, and one replica
// closes midway; tlog_search ends with one row per leaf, each matching
// its leaf, and searches agree with a scan.
func TestReviewIndexersRaceAppends(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, _ := searchLog(t, rng, 0, 3000, "a")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		errs []error
	)
	// Appends in batches of 7 from either store, in order; each store's
	// catch-up runs as well, concurrently with its running indexer.
	appendSome := func(s interface {
		TlogAppend(context.Context, uint64, []tlog.Leaf, []tlog.Node) error
		IndexSearch(context.Context) error
	}, closeAt int, closeFn func()) {
		defer wg.Done()
		for {
			mu.Lock()
			if next >= len(leaves) {
				mu.Unlock()
				return
			}
			end := min(next+7, len(leaves))
			err := s.TlogAppend(ctx, uint64(next), leaves[next:end], nil)
			if err == nil {
				next = end
			}
			at := next
			mu.Unlock()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			if at%70 == 0 {
				if err := s.IndexSearch(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
			if closeFn != nil && at >= closeAt {
				closeFn()
				return
			}
		}
	}
	wg.Add(2)
	go appendSome(a, 1500, func() { a.Close() })
	go appendSome(b, 0, nil)
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for indexedRows(t, u) != int64(len(leaves)) {
		if time.Now().After(deadline) {
			t.Fatalf("tlog_search holds %d rows 20 s after the appends, want %d", indexedRows(t, u), len(leaves))
		}
		time.Sleep(50 * time.Millisecond) // polling a background writer's result
	}
	var stale int
	if err := rawConn(t, u).QueryRow(ctx, `SELECT COUNT(*) FROM tlog_search s LEFT JOIN tlog_leaves l ON l.idx = s.idx AND l.leaf_hash = s.leaf_hash WHERE l.idx IS NULL`).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d rows of tlog_search do not match their leaf (%v)", stale, err)
	}
	agreeWithScan(t, b, "raced", leaves, 0, 1499, 2999)
}

// TestReviewSearchPlans: on a log of 50,000 entries, ANALYZEd, the audit
// page's searches (newest, by repository, digest, time range, actor and
// action, each a newest-first page, and the next page) read neither
// table whole.
func TestReviewSearchPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 entries")
	}
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	const n = 50000
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for i := 0; i < n; i += 5000 {
		leaves, nodes := searchLog(t, rng, i, 5000, "a")
		if err := s.TlogAppend(ctx, uint64(i), leaves, nodes); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	// A tail of 200 entries, as a second of appends leaves.
	tail, tailNodes := searchLog(t, rng, n, 200, "a")
	if err := s.TlogAppend(ctx, n, tail, tailNodes); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, u)
	if _, err := conn.Exec(ctx, `ANALYZE tlog_search, tlog_leaves`); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	for _, q := range []tlog.Query{
		{Newest: true, Limit: 50},
		{Newest: true, Limit: 50, Before: 25000},
		{Repo: "team/app3", Newest: true, Limit: 50},
		{Repo: "team/app3", Newest: true, Limit: 50, Before: 1000},
		{Digest: fmt.Sprintf("sha256:%064x", 6), Newest: true, Limit: 50},
		{Repo: "team/app1", Digest: fmt.Sprintf("sha256:%064x", 6), Newest: true, Limit: 50},
		{Since: at.Add(1000 * time.Minute), Until: at.Add(1100 * time.Minute), Newest: true, Limit: 50},
		{Since: at.Add(1000 * time.Minute), Newest: true, Limit: 50},
		{Until: at.Add(100 * time.Minute), Newest: true, Limit: 50},
		{Actor: "alice", Action: "push", Newest: true, Limit: 50},
		{Actor: "alice", Action: "push", Newest: true, Limit: 50, Before: 3000},
		{Repo: "team/none", Newest: true, Limit: 50},
	} {
		query, args, err := postgres.SearchQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v: %s; %s", q, strings.TrimSpace(plan[1]), plan[len(plan)-1])
		if !q.Until.IsZero() && !strings.Contains(strings.Join(plan, "\n"), "tlog_search_time") {
			t.Errorf("plan of %+v does not read the time index:\n%s", q, strings.Join(plan, "\n"))
		}
		// The stale-row fallback of searchTop joins both tables whole;
		// it runs only when the last row is stale ("never executed").
		for _, line := range plan {
			if (strings.Contains(line, "Seq Scan") || strings.Contains(line, "Merge Join") || strings.Contains(line, "Hash Join")) &&
				!strings.Contains(line, "never executed") {
				t.Errorf("plan of %+v reads a table whole:\n%s", q, strings.Join(plan, "\n"))
				break
			}
		}
	}
}

// TestReviewInsertAtMismatchWritesNothing: a change's append at a size
// the log does not hold (smaller or larger) stores no leaf, node or size
// and reports the size it found; at the right size it stores them all;
// while another transaction holds the head row it fails at once with
// tlog.ErrAppendBusy and stores nothing.
func TestReviewInsertAtMismatchWritesNothing(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 16, "a")
	if err := s.TlogAppend(ctx, 0, leaves[:8], nodes[:15]); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, u)
	snapshot := func() string {
		t.Helper()
		var out string
		if err := conn.QueryRow(ctx, `SELECT (SELECT size FROM tlog_head)::text || ' ' ||
			(SELECT COALESCE(string_agg(idx || ':' || encode(leaf_hash, 'hex') || ':' || md5(entry), ',' ORDER BY idx), '') FROM tlog_leaves) || ' ' ||
			(SELECT COALESCE(string_agg(level || '/' || idx || ':' || encode(hash, 'hex'), ',' ORDER BY level, idx), '') FROM tlog_nodes)`).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := snapshot()
	// Other leaves and nodes, as another replica's stale tree would make.
	other := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	ol, on := searchLog(t, other, 0, 12, "zz")
	for _, at := range []uint64{0, 4, 9, 12} {
		ls := ol[at:min(at+3, 12)]
		size, err := s.InsertAt(ctx, at, ls, on)
		if err != nil || size != 8 {
			t.Fatalf("InsertAt(%d) = %d, %v; want 8, nil", at, size, err)
		}
		if after := snapshot(); after != before {
			t.Fatalf("InsertAt(%d) at the wrong size changed the log:\n%s\nwas\n%s", at, after, before)
		}
	}

	holder, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT size FROM tlog_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := s.InsertAt(bctx, 8, leaves[8:], nodes[15:]); !errors.Is(err, tlog.ErrAppendBusy) {
		t.Fatalf("InsertAt while the head row is held = %v after %v; want ErrAppendBusy", err, time.Since(start))
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(); after != before {
		t.Fatalf("a busy InsertAt changed the log")
	}

	size, err := s.InsertAt(ctx, 8, leaves[8:], nodes[15:])
	if err != nil || size != 8 {
		t.Fatalf("InsertAt(8) = %d, %v; want 8, nil", size, err)
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 16 {
		t.Fatalf("TlogSize after InsertAt = %d, %v; want 16", n, err)
	}
	got, err := s.TlogLeaves(ctx, 0, 16)
	if err != nil || len(got) != 16 {
		t.Fatalf("TlogLeaves = %d, %v", len(got), err)
	}
	for i, l := range got {
		if string(l.Entry) != string(leaves[i].Entry) {
			t.Fatalf("leaf %d is %q", i, l.Entry)
		}
	}
	root, err := s.TlogNodes(ctx, []compact.NodeID{compact.NewNodeID(4, 0)})
	if err != nil {
		t.Fatal(err)
	}
	want, err := rng.GetRootHash(nil)
	if err != nil || string(root[0]) != string(want) {
		t.Fatalf("root of 16 = %x, want %x (%v)", root[0], want, err)
	}
}

// TestReviewCloseWhileIndexerWaits: Close returns promptly while the
// search indexer waits for the log's index lock, held by another
// replica's indexer (here a transaction holding the same advisory lock).
func TestReviewCloseWhileIndexerWaits(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	conn := rawConn(t, u)
	holder, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('custody.meta.tlog_search.' || current_schema(), 0))`); err != nil {
		t.Fatal(err)
	}
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 5, "a")
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	watch := rawConn(t, u)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the indexer did not wait for the lock within 10 s")
		}
		time.Sleep(20 * time.Millisecond) // polling the server's lock table
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5 s while the indexer waited for its lock")
	}
	t.Logf("Close took %v", time.Since(start))
}

// TestReviewSearchParallelPlan: a search that PostgreSQL runs as a
// parallel plan (which it may choose by itself for a large table; here
// the planner's costs make it choose one for a small log) returns what
// the serial plan does. custody_jsonb catches jsonb's error in an
// EXCEPTION block, a subtransaction, which a parallel worker cannot
// start: marked PARALLEL SAFE, it failed the search.
func TestReviewSearchParallelPlan(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 3000, "a")
	if err := s.TlogAppend(ctx, 0, leaves[:2000], nil); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.TlogAppend(ctx, 2000, leaves[2000:], nodes); err != nil {
		t.Fatal(err)
	}
	if _, err := rawConn(t, u).Exec(ctx, `ANALYZE tlog_search, tlog_leaves`); err != nil {
		t.Fatal(err)
	}
	parallel := open(t, u+"&parallel_setup_cost=0&parallel_tuple_cost=0&min_parallel_table_scan_size=0&min_parallel_index_scan_size=0&enable_indexscan=off&enable_bitmapscan=off&enable_indexonlyscan=off")
	parallel.StopSearchIndexer()
	agreeWithScan(t, parallel, "parallel plans", leaves, 0, 2500)
}

// TestReviewSearchRandomQueries: random combinations of every filter,
// Before, Limit and Newest agree with a scan of the entries while the
// log is partly indexed, and while rows above the last matching one are
// stale (rolled back and appended to again with other entries).
func TestReviewSearchRandomQueries(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 1500, "a")
	if err := s.TlogAppend(ctx, 0, leaves[:1000], nil); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.TlogAppend(ctx, 1000, leaves[1000:], nodes); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(1, 2))
	check := func(when string, leaves []tlog.Leaf) {
		t.Helper()
		for range 120 {
			var q tlog.Query
			if r.IntN(3) == 0 {
				q.Repo = fmt.Sprintf("team/app%d", r.IntN(6))
			}
			if r.IntN(4) == 0 {
				q.Digest = fmt.Sprintf("sha256:%064x", r.IntN(18))
			}
			if r.IntN(3) == 0 {
				q.Actor = []string{"ci", "alice", "bob"}[r.IntN(3)]
			}
			if r.IntN(3) == 0 {
				q.Action = []string{"push", "delete", "promote"}[r.IntN(3)]
			}
			if r.IntN(3) == 0 {
				q.Since = at.Add(time.Duration(r.IntN(1600)) * time.Minute)
			}
			if r.IntN(3) == 0 {
				q.Until = at.Add(time.Duration(r.IntN(1600)) * time.Minute)
			}
			if r.IntN(3) == 0 {
				q.Before = uint64(r.IntN(1600))
			}
			q.Newest = r.IntN(2) == 0
			if r.IntN(2) == 0 {
				q.Limit = 1 + r.IntN(60)
			}
			ls, err := s.TlogSearch(ctx, q)
			if err != nil {
				t.Fatalf("%s: search %+v: %v", when, q, err)
			}
			got := []uint64{}
			for _, l := range ls {
				got = append(got, l.Index)
			}
			if want := scanSearch(leaves, q); !slices.Equal(got, want) {
				t.Fatalf("%s: search %+v = %v, want %v", when, q, got, want)
			}
		}
	}
	check("partly indexed", leaves)
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, u)
	for _, q := range []string{`DELETE FROM tlog_leaves WHERE idx >= 1200`, `UPDATE tlog_head SET size = 1200`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := searchLog(t, (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0), 1200, 200, "bb")
	if err := s.TlogAppend(ctx, 1200, other, nil); err != nil {
		t.Fatal(err)
	}
	leaves = append(leaves[:1200:1200], other...)
	check("stale rows", leaves)
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	check("indexed again", leaves)
}

// TestReviewIndexerPastHugeTime: an entry whose time field is too long
// for a B-tree index row (the server never writes one; a log edited or
// appended to behind its back may hold one) does not stop the search
// indexer: the leaves after it are indexed too.
func TestReviewIndexerPastHugeTime(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 10, "a")
	huge := make([]byte, 12000)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range huge {
		huge[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[r.IntN(36)]
	}
	odd := fmt.Sprintf(`{"action":"push","actor":"ci","repo":"team/app0","time":"2026-03-03T00:00:00.000000000Z%s"}`, huge)
	leaves[5] = tlog.Leaf{Index: 5, Entry: []byte(odd), Hash: tlog.LeafHash([]byte(odd))}
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Errorf("catching up past the entry: %v", err)
	}
	if n := indexedRows(t, u); n != 10 {
		t.Fatalf("tlog_search holds %d rows, want 10", n)
	}
}

// TestReviewMigration12LargeBackfill: migration 12 on a database of
// 50,000 audit entries from before (doc column set) takes seconds, and
// searches then find them through the new table.
func TestReviewMigration12LargeBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 entries")
	}
	ctx := t.Context()
	u := freshSchema(t)
	open(t, u).Close()
	conn := rawConn(t, u)
	for _, q := range []string{
		`DROP TABLE tlog_search, signlog_search`,
		`DELETE FROM schema_migrations WHERE version >= 12`,
		`INSERT INTO tlog_leaves(idx, entry, leaf_hash, doc)
		SELECT i, e, sha256('\x00'::bytea || convert_to(e, 'UTF8')), e::jsonb FROM (
			SELECT i, format('{"action":"push","actor":"ci","auth":"password","digest":"sha256:%s","repo":"team/app%s","result":"ok","time":"2026-03-03T00:00:00.%sZ"}',
				md5(i::text) || md5(i::text), i % 5, lpad(i::text, 9, '0')) AS e
			FROM generate_series(0, 49999) i) g`,
		`UPDATE tlog_head SET size = 50000`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	start := time.Now()
	s := open(t, u)
	took := time.Since(start)
	s.StopSearchIndexer()
	t.Logf("migration 12 over 50,000 entries took %v", took)
	if n := indexedRows(t, u); n != 50000 {
		t.Fatalf("tlog_search holds %d rows, want 50000", n)
	}
	ls, err := s.TlogSearch(ctx, tlog.Query{Repo: "team/app3", Newest: true, Limit: 3})
	if err != nil || len(ls) != 3 || ls[0].Index != 49998 {
		t.Fatalf("newest of team/app3 = %d leaves (%v)", len(ls), err)
	}
}
