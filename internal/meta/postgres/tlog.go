package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"

	"github.com/custody-dev/custody/internal/tlog"
)

// The audit log's storage (tlog.Store): tlog_leaves, tlog_head, tlog_nodes
// and tlog_checkpoints (migration 2).
//
// Storage layout. tlog_nodes holds the nodes of level 0 and of level 4
// and above (tlog.Derived): a node of level 1 to 3 covers at most 8
// leaves, and TlogNodes computes it from their level-0 nodes
// (tlog.SubtreeHash). Databases from before keep those nodes, unused.
//
// An append inserts its leaves into tlog_leaves, whose only index is its
// primary key. What searches read is in tlog_search (migration 12): each
// leaf's hash and the fields searches filter on, from its entry parsed
// as jsonb (custody_jsonb, custody_search_fields), with the leaf-hash,
// GIN and time indexes. The search indexer (tlogsearch.go)
// fills it behind the appends, a batch at a time. A search reads the
// indexed leaves (tlog_search joined to tlog_leaves on index and leaf
// hash, so a row left by a leaf since replaced is not read) and the
// tail, the leaves above the last indexed one, parsed as it reads them.
// The leaves' doc column is no longer written; databases from before
// keep it.
//
// Several replicas may append to one database. tlog_head holds the size;
// TlogAppend locks its row, compares the size with start and writes the
// leaves, nodes and new size in the same transaction, so the log stays one
// contiguous sequence: a writer whose view is stale gets an error wrapping
// ErrTlogConflict (tlog.ErrAppendConflict) and writes nothing, and must
// reload the size and the tree's compact range before it tries again
// (tlog.Log does).

var _ tlog.Store = (*Store)(nil)

// SigningLog returns the storage of the transparency log for signing
// events (internal/rekor): the same tlog.Store on its own tables,
// signlog_leaves, signlog_head, signlog_nodes and signlog_checkpoints (the
// last migration), so the Merkle tree code and its conformance suite are
// one.
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
	return logTables(s.tlogPrefix, query)
}

// logTables names query's tables for the log whose tables begin with
// prefix.
func logTables(prefix, query string) string {
	return strings.ReplaceAll(query, "tlog_", prefix)
}

// ErrTlogConflict is wrapped by the error of a TlogAppend whose start is
// not the log's current size: another writer (replica) appended first. It
// is tlog.ErrAppendConflict, which tlog.Log recognises to reload the tree
// and append again.
var ErrTlogConflict = tlog.ErrAppendConflict

// TlogSize returns the number of stored leaves.
func (s *Store) TlogSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, s.tq(`SELECT size FROM tlog_head`)).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: audit log size: %w", err)
	}
	return uint64(n), nil
}

// TlogAppend stores leaves (numbered from start) and nodes in one
// statement, its own transaction (insertAt), under the lock of the log's
// head row. If start is not the current size it fails with an error
// wrapping ErrTlogConflict and writes nothing. Nodes overwrite nodes of
// the same ID.
func (s *Store) TlogAppend(ctx context.Context, start uint64, leaves []tlog.Leaf, nodes []tlog.Node) error {
	if len(leaves) == 0 {
		return s.write(ctx, func(tx pgx.Tx) error {
			return s.putNodes(ctx, tx, nodes, `ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash`)
		})
	}
	query, args, err := s.insertAt(start, leaves, nodes, `FOR UPDATE`)
	if err != nil {
		return err
	}
	var size int64
	for attempt := 1; ; attempt++ {
		err = s.pool.QueryRow(ctx, query, args...).Scan(&size)
		if err == nil || !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: audit log append: %w", err)
	}
	if uint64(size) != start {
		return fmt.Errorf("postgres: audit log append at %d, but the log has %d entries: %w", start, size, ErrTlogConflict)
	}
	s.search.Kick()
	return nil
}

