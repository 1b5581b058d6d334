package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/tlog"
)

// scanSearch is TlogSearch as it was before tlog_search (migration 14):
// every filter read from the entries themselves. It is the reference
// the indexed search must agree with.
func scanSearch(t *testing.T, s *Store, q tlog.Query) []uint64 {
	t.Helper()
	query, args := scanQuery(q)
	return queryIndexes(t, s.r, s.tq(query), args...)
}

// scanQuery is scanSearch's statement.
func scanQuery(q tlog.Query) (string, []any) {
	query := `SELECT idx FROM tlog_leaves WHERE json_valid(entry)`
	var args []any
	add := func(cond string, v any) {
		query += " AND " + cond
		args = append(args, v)
	}
	if q.Repo != "" {
		add(`json_extract(entry, '$.repo') = ?`, q.Repo)
	}
	if q.Digest != "" {
		add(`json_extract(entry, '$.digest') = ?`, q.Digest)
	}
	if q.Actor != "" {
		add(`json_extract(entry, '$.actor') = ?`, q.Actor)
	}
	if q.Action != "" {
		add(`json_extract(entry, '$.action') = ?`, q.Action)
	}
	if q.Before > 0 {
		add(`idx < ?`, int64(q.Before))
	}
	if !q.Since.IsZero() {
		add(`json_extract(entry, '$.time') >= ?`, tlog.FormatTime(q.Since))
	}
	if !q.Until.IsZero() {
		add(`json_extract(entry, '$.time') < ?`, tlog.FormatTime(q.Until))
	}
	query += ` ORDER BY idx`
	if q.Newest {
		query += ` DESC`
	}
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return query, args
}

