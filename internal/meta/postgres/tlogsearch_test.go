package postgres_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/meta/postgres"
	"github.com/custody-dev/custody/internal/tlog"
)

// searchLog builds n audit-like leaves (from first) and the nodes they
// complete on top of rng; a longer salt shifts the actions. Every 97th entry is not JSON and every 89th
// holds \u0000, which PostgreSQL's jsonb does not take: neither is ever
// found by a search.
func searchLog(t *testing.T, rng *compact.Range, first, n int, salt string) ([]tlog.Leaf, []tlog.Node) {
	t.Helper()
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	var (
		leaves []tlog.Leaf
		nodes  []tlog.Node
	)
	for i := first; i < first+n; i++ {
		e := fmt.Sprintf(`{"action":%q,"actor":%q,"digest":"sha256:%064x","repo":%q,"salt":%q,"time":%q}`,
			[]string{"push", "delete", "promote"}[(i+len(salt)-1)%3], []string{"ci", "alice"}[i%2], i%17,
			fmt.Sprintf("team/app%d", i%5), salt, tlog.FormatTime(at.Add(time.Duration(i)*time.Minute)))
		switch {
		case i%97 == 96:
			e = `not json ` + e
		case i%89 == 88:
			e = strings.Replace(e, `"salt":"`, `"salt":"\u0000`, 1)
		}
		h := rfc6962.DefaultHasher.HashLeaf([]byte(e))
		leaves = append(leaves, tlog.Leaf{Index: uint64(i), Entry: []byte(e), Hash: h})
		if err := rng.Append(h, func(id compact.NodeID, hash []byte) {
			nodes = append(nodes, tlog.Node{ID: id, Hash: hash})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return leaves, nodes
}

// searchQueries are queries over searchLog's entries.
func searchQueries() []tlog.Query {
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	return []tlog.Query{
		{},
		{Newest: true, Limit: 51},
		{Action: "delete", Newest: true, Limit: 51},
		{Actor: "ci", Newest: true, Limit: 20, Before: 250},
		{Repo: "team/app3", Newest: true, Limit: 51},
		{Repo: "team/app1", Digest: fmt.Sprintf("sha256:%064x", 6), Limit: 1001},
		{Since: at.Add(100 * time.Minute), Until: at.Add(160 * time.Minute), Newest: true, Limit: 51},
		{Action: "push", Actor: "alice", Since: at.Add(30 * time.Minute)},
		{Repo: "team/none"},
	}
}

// scanSearch is the reference a search must agree with: every filter
// read from the entries themselves, in Go. Entries that are not JSON, or
// hold \u0000, never match.
func scanSearch(leaves []tlog.Leaf, q tlog.Query) []uint64 {
	out := []uint64{}
	for _, l := range leaves {
		var e map[string]any
		if json.Unmarshal(l.Entry, &e) != nil || strings.Contains(string(l.Entry), `\u0000`) {
			continue
		}
		str := func(k string) string { s, _ := e[k].(string); return s }
		ok := (q.Repo == "" || str("repo") == q.Repo) && (q.Digest == "" || str("digest") == q.Digest) &&
			(q.Actor == "" || str("actor") == q.Actor) && (q.Action == "" || str("action") == q.Action) &&
			(q.Before == 0 || l.Index < q.Before) &&
			(q.Since.IsZero() || str("time") >= tlog.FormatTime(q.Since)) &&
			(q.Until.IsZero() || str("time") < tlog.FormatTime(q.Until))
		if ok {
			out = append(out, l.Index)
		}
	}
	if q.Newest {
		slices.Reverse(out)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// agreeWithScan checks every search of searchQueries, and the leaf-hash
// lookup of every leaf in lookups, against the stored leaves.
func agreeWithScan(t *testing.T, s *postgres.Store, when string, leaves []tlog.Leaf, lookups ...int) {
	t.Helper()
	ctx := t.Context()
	for _, q := range searchQueries() {
		ls, err := s.TlogSearch(ctx, q)
		if err != nil {
			t.Fatalf("%s: search %+v: %v", when, q, err)
		}
		got := []uint64{}
		for _, l := range ls {
			got = append(got, l.Index)
			if want := leaves[l.Index]; string(l.Entry) != string(want.Entry) || string(l.Hash) != string(want.Hash) {
				t.Fatalf("%s: search %+v returned leaf %d as %q", when, q, l.Index, l.Entry)
			}
		}
		if want := scanSearch(leaves, q); !slices.Equal(got, want) {
			t.Fatalf("%s: search %+v = %v, want %v", when, q, got, want)
		}
	}
	for _, i := range lookups {
		idx, err := s.TlogLeafIndex(ctx, leaves[i].Hash)
		if err != nil || idx != uint64(i) {
			t.Fatalf("%s: TlogLeafIndex of leaf %d = %d, %v", when, i, idx, err)
		}
	}
}

// indexedRows counts tlog_search's rows.
func indexedRows(t *testing.T, u string) int64 {
	t.Helper()
	var n int64
	if err := rawConn(t, u).QueryRow(t.Context(), `SELECT COUNT(*) FROM tlog_search`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSearchIndexedOrNot: searches and leaf-hash lookups agree with a
// scan of the entries whether the leaves are in tlog_search, in the tail
// it has not reached, or partly in each; the indexer catches up past
// entries jsonb does not take, and drops the rows of leaves that were
// replaced behind the server's back.
func TestSearchIndexedOrNot(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()

	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	leaves, nodes := searchLog(t, rng, 0, 300, "a")
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatalf("append (with entries jsonb does not take): %v", err)
	}
	if n := indexedRows(t, u); n != 0 {
		t.Fatalf("tlog_search holds %d rows before the indexer ran", n)
	}
	agreeWithScan(t, s, "all tail", leaves, 0, 88, 96, 150, 299)
	if got := scanSearch(leaves, tlog.Query{}); len(got) != 300-3-3 {
		t.Fatalf("the reference finds %d entries, want 294", len(got))
	}

	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if n := indexedRows(t, u); n != 300 {
		t.Fatalf("tlog_search holds %d rows after catching up, want 300", n)
	}
	checkSearchFields(t, u)
	agreeWithScan(t, s, "all indexed", leaves, 0, 88, 96, 150, 299)

	more, moreNodes := searchLog(t, rng, 300, 300, "a")
	if err := s.TlogAppend(ctx, 300, more, moreNodes); err != nil {
		t.Fatal(err)
	}
	leaves = append(leaves, more...)
	agreeWithScan(t, s, "half indexed", leaves, 150, 450, 599)
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	agreeWithScan(t, s, "indexed again", leaves, 150, 450, 599)

	// The log rolled back to 450 behind the server's back and appended
	// to again, with other entries: the rows above 450 are stale.
	conn := rawConn(t, u)
	for _, q := range []string{`DELETE FROM tlog_leaves WHERE idx >= 450`, `DELETE FROM tlog_nodes`, `UPDATE tlog_head SET size = 450`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rng = (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	redo, redoNodes := searchLog(t, rng, 0, 450, "a")
	other, otherNodes := searchLog(t, rng, 450, 100, "bb")
	if err := s.TlogFillNodes(ctx, redoNodes); err != nil {
		t.Fatal(err)
	}
	if err := s.TlogAppend(ctx, 450, other, otherNodes); err != nil {
		t.Fatal(err)
	}
	leaves = append(redo, other...)
	agreeWithScan(t, s, "rolled back, stale rows", leaves, 100, 460, 549)
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if n := indexedRows(t, u); n != 550 {
		t.Fatalf("tlog_search holds %d rows after the rollback, want 550", n)
	}
	agreeWithScan(t, s, "rolled back, indexed", leaves, 100, 460, 549)
}

// TestSearchIndexerCatchesUp: the running indexer indexes what appends
// add, without being asked, and so does a store opened on a database
// whose leaves nobody indexed.
func TestSearchIndexerCatchesUp(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	leaves, nodes := searchLog(t, (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0), 0, 100, "a")
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	waitIndexed := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for n := indexedRows(t, u); n != want; n = indexedRows(t, u) {
			if time.Now().After(deadline) {
				t.Fatalf("tlog_search holds %d rows 10 s after the append, want %d", n, want)
			}
			time.Sleep(20 * time.Millisecond) // polling a background writer's result
		}
	}
	waitIndexed(100)

	if _, err := rawConn(t, u).Exec(ctx, `DELETE FROM tlog_search`); err != nil {
		t.Fatal(err)
	}
	open(t, u)
	waitIndexed(100)
}

// TestMigrationSearchTable opens a database at schema version 11, as an
// older build left it, holding audit entries with their doc column:
// migration 12 moves them into tlog_search, drops the leaves' search
// indexes, and searches find what they found before.
func TestMigrationSearchTable(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	open(t, u).Close()
	conn := rawConn(t, u)
	// Version 11's log tables: the doc column and indexes on the leaves.
	for _, q := range []string{
		`DROP TABLE tlog_search, signlog_search`,
		`CREATE INDEX tlog_leaves_hash ON tlog_leaves(leaf_hash)`,
		`CREATE INDEX tlog_leaves_doc ON tlog_leaves USING GIN (doc jsonb_path_ops)`,
		`CREATE INDEX signlog_leaves_hash ON signlog_leaves(leaf_hash)`,
		`DELETE FROM schema_migrations WHERE version >= 12`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	leaves, _ := searchLog(t, (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0), 0, 200, "a")
	for _, l := range leaves {
		var doc *string
		if e := string(l.Entry); json.Valid(l.Entry) && !strings.Contains(e, `\u0000`) {
			doc = &e
		}
		if _, err := conn.Exec(ctx, `INSERT INTO tlog_leaves(idx, entry, leaf_hash, doc) VALUES ($1, $2, $3, $4)`,
			int64(l.Index), string(l.Entry), l.Hash, doc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE tlog_head SET size = 200`); err != nil {
		t.Fatal(err)
	}

	s := open(t, u)
	s.StopSearchIndexer()
	if n := indexedRows(t, u); n != 200 {
		t.Fatalf("tlog_search holds %d rows after the migration, want 200", n)
	}
	checkSearchFields(t, u)
	var left int
	if err := conn.QueryRow(ctx, `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ('tlog_leaves', 'signlog_leaves') AND indexname NOT LIKE '%pkey'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("indexes left on the leaves besides their keys: %d, %v", left, err)
	}
	agreeWithScan(t, s, "migrated", leaves, 0, 96, 199)
}

// TestSearchNewestReadsOnlyThose: the audit page's first view, the newest
// entries, reads them through the indexes, not by joining the search
// table and the leaves whole (which PostgreSQL chose for a plain join on
// index and leaf hash).
func TestSearchNewestReadsOnlyThose(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	leaves, nodes := searchLog(t, (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0), 0, 5000, "a")
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, u)
	if _, err := conn.Exec(ctx, `ANALYZE tlog_search, tlog_leaves`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []tlog.Query{{Newest: true, Limit: 50}, {Newest: true, Limit: 50, Before: 2500}} {
		query, args, err := postgres.SearchQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, `EXPLAIN `+query, args...)
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
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "Index Scan Backward using tlog_search_pkey on tlog_search s") || strings.Contains(text, "Seq Scan on tlog_search s") {
			t.Fatalf("plan of %+v does not read the newest rows by index:\n%s", q, text)
		}
	}
}

// TestSearchEditedEntry: an entry edited in place after it was indexed
// (which the log's integrity checks report) is found only by the values
// it had then and still has, and not at all, nor by its leaf hash, once
// its stored leaf hash was rewritten too.
func TestSearchEditedEntry(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	s.StopSearchIndexer()
	leaves, nodes := searchLog(t, (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0), 0, 30, "a")
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	// Leaves 10 (by ci) and 13 (by alice) were deletes; 10 becomes a
	// push, 13 a push with its leaf hash rewritten to match.
	edited := strings.Replace(string(leaves[13].Entry), `"action":"delete"`, `"action":"push"`, 1)
	conn := rawConn(t, u)
	if _, err := conn.Exec(ctx, `UPDATE tlog_leaves SET entry = replace(entry, '"action":"delete"', '"action":"push"') WHERE idx = 10`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE tlog_leaves SET entry = $1, leaf_hash = $2 WHERE idx = 13`, edited, tlog.LeafHash([]byte(edited))); err != nil {
		t.Fatal(err)
	}
	found := func(q tlog.Query) []uint64 {
		t.Helper()
		ls, err := s.TlogSearch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, l := range ls {
			if l.Index == 10 || l.Index == 13 {
				out = append(out, l.Index)
			}
		}
		return out
	}
	for _, q := range []tlog.Query{{Action: "delete"}, {Action: "push"}, {Action: "push", Actor: "alice"}, {Actor: "alice"}} {
		if got := found(q); len(got) != 0 {
			t.Errorf("search %+v finds the edited leaves %v", q, got)
		}
	}
	if got := found(tlog.Query{Actor: "ci"}); !slices.Equal(got, []uint64{10}) {
		t.Errorf("search by the value leaf 10 had and has finds %v, want [10]", got)
	}
	if idx, err := s.TlogLeafIndex(ctx, leaves[10].Hash); err != nil || idx != 10 {
		t.Errorf("TlogLeafIndex of leaf 10 = %d, %v", idx, err)
	}
	for _, h := range [][]byte{leaves[13].Hash, tlog.LeafHash([]byte(edited))} {
		if idx, err := s.TlogLeafIndex(ctx, h); !errors.Is(err, tlog.ErrNotFound) {
			t.Errorf("TlogLeafIndex of leaf 13's old or new hash = %d, %v; want not found", idx, err)
		}
	}
}

// checkSearchFields checks that tlog_search holds of each entry only the
// fields searches filter on (not searchLog's salt), and nothing for the
// entries that are not JSON or hold \u0000.
func checkSearchFields(t *testing.T, u string) {
	t.Helper()
	rows, err := rawConn(t, u).Query(t.Context(), `SELECT idx, doc::text FROM tlog_search WHERE idx < 100 ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			idx int64
			doc *string
		)
		if err := rows.Scan(&idx, &doc); err != nil {
			t.Fatal(err)
		}
		if idx == 88 || idx == 96 {
			if doc != nil {
				t.Fatalf("tlog_search holds %s for entry %d, which jsonb does not take", *doc, idx)
			}
			continue
		}
		var fields map[string]any
		if doc == nil || json.Unmarshal([]byte(*doc), &fields) != nil {
			t.Fatalf("tlog_search holds %v for entry %d", doc, idx)
		}
		keys := slices.Sorted(maps.Keys(fields))
		if !slices.Equal(keys, []string{"action", "actor", "digest", "repo", "time"}) {
			t.Fatalf("tlog_search holds the fields %v of entry %d", keys, idx)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