// insertAt is the statement that stores leaves (numbered from at) and
// nodes if the log holds at leaves, with its arguments: it locks the
// head row (lock: FOR UPDATE, or FOR UPDATE SKIP LOCKED not to wait for
// it), and the inserts and the size's update run only if the size is
// at; it returns the size the head held, or no row when SKIP LOCKED
// skipped it. One round trip.
func (s *Store) insertAt(at uint64, leaves []tlog.Leaf, nodes []tlog.Node, lock string) (string, []any, error) {
	idxs := make([]int64, len(leaves))
	entries := make([]string, len(leaves))
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		if l.Index != at+uint64(i) {
			return "", nil, fmt.Errorf("postgres: audit log append at %d: leaf %d has index %d", at, i, l.Index)
		}
		idxs[i], entries[i], hashes[i] = int64(l.Index), string(l.Entry), l.Hash
	}
	nodes = storedNodes(nodes)
	levels := make([]int32, len(nodes))
	nidxs := make([]int64, len(nodes))
	nhashes := make([][]byte, len(nodes))
	for i, n := range nodes {
		levels[i], nidxs[i], nhashes[i] = int32(n.ID.Level), int64(n.ID.Index), n.Hash
	}
	return s.tq(`WITH
		head AS (SELECT size FROM tlog_head ` + lock + `),
		ok AS (SELECT FROM head WHERE size = $7),
		leaves AS (INSERT INTO tlog_leaves(idx, entry, leaf_hash)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[]) WHERE EXISTS (SELECT FROM ok)),
		nodes AS (INSERT INTO tlog_nodes(level, idx, hash)
			SELECT DISTINCT ON (l, i) l, i, h FROM unnest($4::int[], $5::bigint[], $6::bytea[]) WITH ORDINALITY AS n(l, i, h, o)
			WHERE EXISTS (SELECT FROM ok)
			ORDER BY l, i, o DESC
			ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash),
		grown AS (UPDATE tlog_head SET size = size + cardinality($1::bigint[]) WHERE EXISTS (SELECT FROM ok))
		SELECT size FROM head`), []any{idxs, entries, hashes, levels, nidxs, nhashes, int64(at)}, nil
}

// putNodes inserts nodes with the given ON CONFLICT clause.
func (s *Store) putNodes(ctx context.Context, tx pgx.Tx, nodes []tlog.Node, onConflict string) error {
	nodes = storedNodes(nodes)
	if len(nodes) == 0 {
		return nil
	}
	levels := make([]int32, len(nodes))
	idxs := make([]int64, len(nodes))
	hashes := make([][]byte, len(nodes))
	for i, n := range nodes {
		levels[i], idxs[i], hashes[i] = int32(n.ID.Level), int64(n.ID.Index), n.Hash
	}
	// A batch may name a node twice (an overwrite); keep the last.
	_, err := tx.Exec(ctx, s.tq(`INSERT INTO tlog_nodes(level, idx, hash)
		SELECT DISTINCT ON (l, i) l, i, h FROM unnest($1::int[], $2::bigint[], $3::bytea[]) WITH ORDINALITY AS n(l, i, h, o)
		ORDER BY l, i, o DESC `)+onConflict, levels, idxs, hashes)
	if err != nil {
		return fmt.Errorf("postgres: audit log nodes: %w", err)
	}
	return nil
}

// TlogFillNodes stores the nodes that are not stored yet, keeping existing
// ones.
func (s *Store) TlogFillNodes(ctx context.Context, nodes []tlog.Node) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		return s.putNodes(ctx, tx, nodes, `ON CONFLICT (level, idx) DO NOTHING`)
	})
}

// TlogLeaves returns the leaves with start <= index < end, in order.
func (s *Store) TlogLeaves(ctx context.Context, start, end uint64) ([]tlog.Leaf, error) {
	rows, err := s.pool.Query(ctx, s.tq(`SELECT idx, entry, leaf_hash FROM tlog_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx`),
		clampIndex(start), clampIndex(end))
	if err != nil {
		return nil, fmt.Errorf("postgres: audit log entries: %w", err)
	}
	return collectLeaves(rows)
}

// clampIndex converts a leaf index to BIGINT, saturating.
func clampIndex(i uint64) int64 {
	if i > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(i)
}

