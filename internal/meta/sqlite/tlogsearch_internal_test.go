package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/tlog"
)

// TestTreePosIsPostOrder: treePos numbers the nodes in the order an
// append completes them, leaves included, from 0 without gaps, so the
// nodes of one append are neighbours in tlog_tree.
func TestTreePosIsPostOrder(t *testing.T) {
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	var next int64
	for i := range 1000 {
		h := rfc6962.DefaultHasher.HashLeaf([]byte{byte(i), byte(i >> 8)})
		err := rng.Append(h, func(id compact.NodeID, _ []byte) {
			if got := treePos(id); got != next {
				t.Fatalf("leaf %d: node %d/%d at %d, want %d", i, id.Level, id.Index, got, next)
			}
			next++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// testLog builds n audit-like leaves (from first) and the nodes they
// complete on top of rng; with garbage, every 97th is not JSON.
func testLog(t *testing.T, rng *compact.Range, first, n int, garbage bool) ([]tlog.Leaf, []tlog.Node) {
	t.Helper()
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	var entries []string
	for i := first; i < first+n; i++ {
		e := fmt.Sprintf(`{"action":%q,"actor":%q,"digest":"sha256:%064x","repo":%q,"time":%q}`,
			[]string{"push", "delete", "promote"}[i%3], []string{"ci", "alice"}[i%2], i%17,
			fmt.Sprintf("team/app%d", i%5), tlog.FormatTime(at.Add(time.Duration(i)*time.Minute)))
		if garbage && i%97 == 96 {
			e = `not json ` + e // never written by the log; searches skip it
		}
		entries = append(entries, e)
	}
	return leavesOf(t, rng, first, entries)
}

// leavesOf makes entries the leaves from index first on, and returns
// them with the nodes they complete on top of rng.
func leavesOf(t *testing.T, rng *compact.Range, first int, entries []string) ([]tlog.Leaf, []tlog.Node) {
	t.Helper()
	var (
		leaves []tlog.Leaf
		nodes  []tlog.Node
	)
	for i, e := range entries {
		h := rfc6962.DefaultHasher.HashLeaf([]byte(e))
		leaves = append(leaves, tlog.Leaf{Index: uint64(first + i), Entry: []byte(e), Hash: h})
		if err := rng.Append(h, func(id compact.NodeID, hash []byte) {
			nodes = append(nodes, tlog.Node{ID: id, Hash: hash})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return leaves, nodes
}

// openQuiet opens a Store in a fresh directory with its search indexer
// stopped: the test runs the indexer's catch-up (indexSearch) itself.
func openQuiet(t *testing.T) *Store {
	t.Helper()
	return openQuietAt(t, filepath.Join(t.TempDir(), "meta.db"))
}

// openQuietAt is openQuiet on the database at path.
func openQuietAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.search.Close()
	return s
}

// searchCases are queries over testLog's entries.
func searchCases() []tlog.Query {
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

func indexes(ls []tlog.Leaf) []uint64 {
	out := []uint64{}
	for _, l := range ls {
		out = append(out, l.Index)
	}
	return out
}

// TestSearchIndexedOrNot: searches and leaf-hash lookups return the same
// whether the leaves are in tlog_search, in the tail it has not reached,
// or partly in each; the indexer catches up in batches and drops the
// rows of leaves that are gone.
func TestSearchIndexedOrNot(t *testing.T) {
	ctx := context.Background()
	s := openQuiet(t)

	rng := factoryForTest().NewEmptyRange(0)
	leaves, nodes := testLog(t, rng, 0, 300, true)
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	results := func() map[string][]uint64 {
		out := map[string][]uint64{}
		for _, q := range searchCases() {
			ls, err := s.TlogSearch(ctx, q)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			out[fmt.Sprintf("%+v", q)] = indexes(ls)
		}
		for _, i := range []int{0, 150, 299} {
			idx, err := s.TlogLeafIndex(ctx, leaves[i].Hash)
			if err != nil {
				t.Fatalf("leaf %d: %v", i, err)
			}
			out[fmt.Sprintf("leaf %d", i)] = []uint64{idx}
		}
		return out
	}
	indexed := func() int64 {
		var n int64
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tlog_search`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	tail := results()
	if n := indexed(); n != 0 {
		t.Fatalf("tlog_search holds %d rows before the indexer ran", n)
	}
	if got := tail[fmt.Sprintf("%+v", tlog.Query{Action: "delete", Newest: true, Limit: 51})]; len(got) != 51 || got[0] != 298 || !slices.IsSortedFunc(got, func(a, b uint64) int { return int(b) - int(a) }) {
		t.Fatalf("newest deletes from the tail = %v", got)
	}
	if got := tail[fmt.Sprintf("%+v", tlog.Query{})]; len(got) != 300-3 {
		t.Fatalf("all valid entries = %d, want 297 (3 are not JSON)", len(got))
	}

	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if n := indexed(); n != 300 {
		t.Fatalf("tlog_search holds %d rows after catching up, want 300", n)
	}
	if got := results(); !mapsEqual(got, tail) {
		t.Fatalf("indexed results differ from the tail's:\n%v\n%v", got, tail)
	}

	// Half indexed, half tail.
	more, moreNodes := testLog(t, rng, 300, 300, true)
	if err := s.TlogAppend(ctx, 300, more, moreNodes); err != nil {
		t.Fatal(err)
	}
	mixed := results()
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if got := results(); !mapsEqual(got, mixed) {
		t.Fatalf("indexed results differ from the mixed ones:\n%v\n%v", got, mixed)
	}
	if got := mixed[fmt.Sprintf("%+v", tlog.Query{Action: "delete", Newest: true, Limit: 51})]; len(got) != 51 || got[0] != 598 || slices.Contains(got, 484) {
		t.Fatalf("newest deletes, half indexed = %v", got)
	}

	// Leaves removed behind the server's back: their rows go.
	if _, err := s.w.ExecContext(ctx, `DELETE FROM tlog_leaves WHERE idx >= 450`); err != nil {
		t.Fatal(err)
	}
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	if n := indexed(); n != 450 {
		t.Fatalf("tlog_search holds %d rows after the truncation, want 450", n)
	}
}

func factoryForTest() *compact.RangeFactory {
	return &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
}

func mapsEqual(a, b map[string][]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestSearchIndexerCatchesUp: the running indexer indexes what appends
// add, without being asked.
func TestSearchIndexerCatchesUp(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	leaves, nodes := testLog(t, factoryForTest().NewEmptyRange(0), 0, 100, true)
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int64
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tlog_search`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 100 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tlog_search holds %d rows 10 s after the append, want 100", n)
		}
		time.Sleep(20 * time.Millisecond) // polling a background writer's result
	}
}

// schema13 creates a database at path as migrations 1-13 left it (before
// migration 14's log storage) and returns it open.
func schema13(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:13] {
		if _, err := db.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, i+1); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// TestMigrationLogStorage: migration 14 moves a log stored with nodes
// keyed by (level, idx) and indexed leaves (whose expression indexes
// refused entries that are not JSON) to tlog_tree and tlog_search: every
// node is found by its ID, every leaf by its hash and by search, before
// the indexer has filled tlog_search and after.
func TestMigrationLogStorage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := schema13(t, path)
	logs := map[string][]tlog.Leaf{}
	allNodes := map[string][]tlog.Node{}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tlog_", "signlog_"} {
		leaves, nodes := testLog(t, factoryForTest().NewEmptyRange(0), 0, 333, false)
		for _, l := range leaves {
			if _, err := tx.Exec(`INSERT INTO `+p+`leaves(idx, entry, leaf_hash) VALUES (?, ?, ?)`, l.Index, string(l.Entry), l.Hash); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range nodes {
			if _, err := tx.Exec(`INSERT INTO `+p+`nodes(level, idx, hash) VALUES (?, ?, ?)`, n.ID.Level, n.ID.Index, n.Hash); err != nil {
				t.Fatal(err)
			}
		}
		logs[p], allNodes[p] = leaves, nodes
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.search.Close() // the test runs the indexer's catch-up itself
	check := func(indexed int) {
		t.Helper()
		for p, st := range map[string]*Store{"tlog_": s, "signlog_": s.SigningLog().(*Store)} {
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+p+`search`).Scan(&n); err != nil || n != indexed {
				t.Fatalf("%s: %d search rows, %v; want %d", p, n, err, indexed)
			}
			for _, l := range logs[p] {
				if idx, err := st.TlogLeafIndex(ctx, l.Hash); err != nil || idx != l.Index {
					t.Fatalf("%s: leaf %d found at %d, %v", p, l.Index, idx, err)
				}
			}
			if got, err := st.TlogSearch(ctx, tlog.Query{Action: "delete"}); err != nil || len(got) != 111 {
				t.Fatalf("%s: %d deletes found, %v; want 111", p, len(got), err)
			}
		}
	}
	check(0) // the migration leaves the search tables to the indexer
	if err := s.indexSearch(ctx); err != nil {
		t.Fatal(err)
	}
	check(333)
	for p, st := range map[string]*Store{"tlog_": s, "signlog_": s.SigningLog().(*Store)} {
		nodes := allNodes[p]
		ids := make([]compact.NodeID, len(nodes))
		for i, n := range nodes {
			ids[i] = n.ID
		}
		got, err := st.TlogNodes(ctx, ids)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for i, n := range nodes {
			if !bytes.Equal(got[i], n.Hash) {
				t.Fatalf("%s: node %d/%d = %x, want %x", p, n.ID.Level, n.ID.Index, got[i], n.Hash)
			}
		}
		var rows int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+p+`tree`).Scan(&rows); err != nil || rows != len(nodes) {
			t.Fatalf("%s: %d tree rows, %v; want %d", p, rows, err, len(nodes))
		}
	}
	var version int
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version %d, %v", version, err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tlog_search WHERE action = 'delete' AND actor IS NOT NULL`).Scan(&n); err != nil || n != 111 {
		t.Fatalf("indexed search rows for deletes: %d, %v; want 111", n, err)
	}
}

// TestDerivedNodes: tlog_tree holds the nodes of level 0 and of level 4
// and above; TlogNodes returns every node as the append computed it,
// computing those of levels 1 to 3 from the level-0 nodes (also inside a
// write transaction, and skipping such nodes stored by databases from
// before), not from tlog_leaves; a derived node is missing when one of
// its level-0 nodes is.
func TestDerivedNodes(t *testing.T) {
	ctx := context.Background()
	s := openQuiet(t)
	rng := factoryForTest().NewEmptyRange(0)
	leaves, nodes := testLog(t, rng, 0, 100, false)
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	var ids []compact.NodeID
	stored := 0
	for _, n := range nodes {
		ids = append(ids, n.ID)
		if !tlog.Derived(n.ID) {
			stored++
		}
	}
	var rows int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tlog_tree`).Scan(&rows); err != nil || rows != stored {
		t.Fatalf("tlog_tree holds %d rows (%v), want the %d nodes of levels 0 and 4 up", rows, err, stored)
	}
	check := func(name string) {
		t.Helper()
		got, err := s.TlogNodes(ctx, ids)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			inTx, err := (&logTx{s: s, tx: tx}).TlogNodes(ctx, ids)
			if err != nil {
				return err
			}
			for i := range got {
				if !bytes.Equal(inTx[i], got[i]) {
					return fmt.Errorf("node %d/%d differs in a transaction", ids[i].Level, ids[i].Index)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, n := range nodes {
			if !bytes.Equal(got[i], n.Hash) {
				t.Fatalf("%s: node %d/%d differs from the one the append computed", name, n.ID.Level, n.ID.Index)
			}
		}
	}
	check("as appended")

	// Proofs come from tlog_tree alone: a rewritten leaf hash is not in them.
	if _, err := s.w.ExecContext(ctx, `UPDATE tlog_leaves SET leaf_hash = zeroblob(32) WHERE idx = 37`); err != nil {
		t.Fatal(err)
	}
	// Rows a database from before holds at levels 1 to 3 are skipped.
	for _, id := range []compact.NodeID{compact.NewNodeID(1, 18), compact.NewNodeID(1, 19), compact.NewNodeID(2, 9)} {
		if _, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO tlog_tree(pos, hash) VALUES (?, zeroblob(32))`, treePos(id)); err != nil {
			t.Fatal(err)
		}
	}
	check("after rewriting a leaf hash, with old rows of levels 1 to 3")

	if _, err := s.w.ExecContext(ctx, `DELETE FROM tlog_tree WHERE pos = ?`, treePos(compact.NewNodeID(0, 37))); err != nil {
		t.Fatal(err)
	}
	for _, id := range []compact.NodeID{compact.NewNodeID(0, 37), compact.NewNodeID(1, 18), compact.NewNodeID(3, 4)} {
		if _, err := s.TlogNodes(ctx, []compact.NodeID{id}); !errors.Is(err, tlog.ErrNotFound) {
			t.Fatalf("node %d/%d without level-0 node 37: %v, want ErrNotFound", id.Level, id.Index, err)
		}
	}
	if _, err := s.TlogNodes(ctx, []compact.NodeID{compact.NewNodeID(4, 2), compact.NewNodeID(2, 8), compact.NewNodeID(1, 19)}); err != nil {
		t.Fatal(err)
	}
}

// TestNodesBeyondInt64: node IDs whose leaves lie beyond any index an
// int64 holds (where treePos and the leaf ranges would overflow and
// alias real nodes) are not found, on a log that has the nodes they
// would alias.
func TestNodesBeyondInt64(t *testing.T) {
	ctx := context.Background()
	s := openQuiet(t)
	leaves, nodes := testLog(t, factoryForTest().NewEmptyRange(0), 0, 40, false)
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	for _, id := range []compact.NodeID{
		compact.NewNodeID(0, 1<<62), compact.NewNodeID(3, 1<<61), compact.NewNodeID(3, 1<<63),
		compact.NewNodeID(4, 1<<60), compact.NewNodeID(5, 1<<63|1), compact.NewNodeID(63, 0), compact.NewNodeID(64, 0),
	} {
		if h, err := s.TlogNodes(ctx, []compact.NodeID{id}); !errors.Is(err, tlog.ErrNotFound) {
			t.Errorf("node %d/%d: %x, %v; want tlog.ErrNotFound", id.Level, id.Index, h, err)
		}
	}
}

// TestIndexerCatchesUpAtOpen: a Store's indexer indexes, with nothing
// else asking, the leaves that were appended before Open (a crash, or
// another process).
func TestIndexerCatchesUpAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s := openQuietAt(t, path)
	leaves, nodes := testLog(t, factoryForTest().NewEmptyRange(0), 0, 10, false)
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tlog_search`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tlog_search holds %d rows 20 s after Open, want 10", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