// queryIndexes runs query, which selects leaf indexes first.
func queryIndexes(t *testing.T, db queryer, query string, args ...any) []uint64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	out := []uint64{}
	for rows.Next() {
		var i int64
		dest := []any{&i}
		for range cols[1:] {
			dest = append(dest, new(any))
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		out = append(out, uint64(i))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// agreeWithScan fails unless every search of searchCases (and those
// in extra) returns what scanSearch returns, and every leaf in leaves
// is found by its hash at its index.
func agreeWithScan(t *testing.T, s *Store, when string, leaves []tlog.Leaf, extra ...tlog.Query) {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	qs := append(searchCases(), extra...)
	qs = append(qs,
		tlog.Query{Actor: "mallory"},
		tlog.Query{Actor: "mallory", Newest: true, Limit: 7},
		tlog.Query{Actor: "mallory", Before: 90, Newest: true, Limit: 20},
		tlog.Query{Until: at.Add(70 * time.Minute), Newest: true, Limit: 30},
	)
	for _, q := range qs {
		ls, err := s.TlogSearch(ctx, q)
		if err != nil {
			t.Fatalf("%s: %+v: %v", when, q, err)
		}
		if got, want := indexes(ls), scanSearch(t, s, q); !slices.Equal(got, want) {
			t.Errorf("%s: TlogSearch(%+v) = %v, want %v", when, q, got, want)
		}
	}
	for _, l := range leaves {
		if idx, err := s.TlogLeafIndex(ctx, l.Hash); err != nil || idx != l.Index {
			t.Errorf("%s: TlogLeafIndex(leaf %d) = %d, %v", when, l.Index, idx, err)
		}
	}
}

// TestSearchAfterRollback: a log rolled back behind the server's back
// (leaves deleted, as TestRefusesInconsistentCheckpoint in internal/tlog
// does) and then appended to again holds new entries at indexes that
// tlog_search still holds rows of the old ones for. Searches and
// leaf-hash lookups must find the new entries, before the indexer has
// caught up and after: the entries appended after a rollback are the
// ones an investigation looks for.
func TestSearchAfterRollback(t *testing.T) {
	ctx := context.Background()
	s := openQuiet(t)

	first, nodes := testLog(t, factoryForTest().NewEmptyRange(0), 0, 100, false)
	if err := s.TlogAppend(ctx, 0, first, nodes); err != nil {
		t.Fatal(err)
	}
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	agreeWithScan(t, s, "indexed", first)

	if _, err := s.w.ExecContext(ctx, `DELETE FROM tlog_leaves WHERE idx >= 50`); err != nil {
		t.Fatal(err)
	}
	agreeWithScan(t, s, "rolled back", first[:50])

	// 80 new entries from index 50, by another actor.
	rng := factoryForTest().NewEmptyRange(0)
	for _, l := range first[:50] {
		if err := rng.Append(l.Hash, nil); err != nil {
			t.Fatal(err)
		}
	}
	more, moreNodes := rolledLog(t, rng, 50, 80)
	if err := s.TlogAppend(ctx, 50, more, moreNodes); err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(first[:50]), more...)
	agreeWithScan(t, s, "appended after the rollback", all)
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	agreeWithScan(t, s, "appended after the rollback, indexed", all)
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tlog_search s JOIN tlog_leaves l ON l.idx = s.idx AND l.leaf_hash = s.leaf_hash`).Scan(&n); err != nil || n != 130 {
		t.Fatalf("tlog_search holds %d rows that match their leaves, %v; want 130", n, err)
	}
}

// rolledLog is testLog's entries from first on, by mallory.
func rolledLog(t *testing.T, rng *compact.Range, first, n int) ([]tlog.Leaf, []tlog.Node) {
	t.Helper()
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	var entries []string
	for i := first; i < first+n; i++ {
		entries = append(entries, fmt.Sprintf(`{"action":"delete","actor":"mallory","digest":"sha256:%064x","repo":"team/app%d","time":%q}`,
			i%17, i%5, tlog.FormatTime(at.Add(time.Duration(i)*time.Minute))))
	}
	return leavesOf(t, rng, first, entries)
}

// TestSearchOddEntries: entries whose fields are missing, null, or not
// strings (numbers, booleans, objects, arrays), and entries that are not
// objects, are found by the same searches as before tlog_search, whether
// indexed or in the tail. The log writes none of these, but its storage
// can hold them (entries edited behind its back, which it reports).
func TestSearchOddEntries(t *testing.T) {
	ctx := context.Background()
	s := openQuiet(t)

	entries := []string{
		`{"repo":"5","time":"2026-03-03T00:00:00.000000000Z"}`,
		`{"repo":5,"time":99999}`,
		`{"repo":5.0,"time":1}`,
		`{"repo":true,"actor":false,"time":true}`,
		`{"repo":null,"time":null}`,
		`{"repo":{"a":1},"time":{"t":"2026"}}`,
		`{"repo":["team/app"],"time":["2026"]}`,
		`{"actor":"ci"}`,
		`{}`,
		`[1,2]`,
		`"team/app"`,
		`12`,
		`null`,
		`not json`,
		`{"repo":"team/app","digest":"sha256:00","actor":"ci","action":"push","time":"2026-03-03T00:01:00.000000000Z"}`,
		`{"repo":"team/app","repo":"team/other","time":"2026-03-03T00:02:00.000000000Z"}`,
		`{"repo":"1","time":"9999"}`,
		`{"repo":"{\"a\":1}","time":"2026-03-03T00:03:00.000000000Z"}`,
		`{"repo":"","time":""}`,
	}
	leaves, nodes := leavesOf(t, factoryForTest().NewEmptyRange(0), 0, entries)
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	qs := []tlog.Query{
		{Repo: "5"}, {Repo: "5.0"}, {Repo: "1"}, {Repo: "0"}, {Repo: "true"}, {Repo: `{"a":1}`}, {Repo: `["team/app"]`},
		{Repo: "team/app"}, {Repo: "team/other"}, {Actor: "ci"}, {Actor: "0"}, {Actor: "false"},
		{Since: at}, {Until: at.Add(time.Minute)}, {Since: at, Until: at.Add(time.Hour)},
		{Until: at, Newest: true, Limit: 3}, {Since: at.AddDate(-100, 0, 0)}, {Until: at.AddDate(100, 0, 0)},
		{Repo: "team/app", Before: 15, Newest: true},
	}
	agreeWithScan(t, s, "tail", leaves, qs...)
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	agreeWithScan(t, s, "indexed", leaves, qs...)
}

// TestMigrationTreePosEdges: migration 14's SQL puts nodes of any level
// and index where treePos does, up to the largest positions an int64
// holds (a node of level 62, a leaf of index 2^62-1), so every migrated
// node is found by its ID.
func TestMigrationTreePosEdges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := schema13(t, path)
	var ids []compact.NodeID
	for level := range uint(63) {
		for _, idx := range []uint64{0, 1, 2, 3, 5, 6, 7, 0x5555, 0xAAAA, 1<<(62-level) - 2, 1<<(62-level) - 1} {
			if id := compact.NewNodeID(level, idx); idx < 1<<(62-level) && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	ids = append(ids, compact.NewNodeID(0, 0x0123456789ABCDE), compact.NewNodeID(3, 0x0FEDCBA987654321>>3))
	seen := map[int64]bool{}
	for _, id := range ids {
		if pos := treePos(id); seen[pos] {
			t.Fatalf("two test nodes at position %d", pos)
		} else {
			seen[pos] = true
		}
		for _, p := range []string{"tlog_", "signlog_"} {
			if _, err := db.Exec(`INSERT OR IGNORE INTO `+p+`nodes(level, idx, hash) VALUES (?, ?, ?)`, id.Level, int64(id.Index), fmt.Sprintf("%s%d/%d", p, id.Level, id.Index)); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, st := range map[string]tlog.Store{"tlog_": s, "signlog_": s.SigningLog()} {
		// Read by treePos: TlogNodes computes the nodes of levels 1 to 3
		// from the level-0 nodes (which are not all there here).
		for _, id := range ids {
			var got string
			if err := s.r.QueryRowContext(ctx, `SELECT hash FROM `+p+`tree WHERE pos = ?`, treePos(id)).Scan(&got); err != nil {
				t.Fatalf("%s: node %d/%d: %v", p, id.Level, id.Index, err)
			}
			if want := fmt.Sprintf("%s%d/%d", p, id.Level, id.Index); got != want {
				t.Errorf("%s: node %d/%d = %q, want %q", p, id.Level, id.Index, got, want)
			}
		}
		high := slices.DeleteFunc(slices.Clone(ids), func(id compact.NodeID) bool { return tlog.Derived(id) })
		got, err := st.TlogNodes(ctx, high)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for i, id := range high {
			if want := fmt.Sprintf("%s%d/%d", p, id.Level, id.Index); string(got[i]) != want {
				t.Errorf("%s: TlogNodes %d/%d = %q, want %q", p, id.Level, id.Index, got[i], want)
			}
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+p+`tree`).Scan(&n); err != nil || n != len(ids) {
			t.Fatalf("%s: %d tree rows, %v; want %d", p, n, err, len(ids))
		}
	}
}

// TestSearchWhileIndexing: while both logs are appended to and indexed
// (the running indexer, and catch-ups the test makes besides),
// searches and leaf-hash lookups give, in every snapshot, what the scan
// of the entries gives; then Close stops the indexer, also twice. Run
// it with -race.
func TestSearchWhileIndexing(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	logs := []*Store{s, s.SigningLog().(*Store)}
	const batches, batch = 30, 40
	done := make(chan error, 3)
	for _, st := range logs {
		go func() {
			rng := factoryForTest().NewEmptyRange(0)
			for b := range batches {
				leaves, nodes := testLog(t, rng, b*batch, batch, true)
				if err := st.TlogAppend(ctx, uint64(b*batch), leaves, nodes); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	go func() {
		for range batches {
			if err := s.indexSearch(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	qs := append(searchCases(), tlog.Query{Repo: "team/app2", Newest: true, Limit: 3}, tlog.Query{Action: "promote", Before: 600, Newest: true, Limit: 10})
	check := func() {
		for _, st := range logs {
			tx, err := st.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range qs {
				query, args := searchQuery(q)
				oracle, oargs := scanQuery(q)
				if got, want := queryIndexes(t, tx, st.tq(query), args...), queryIndexes(t, tx, st.tq(oracle), oargs...); !slices.Equal(got, want) {
					t.Errorf("%s: TlogSearch(%+v) = %v, want %v", st.tq("tlog_"), q, got, want)
				}
			}
			hashes := queryIndexes(t, tx, st.tq(`SELECT idx, leaf_hash FROM tlog_leaves WHERE idx % 37 = 0`))
			for _, i := range hashes {
				var h []byte
				if err := tx.QueryRowContext(ctx, st.tq(`SELECT leaf_hash FROM tlog_leaves WHERE idx = ?`), i).Scan(&h); err != nil {
					t.Fatal(err)
				}
				// Leaves are only added: found now, where they were.
				if got, err := st.TlogLeafIndex(ctx, h); err != nil || got != i {
					t.Errorf("%s: leaf %d found at %d, %v", st.tq("tlog_"), i, got, err)
				}
			}
			tx.Rollback()
		}
	}
	for range 3 {
		for {
			check()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			default:
				continue
			}
			break
		}
	}
	check()
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	check()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s.search.Kick() // an append that ends after Close: no effect
}

// TestSearchEditedAfterIndexing pins what docs/audit.md ("Storage")
// says of an entry edited in place after it was indexed: it is found
// only by the values it had then and still has, and not at all, nor by
// its leaf hash, once its stored leaf hash is rewritten too. (The
// integrity checks report either edit.)
func TestSearchEditedAfterIndexing(t *testing.T) {
	ctx := context.Background()
	s := openQuiet(t)
	leaves, nodes := testLog(t, factoryForTest().NewEmptyRange(0), 0, 20, false)
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	// Entry 4: push by ci in team/app4.
	found := func(q tlog.Query) bool {
		t.Helper()
		ls, err := s.TlogSearch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(indexes(ls), 4)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE tlog_leaves SET entry = replace(entry, '"ci"', '"mallory"') WHERE idx = 4`); err != nil {
		t.Fatal(err)
	}
	if found(tlog.Query{Actor: "mallory"}) || found(tlog.Query{Actor: "ci"}) || !found(tlog.Query{Repo: "team/app4"}) {
		t.Fatal("an entry edited after indexing: want it found by its unchanged repository only")
	}
	if idx, err := s.TlogLeafIndex(ctx, leaves[4].Hash); err != nil || idx != 4 {
		t.Fatalf("its (unchanged) leaf hash found at %d, %v", idx, err)
	}
	h := rfc6962.DefaultHasher.HashLeaf([]byte("forged"))
	if _, err := s.w.ExecContext(ctx, `UPDATE tlog_leaves SET leaf_hash = ? WHERE idx = 4`, h); err != nil {
		t.Fatal(err)
	}
	if found(tlog.Query{Repo: "team/app4"}) || found(tlog.Query{}) {
		t.Fatal("an entry whose leaf hash was rewritten after indexing is still found")
	}
	for _, hash := range [][]byte{h, leaves[4].Hash} {
		if idx, err := s.TlogLeafIndex(ctx, hash); !errors.Is(err, tlog.ErrNotFound) {
			t.Fatalf("rewritten leaf hash: TlogLeafIndex = %d, %v; want not found", idx, err)
		}
	}
}
