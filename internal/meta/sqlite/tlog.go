package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/custody-dev/custody/internal/tlog"
)

// The audit log's storage (tlog.Store): tlog_leaves, tlog_tree,
// tlog_search and tlog_checkpoints (migrations 4 and 14).
//
// Storage layout. A change's entries are stored in the change's own
// transaction (writeWithEntries), and each page an append touches is one
// more page the commit writes to the WAL (and the checkpointer to the
// database). An append therefore touches as few pages as it can:
//   - tlog_leaves is keyed by index alone: consecutive leaves share a
//     page.
//   - tlog_tree keys each node by its place in post-order (treePos), so
//     the nodes one append completes are neighbours too. Keyed by
//     (level, idx) they were a page per level.
//   - tlog_tree holds the nodes of level 0 and of level 4 and above
//     (tlog.Derived): a node of level 1 to 3 is the hash of at most 8
//     level-0 nodes, and TlogNodes computes it from them (treeNodes).
//     Stored, they were about one more row per append. Level 0 stays:
//     the leaf hashes as appended, apart from tlog_leaves, from which
//     proofs against earlier checkpoints are built.
//   - The fields searches filter on and the leaf hashes are not indexed
//     in the append's transaction: the search indexer copies them into
//     tlog_search, whose indexes serve TlogSearch and TlogLeafIndex, in
//     batches behind the appends. Both read the leaves it has not reached
//     yet (the tail, above tlog_search's last row that matches its leaf:
//     searchTop) directly, in the same statement, so what they return
//     does not depend on how far it got. Migration 14 moved an existing
//     database to this layout.

var _ tlog.Store = (*Store)(nil)

// SigningLog returns the storage of the transparency log for signing
// events (internal/rekor): the same tlog.Store on its own tables,
// signlog_leaves, signlog_tree, signlog_search and signlog_checkpoints
// (migrations 12 and 14), so the Merkle tree code and its conformance
// suite are one. It shares s's connections and search indexer: closing s
// closes it.
func (s *Store) SigningLog() tlog.Store {
	c := *s
	c.tlogPrefix = "signlog_"
	return &c
}

// tq names query's tables for the log s stores: the audit log's tlog_
// tables, or another log's (SigningLog).
func (s *Store) tq(query string) string { return logTables(s.tlogPrefix, query) }

// logTables names query's tlog_ tables for the log whose tables begin
// with prefix ("" or "tlog_": the audit log's).
func logTables(prefix, query string) string {
	if prefix == "" {
		return query
	}
	return strings.ReplaceAll(query, "tlog_", prefix)
}

// TlogSize implements tlog.Store.
func (s *Store) TlogSize(ctx context.Context) (uint64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, s.tq(`SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_leaves`)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: audit log size: %w", err)
	}
	return uint64(n), nil
}

// TlogAppend implements tlog.Store. If start is not the current size (a
// writer sharing the database appended first) it writes nothing and
// returns an error wrapping tlog.ErrAppendConflict.
//
// Its three statements are prepared once (appendStmts): parsing them on
// every commit was a fifth of the log's CPU per change.
func (s *Store) TlogAppend(ctx context.Context, start uint64, leaves []tlog.Leaf, nodes []tlog.Node) error {
	// Prepared before the transaction: the write pool's one connection
	// is the transaction's while it runs.
	sizeQ, leafQ, nodeQ, err := s.appendStmts(ctx)
	if err != nil {
		return err
	}
	defer s.search.Kick()
	return s.write(ctx, func(tx *sql.Tx) error {
		if len(leaves) > 0 {
			var size int64
			if err := tx.StmtContext(ctx, sizeQ).QueryRowContext(ctx).Scan(&size); err != nil {
				return fmt.Errorf("sqlite: audit log size: %w", err)
			}
			if uint64(size) != start {
				return fmt.Errorf("sqlite: audit log append at %d, but the log has %d entries: %w", start, size, tlog.ErrAppendConflict)
			}
		}
		return insertLeavesAndNodes(ctx, tx, leafQ, nodeQ, leaves, nodes)
	})
}

// TlogFillNodes implements tlog.Store.
func (s *Store) TlogFillNodes(ctx context.Context, nodes []tlog.Node) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.tq(`INSERT OR IGNORE INTO tlog_tree(pos, hash) VALUES (?, ?)`))
		if err != nil {
			return fmt.Errorf("sqlite: audit log nodes: %w", err)
		}
		defer st.Close()
		for _, n := range nodes {
			if tlog.Derived(n.ID) {
				continue
			}
			if _, err := st.ExecContext(ctx, treePos(n.ID), n.Hash); err != nil {
				return fmt.Errorf("sqlite: audit log nodes: %w", err)
			}
		}
		return nil
	})
}

