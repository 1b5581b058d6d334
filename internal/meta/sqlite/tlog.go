package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/custody-dev/custody/internal/tlog"
)

// The audit log's storage (tlog.Store): tlog_leaves, tlog_nodes and
// tlog_checkpoints (migration 4).

var _ tlog.Store = (*Store)(nil)

// SigningLog returns the storage of the transparency log for signing
// events (internal/rekor): the same tlog.Store on its own tables,
// signlog_leaves, signlog_nodes and signlog_checkpoints (the last
// migration), so the Merkle tree code and its conformance suite are one.
func (s *Store) SigningLog() tlog.Store {
	c := *s
	c.tlogPrefix = "signlog_"
	return &c
}

// tq names query's tables for the log s stores: the audit log's tlog_
// tables, or another log's (SigningLog).
func (s *Store) tq(query string) string {
	if s.tlogPrefix == "" {
		return query
	}
	return strings.ReplaceAll(query, "tlog_", s.tlogPrefix)
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
		st, err := tx.PrepareContext(ctx, s.tq(`INSERT OR IGNORE INTO tlog_nodes(level, idx, hash) VALUES (?, ?, ?)`))
		if err != nil {
			return fmt.Errorf("sqlite: audit log nodes: %w", err)
		}
		defer st.Close()
		for _, n := range nodes {
			if _, err := st.ExecContext(ctx, int64(n.ID.Level), int64(n.ID.Index), n.Hash); err != nil {
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
	out := make([][]byte, len(ids))
	for i, id := range ids {
		err := conn.QueryRowContext(ctx, s.tq(`SELECT hash FROM tlog_nodes WHERE level = ? AND idx = ?`), int64(id.Level), int64(id.Index)).Scan(&out[i])
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: node %d/%d", tlog.ErrNotFound, id.Level, id.Index)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit log nodes: %w", err)
		}
	}
	return out, nil
}

// TlogLeafIndex implements tlog.Store.
func (s *Store) TlogLeafIndex(ctx context.Context, hash []byte) (uint64, error) {
	var idx int64
	err := s.r.QueryRowContext(ctx, s.tq(`SELECT MIN(idx) FROM tlog_leaves WHERE leaf_hash = ? HAVING COUNT(*) > 0`), hash).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, tlog.ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: audit log leaf: %w", err)
	}
	return uint64(idx), nil
}

// TlogSearch implements tlog.Store. The fields it filters on are indexed
// (migration 8).
func (s *Store) TlogSearch(ctx context.Context, q tlog.Query) ([]tlog.Leaf, error) {
	query, args := searchQuery(q)
	rows, err := s.r.QueryContext(ctx, s.tq(query), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit log search: %w", err)
	}
	return scanLeaves(rows)
}

// searchQuery is TlogSearch's statement. Its json_extract expressions
// are those of the indexes of migration 8, character for character.
func searchQuery(q tlog.Query) (string, []any) {
	query := `SELECT idx, entry, leaf_hash FROM tlog_leaves WHERE json_valid(entry)`
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
	// Entry times are fixed-width RFC 3339 UTC, so they sort as strings.
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
	node, err = s.prepared(ctx, s.tq(`INSERT OR REPLACE INTO tlog_nodes(level, idx, hash) VALUES (?, ?, ?)`))
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

func (t *logTx) TlogSize(ctx context.Context) (uint64, error) {
	var size int64
	if err := t.tx.StmtContext(ctx, t.size).QueryRowContext(ctx).Scan(&size); err != nil {
		return 0, fmt.Errorf("sqlite: audit log size: %w", err)
	}
	return uint64(size), nil
}

func (t *logTx) TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		err := t.tx.QueryRowContext(ctx, t.s.tq(`SELECT hash FROM tlog_nodes WHERE level = ? AND idx = ?`), int64(id.Level), int64(id.Index)).Scan(&out[i])
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: node %d/%d", tlog.ErrNotFound, id.Level, id.Index)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit log nodes: %w", err)
		}
	}
	return out, nil
}

func (t *logTx) TlogInsert(ctx context.Context, leaves []tlog.Leaf, nodes []tlog.Node) error {
	return insertLeavesAndNodes(ctx, t.tx, t.leaf, t.node, leaves, nodes)
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
			if _, err := st.ExecContext(ctx, int64(n.ID.Level), int64(n.ID.Index), n.Hash); err != nil {
				return fmt.Errorf("sqlite: audit log nodes: %w", err)
			}
		}
	}
	return nil
}