func collectLeaves(rows pgx.Rows) ([]tlog.Leaf, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tlog.Leaf, error) {
		var (
			l     tlog.Leaf
			idx   int64
			entry string
		)
		err := row.Scan(&idx, &entry, &l.Hash)
		l.Index, l.Entry = uint64(idx), []byte(entry)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: audit log entries: %w", err)
	}
	return out, nil
}

// TlogNodes returns the hashes of the nodes ids, in order, or an error
// wrapping tlog.ErrNotFound if one is missing.
func (s *Store) TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	return s.tlogNodes(ctx, s.pool, ids)
}

// tlogNodes is TlogNodes, read through q from tlog_nodes, computing the
// nodes of levels 1 to 3 from the level-0 nodes they cover (see "Storage
// layout").
func (s *Store) tlogNodes(ctx context.Context, q querier, ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	var (
		levels, lowLevels []int32
		idxs, lowIdxs     []int64
		at, lowAt         []int // positions in ids
	)
	for i, id := range ids {
		if !tlog.NodeInRange(id) {
			continue // missing: int32(id.Level) would name another level
		}
		if tlog.Derived(id) {
			lowLevels, lowIdxs, lowAt = append(lowLevels, int32(id.Level)), append(lowIdxs, clampIndex(id.Index)), append(lowAt, i)
		} else {
			levels, idxs, at = append(levels, int32(id.Level)), append(idxs, clampIndex(id.Index)), append(at, i)
		}
	}
	out := make([][]byte, len(ids))
	if len(at) > 0 {
		rows, err := q.Query(ctx, s.tq(`SELECT n.o, t.hash
		FROM unnest($1::int[], $2::bigint[]) WITH ORDINALITY AS n(l, i, o)
		JOIN tlog_nodes t ON t.level = n.l AND t.idx = n.i`), levels, idxs)
		if err != nil {
			return nil, fmt.Errorf("postgres: audit log nodes: %w", err)
		}
		var (
			o    int64
			hash []byte
		)
		if _, err := pgx.ForEachRow(rows, []any{&o, &hash}, func() error {
			out[at[o-1]] = hash
			return nil
		}); err != nil {
			return nil, fmt.Errorf("postgres: audit log nodes: %w", err)
		}
	}
	if len(lowAt) > 0 {
		// The index ranges stay far below BIGINT's limit: clampIndex
		// saturates, and a node of a level below 4 shifts by 3 at most.
		rows, err := q.Query(ctx, s.tq(`SELECT n.o, array_agg(t.hash ORDER BY t.idx)
		FROM unnest($1::int[], $2::bigint[]) WITH ORDINALITY AS n(l, i, o)
		JOIN tlog_nodes t ON t.level = 0 AND t.idx >= n.i << n.l AND t.idx < (n.i + 1) << n.l
		WHERE n.i < (1::bigint << 59)
		GROUP BY n.o`), lowLevels, lowIdxs)
		if err != nil {
			return nil, fmt.Errorf("postgres: audit log nodes: %w", err)
		}
		var (
			o      int64
			hashes [][]byte
		)
		if _, err := pgx.ForEachRow(rows, []any{&o, &hashes}, func() error {
			i := lowAt[o-1]
			if len(hashes) != 1<<ids[i].Level {
				return nil // a level-0 node is missing: reported below
			}
			h, err := tlog.SubtreeHash(hashes)
			out[i] = h
			return err
		}); err != nil {
			return nil, fmt.Errorf("postgres: audit log nodes: %w", err)
		}
	}
	for i, h := range out {
		if h == nil {
			return nil, fmt.Errorf("%w: node %d/%d", tlog.ErrNotFound, ids[i].Level, ids[i].Index)
		}
	}
	return out, nil
}

// storedNodes drops the nodes of levels 1 to 3: they are not stored (see
// "Storage layout").
func storedNodes(nodes []tlog.Node) []tlog.Node {
	out := nodes[:0:0]
	for _, n := range nodes {
		if !tlog.Derived(n.ID) {
			out = append(out, n)
		}
	}
	return out
}