// TlogLeaves implements tlog.Store.
func (s *Store) TlogLeaves(ctx context.Context, start, end uint64) ([]tlog.Leaf, error) {
	rows, err := s.r.QueryContext(ctx, s.tq(`SELECT idx, entry, leaf_hash FROM tlog_leaves WHERE idx >= ? AND idx < ? ORDER BY idx`), int64(start), int64(end))
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit log entries: %w", err)
	}
	return scanLeaves(rows)
}

func scanLeaves(rows *sql.Rows) ([]tlog.Leaf, error) {
	defer rows.Close()
	var out []tlog.Leaf
	for rows.Next() {
		var (
			l     tlog.Leaf
			idx   int64
			entry string
		)
		if err := rows.Scan(&idx, &entry, &l.Hash); err != nil {
			return nil, fmt.Errorf("sqlite: audit log entries: %w", err)
		}
		l.Index, l.Entry = uint64(idx), []byte(entry)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit log entries: %w", err)
	}
	return out, nil
}

// TlogNodes implements tlog.Store.
func (s *Store) TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit log nodes: %w", err)
	}
	defer conn.Close()
	return s.treeNodes(ctx, conn, ids)
}

// querier is a connection or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// treeNodes returns the hashes of the nodes ids as q reads them from
// tlog_tree, computing those of levels 1 to 3 from the level-0 nodes they
// cover (see "Storage layout").
func (s *Store) treeNodes(ctx context.Context, q querier, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		var err error
		switch {
		case !tlog.NodeInRange(id):
			// Beyond any log an int64 index can hold, where treePos and
			// the ranges below would overflow.
			err = fmt.Errorf("%w: node %d/%d", tlog.ErrNotFound, id.Level, id.Index)
		case tlog.Derived(id):
			out[i], err = s.derivedNode(ctx, q, id)
		default:
			err = q.QueryRowContext(ctx, s.tq(`SELECT hash FROM tlog_tree WHERE pos = ?`), treePos(id)).Scan(&out[i])
			if errors.Is(err, sql.ErrNoRows) {
				err = fmt.Errorf("%w: node %d/%d", tlog.ErrNotFound, id.Level, id.Index)
			}
		}
		if errors.Is(err, tlog.ErrNotFound) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit log nodes: %w", err)
		}
	}
	return out, nil
}