// searchTop is where the tail begins (see "Storage layout"): the index
// of tlog_search's last row that matches its leaf (same index and leaf
// hash), or -1. Normally that is its last row. Rows above it are stale:
// their leaves were deleted, or replaced by others (a log rolled back
// behind the server's back and appended to again), until the indexer
// drops them, and the leaves there are read as tail. The last row is
// checked alone first: PostgreSQL plans the search below it as a join of
// both tables whole, which only a stale last row then pays for.
const searchTop = `COALESCE(
	(SELECT ts.idx FROM (SELECT idx, leaf_hash FROM tlog_search ORDER BY idx DESC LIMIT 1) ts JOIN tlog_leaves tl ON tl.idx = ts.idx AND tl.leaf_hash = ts.leaf_hash),
	(SELECT ts.idx FROM tlog_search ts JOIN tlog_leaves tl ON tl.idx = ts.idx AND tl.leaf_hash = ts.leaf_hash ORDER BY ts.idx DESC LIMIT 1),
	-1)`

// TlogLeafIndex returns the smallest index of a leaf with this hash, or
// tlog.ErrNotFound: tlog_search's leaf-hash index, then the tail.
func (s *Store) TlogLeafIndex(ctx context.Context, hash []byte) (uint64, error) {
	var idx *int64
	err := s.pool.QueryRow(ctx, s.tq(`SELECT MIN(i) FROM (
	SELECT s.idx AS i FROM tlog_search s JOIN tlog_leaves l ON l.idx = s.idx AND l.leaf_hash = s.leaf_hash WHERE s.leaf_hash = $1
	UNION ALL
	SELECT idx FROM tlog_leaves WHERE idx > `+searchTop+` AND leaf_hash = $1) c`), hash).Scan(&idx)
	if err != nil {
		return 0, fmt.Errorf("postgres: audit log leaf: %w", err)
	}
	if idx == nil {
		return 0, tlog.ErrNotFound
	}
	return uint64(*idx), nil
}

// TlogSearch returns the leaves matching q in index order: the indexed
// leaves through tlog_search's indexes, and the tail (see "Storage
// layout"), each filter applied to both. Entries that are not JSON never
// match.
func (s *Store) TlogSearch(ctx context.Context, q tlog.Query) ([]tlog.Leaf, error) {
	query, args, err := searchQuery(q)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit log search: %w", err)
	}
	rows, err := s.pool.Query(ctx, s.tq(query), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit log search: %w", err)
	}
	return collectLeaves(rows)
}