// derivedNode computes node id (tlog.Derived) from the level-0 nodes it
// covers, or returns an error wrapping tlog.ErrNotFound if one of them is
// not stored. Their positions are the ends of a range that also holds the
// positions of the nodes of levels 1 and up below id, which databases
// from before this layout still store: those rows are skipped.
func (s *Store) derivedNode(ctx context.Context, q querier, id compact.NodeID) ([]byte, error) {
	first, n := id.Index<<id.Level, uint64(1)<<id.Level
	leafPos := func(k uint64) int64 { return treePos(compact.NewNodeID(0, first+k)) }
	rows, err := q.QueryContext(ctx, s.tq(`SELECT pos, hash FROM tlog_tree WHERE pos >= ? AND pos <= ? ORDER BY pos`), leafPos(0), leafPos(n-1))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	hashes := make([][]byte, 0, n)
	for rows.Next() {
		var (
			pos int64
			h   []byte
		)
		if err := rows.Scan(&pos, &h); err != nil {
			return nil, err
		}
		if k := uint64(len(hashes)); k < n && pos == leafPos(k) {
			hashes = append(hashes, h)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if uint64(len(hashes)) != n {
		return nil, fmt.Errorf("%w: node %d/%d", tlog.ErrNotFound, id.Level, id.Index)
	}
	return tlog.SubtreeHash(hashes)
}

// TlogLeafIndex implements tlog.Store: tlog_search's hash index, then
// the tail (see "Storage layout").
func (s *Store) TlogLeafIndex(ctx context.Context, hash []byte) (uint64, error) {
	var idx int64
	err := s.r.QueryRowContext(ctx, s.tq(`SELECT MIN(i) FROM (
	SELECT s.idx AS i FROM tlog_search s JOIN tlog_leaves l ON l.idx = s.idx AND l.leaf_hash = s.leaf_hash WHERE s.leaf_hash = ?1
	UNION ALL
	SELECT idx FROM tlog_leaves WHERE idx > `+searchTop+` AND leaf_hash = ?1
) HAVING COUNT(*) > 0`), hash).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, tlog.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: audit log leaf: %w", err)
	}
	return uint64(idx), nil
}

// TlogSearch implements tlog.Store: tlog_search's indexes, then the
// tail (see "Storage layout").
func (s *Store) TlogSearch(ctx context.Context, q tlog.Query) ([]tlog.Leaf, error) {
	query, args := searchQuery(q)
	rows, err := s.r.QueryContext(ctx, s.tq(query), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit log search: %w", err)
	}
	return scanLeaves(rows)
}

// searchTop is where the tail begins (see "Storage layout"): the index
// of tlog_search's last row that matches its leaf (same index and leaf
// hash), or -1. Normally that is its last row. Rows above it are stale:
// their leaves were deleted, or replaced by others (a log rolled back
// behind the server's back and appended to again), until the indexer
// drops them, and the leaves there are read as tail. Read from the top
// down, it stops at the first row that matches.
const searchTop = `COALESCE((SELECT ts.idx FROM tlog_search ts JOIN tlog_leaves tl ON tl.idx = ts.idx AND tl.leaf_hash = ts.leaf_hash ORDER BY ts.idx DESC LIMIT 1), -1)`

// searchQuery is TlogSearch's statement: the indexed leaves (tlog_search
// joined to tlog_leaves) and the tail, merged in index order. tlog_search
// picks the candidates; each filter is also checked against the entry
// itself, so a leaf is returned only if what it says now matches, as
// when the search read the entries alone.
func searchQuery(q tlog.Query) (string, []any) {
	indexed := `SELECT s.idx, l.entry, l.leaf_hash FROM tlog_search s JOIN tlog_leaves l ON l.idx = s.idx AND l.leaf_hash = s.leaf_hash WHERE json_valid(l.entry)`
	tail := `SELECT idx, entry, leaf_hash FROM tlog_leaves WHERE idx > ` + searchTop + ` AND json_valid(entry)`
	var args []any
	add := func(field, op string, v any) {
		args = append(args, v)
		n := len(args)
		indexed += fmt.Sprintf(" AND s.%s %s ?%d AND json_extract(l.entry, '$.%s') %s ?%d", field, op, n, field, op, n)
		tail += fmt.Sprintf(" AND json_extract(entry, '$.%s') %s ?%d", field, op, n)
	}
	if q.Repo != "" {
		add("repo", "=", q.Repo)
	}
	if q.Digest != "" {
		add("digest", "=", q.Digest)
	}
	if q.Actor != "" {
		add("actor", "=", q.Actor)
	}
	if q.Action != "" {
		add("action", "=", q.Action)
	}
	if q.Before > 0 {
		args = append(args, int64(q.Before))
		indexed += fmt.Sprintf(" AND s.idx < ?%d", len(args))
		tail += fmt.Sprintf(" AND idx < ?%d", len(args))
	}
	// Entry times are fixed-width RFC 3339 UTC, so they sort as strings.
	if !q.Since.IsZero() {
		add("time", ">=", tlog.FormatTime(q.Since))
	}
	if !q.Until.IsZero() {
		add("time", "<", tlog.FormatTime(q.Until))
	}
	query := indexed + " UNION ALL " + tail + " ORDER BY 1"
	if q.Newest {
		query += ` DESC`
	}
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return query, args
}

// TlogPutCheckpoint implements tlog.Store.
func (s *Store) TlogPutCheckpoint(ctx context.Context, cp tlog.Checkpoint) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.tq(`INSERT INTO tlog_checkpoints(size, root, note, created) VALUES (?, ?, ?, ?)`),
			int64(cp.Size), cp.Root, string(cp.Note), time.Now().UnixMicro())
		if err != nil {
			return fmt.Errorf("sqlite: audit checkpoint: %w", err)
		}
		return nil
	})
}

// TlogLatestCheckpoint implements tlog.Store.
func (s *Store) TlogLatestCheckpoint(ctx context.Context) (tlog.Checkpoint, error) {
	var (
		cp   tlog.Checkpoint
		size int64
		note string
	)
	err := s.r.QueryRowContext(ctx, s.tq(`SELECT size, root, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1`)).Scan(&size, &cp.Root, &note)
	if errors.Is(err, sql.ErrNoRows) {
		return cp, tlog.ErrNotFound
	}
	if err != nil {
		return cp, fmt.Errorf("sqlite: audit checkpoint: %w", err)
	}
	cp.Size, cp.Note = uint64(size), []byte(note)
	if body, err := tlog.ParseCheckpointBody(noteText(note)); err == nil {
		cp.Origin = body.Origin
	}
	return cp, nil
}

// noteText returns the text of a signed note (up to the blank line).
func noteText(n string) string {
	for i := 0; i+1 < len(n); i++ {
		if n[i] == '\n' && n[i+1] == '\n' {
			return n[:i+1]
		}
	}
	return n
}

// stmtCache holds statements prepared on the write pool, by query text
// (the audit log's and SigningLog's differ in their table names, so the
// Store copies of both share one cache). database/sql prepares a statement
// again on a new connection when the pool replaces the old one.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns query prepared on the write pool. It must not be
// called inside a write transaction (the pool's one connection is busy).
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	c := s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := s.w.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

// close closes the cached statements.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// appendStmts returns TlogAppend's statements: the log's size, a leaf
// insert and a node insert.
func (s *Store) appendStmts(ctx context.Context) (size, leaf, node *sql.Stmt, err error) {
	if size, err = s.prepared(ctx, s.tq(`SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_leaves`)); err != nil {
		return
	}
	if leaf, err = s.prepared(ctx, s.tq(`INSERT INTO tlog_leaves(idx, entry, leaf_hash) VALUES (?, ?, ?)`)); err != nil {
		return
	}
	node, err = s.prepared(ctx, s.tq(`INSERT OR REPLACE INTO tlog_tree(pos, hash) VALUES (?, ?)`))
	return
}

// writeWithEntries runs fn and then the append p in one transaction, and
// commits it durably (synchronous=FULL, the level of every write not made
// under meta.FlushLater).
func (s *Store) writeWithEntries(ctx context.Context, p *tlog.Pending, fn func(tx *sql.Tx) error) error {
	// Prepared before the transaction: the write pool's one connection
	// is the transaction's while it runs.
	sizeQ, leafQ, nodeQ, err := s.appendStmts(ctx)
	if err != nil {
		return err
	}
	err = writeTx(ctx, s.w, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return p.Append(ctx, &logTx{s: s, tx: tx, size: sizeQ, leaf: leafQ, node: nodeQ})
	})
	if err != nil {
		return err
	}
	s.commits.flushed.Add(1)
	p.Committed()
	s.search.Kick()
	return nil
}

// logTx is the audit log as a write transaction sees it (tlog.TxStore).
// SQLite has one writer at a time: the transaction (BEGIN IMMEDIATE)
// keeps other appenders out until it ends.
type logTx struct {
	s                *Store
	tx               *sql.Tx
	size, leaf, node *sql.Stmt
}

func (t *logTx) TlogInsertAt(ctx context.Context, at uint64, leaves []tlog.Leaf, nodes []tlog.Node) (uint64, error) {
	var size int64
	if err := t.tx.StmtContext(ctx, t.size).QueryRowContext(ctx).Scan(&size); err != nil {
		return 0, fmt.Errorf("sqlite: audit log size: %w", err)
	}
	if uint64(size) != at {
		return uint64(size), nil
	}
	for i, l := range leaves {
		if l.Index != at+uint64(i) {
			return 0, fmt.Errorf("sqlite: audit log append at %d: leaf %d has index %d", at, i, l.Index)
		}
	}
	return at, insertLeavesAndNodes(ctx, t.tx, t.leaf, t.node, leaves, nodes)
}

func (t *logTx) TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	return t.s.treeNodes(ctx, t.tx, ids)
}

// insertLeavesAndNodes inserts leaves and nodes in tx with the prepared
// statements of appendStmts.
func insertLeavesAndNodes(ctx context.Context, tx *sql.Tx, leafQ, nodeQ *sql.Stmt, leaves []tlog.Leaf, nodes []tlog.Node) error {
	if len(leaves) > 0 {
		st := tx.StmtContext(ctx, leafQ)
		defer st.Close()
		for _, l := range leaves {
			if _, err := st.ExecContext(ctx, int64(l.Index), string(l.Entry), l.Hash); err != nil {
				return fmt.Errorf("sqlite: audit log append: %w", err)
			}
		}
	}
	if len(nodes) > 0 {
		st := tx.StmtContext(ctx, nodeQ)
		defer st.Close()
		for _, n := range nodes {
			if tlog.Derived(n.ID) {
				continue
			}
			if _, err := st.ExecContext(ctx, treePos(n.ID), n.Hash); err != nil {
				return fmt.Errorf("sqlite: audit log nodes: %w", err)
			}
		}
	}
	return nil
}

// treePos is the key of node id in tlog_tree: its place in the tree's
// post-order, in which a node follows the nodes of the leaves before and
// below it. The node completes when the log reaches n = (idx+1)<<level
// leaves; the 2(n-1) - popcount(n-1) nodes of the first n-1 leaves come
// before it, then those of levels 0 to level-1 that leaf n completes.
// Migration 14 computes the same in SQL.
func treePos(id compact.NodeID) int64 {
	m := (id.Index+1)<<id.Level - 1
	return int64(2*m - uint64(bits.OnesCount64(m)) + uint64(id.Level))
}