// searchQuery is TlogSearch's statement, on the audit log's tables.
func searchQuery(q tlog.Query) (string, []any, error) {
	var (
		conds = []string{"doc IS NOT NULL"}
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	match := map[string]string{}
	if q.Repo != "" {
		match["repo"] = q.Repo
	}
	if q.Digest != "" {
		match["digest"] = q.Digest
	}
	if q.Actor != "" {
		match["actor"] = q.Actor
	}
	if q.Action != "" {
		match["action"] = q.Action
	}
	if len(match) > 0 {
		b, err := json.Marshal(match)
		if err != nil {
			return "", nil, err
		}
		add(`doc @> ?::jsonb`, string(b))
	}
	// Entry times are fixed-width RFC 3339 UTC, so they sort as strings.
	// The time index holds their first 64 characters (migration 12),
	// which compare with a formatted time (fewer characters) in the "C"
	// collation as the whole time does.
	if !q.Since.IsZero() {
		add(`left(doc->>'time', 64) COLLATE "C" >= ?`, tlog.FormatTime(q.Since))
	}
	if !q.Until.IsZero() {
		add(`left(doc->>'time', 64) COLLATE "C" < ?`, tlog.FormatTime(q.Until))
	}
	if q.Before > 0 {
		add(`idx < ?`, int64(q.Before))
	}
	order := ` ORDER BY idx`
	if q.Newest {
		order += ` DESC`
	}
	if q.Limit > 0 {
		args = append(args, int64(q.Limit))
		order += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	// Each branch is ordered and limited itself, so that a search of the
	// newest entries reads only those. The filters name the columns doc
	// and idx. In the first branch they select the candidates through
	// tlog_search's indexes (sdoc, the entry's fields as indexed) and
	// are checked again against the entry itself (doc), so that a leaf
	// is returned only if what it says now matches, as when the search
	// read the entries alone; the leaf is read per row (LATERAL ...
	// OFFSET 0), as PostgreSQL misjudges the join on index and leaf hash
	// as matching almost nothing and would otherwise join both tables
	// whole. In the second, each tail entry is parsed once.
	where := strings.Join(conds, " AND ")
	indexed := strings.ReplaceAll(where, "doc", "sdoc")
	query := `(SELECT idx, entry, leaf_hash FROM (
	SELECT s.idx, s.doc AS sdoc, l.doc, l.entry, l.leaf_hash FROM tlog_search s
	CROSS JOIN LATERAL (SELECT entry, leaf_hash, custody_jsonb(entry) AS doc FROM tlog_leaves l WHERE l.idx = s.idx AND l.leaf_hash = s.leaf_hash OFFSET 0) l) c
	WHERE ` + indexed + ` AND ` + where + order + `)
UNION ALL
(SELECT idx, entry, leaf_hash FROM (
	SELECT idx, custody_jsonb(entry) AS doc, entry, leaf_hash FROM tlog_leaves WHERE idx > ` + searchTop + ` OFFSET 0) t
	WHERE ` + where + order + `)` + order
	return query, args, nil
}

// TlogPutCheckpoint stores a signed checkpoint. Storing a second one of
// the same size fails.
func (s *Store) TlogPutCheckpoint(ctx context.Context, cp tlog.Checkpoint) error {
	_, err := s.pool.Exec(ctx, s.tq(`INSERT INTO tlog_checkpoints(size, root, note, created) VALUES ($1, $2, $3, $4)`),
		int64(cp.Size), cp.Root, string(cp.Note), time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("postgres: audit checkpoint: %w", err)
	}
	return nil
}

// TlogLatestCheckpoint returns the signed checkpoint of the largest size,
// or tlog.ErrNotFound.
func (s *Store) TlogLatestCheckpoint(ctx context.Context) (tlog.Checkpoint, error) {
	var (
		cp   tlog.Checkpoint
		size int64
		note string
	)
	err := s.pool.QueryRow(ctx, s.tq(`SELECT size, root, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1`)).
		Scan(&size, &cp.Root, &note)
	if errors.Is(err, pgx.ErrNoRows) {
		return cp, tlog.ErrNotFound
	}
	if err != nil {
		return cp, fmt.Errorf("postgres: audit checkpoint: %w", err)
	}
	cp.Size, cp.Note = uint64(size), []byte(note)
	text, _, _ := strings.Cut(note, "\n\n")
	if body, err := tlog.ParseCheckpointBody(text + "\n"); err == nil {
		cp.Origin = body.Origin
	}
	return cp, nil
}

// logTx is the audit log as a write transaction sees it (tlog.TxStore):
// TlogInsertAt locks the head row until the transaction ends, so it is
// the last thing the transaction does before its COMMIT.
type logTx struct {
	s  *Store
	tx pgx.Tx
}

func (t *logTx) TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	return t.s.tlogNodes(ctx, t.tx, ids)
}

// TlogInsertAt locks the head row, compares the size and stores the
// leaves, the nodes and the new size in one statement (insertAt). It
// does not wait for the head row when another transaction holds it
// (SKIP LOCKED): it fails with tlog.ErrAppendBusy, so that concurrent
// changes do not queue on the row one COMMIT after another but leave
// their entries to the log's group commit (see Store.write).
func (t *logTx) TlogInsertAt(ctx context.Context, at uint64, leaves []tlog.Leaf, nodes []tlog.Node) (uint64, error) {
	query, args, err := t.s.insertAt(at, leaves, nodes, `FOR UPDATE SKIP LOCKED`)
	if err != nil {
		return 0, err
	}
	var size int64
	err = t.tx.QueryRow(ctx, query, args...).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("postgres: audit log head is locked: %w", tlog.ErrAppendBusy)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: audit log append: %w", err)
	}
	return uint64(size), nil
}
