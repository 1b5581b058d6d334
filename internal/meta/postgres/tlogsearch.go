package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custody-dev/custody/internal/meta"
)

// The search indexer (startSearchIndexer, a meta.Catchup) copies the
// parsed entries and leaf hashes of newly appended leaves into
// tlog_search and signlog_search (see tlog.go, "Storage layout").
// Appends kick it; it waits searchIndexDelay so that the appends of a
// burst are indexed in one transaction, then catches up. Its writes
// commit without waiting for their flush (meta.FlushLater): the table is
// derived from the leaves, and after a crash it catches up from whatever
// it holds. Replicas sharing the database each run one; a transaction-
// scoped advisory lock per log lets one index at a time.

const (
	// searchIndexDelay is how long the indexer lets appends accumulate
	// after the first one it is told of, as the SQLite backend's. Searches
	// parse at most about that long's entries as they read them.
	searchIndexDelay = time.Second
	// searchIndexBatch caps the leaves indexed per transaction, so that
	// a long backlog does not hold the log's index lock for long.
	searchIndexBatch = 4096
)

// searchedLogs are the prefixes of the logs' tables (Store.tlogPrefix).
var searchedLogs = [...]string{"tlog_", "signlog_"}

// startSearchIndexer starts s's search indexer (see above).
func startSearchIndexer(s *Store) *meta.Catchup {
	// Searches read the leaves not indexed yet directly, so a failure
	// costs only speed.
	return meta.StartCatchup(searchIndexDelay, "audit log search index", s.indexSearch)
}

// indexSearch brings tlog_search and signlog_search up to date with
// their leaves: it drops the rows above the last that matches its leaf
// (searchTop: rows of leaves that are gone or were replaced) and adds the
// leaves above the largest indexed one, searchIndexBatch per transaction.
func (s *Store) indexSearch(ctx context.Context) error {
	ctx = meta.FlushLater(ctx)
	for _, p := range searchedLogs {
		for {
			var n int64
			err := s.write(ctx, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, logTables(p, `SELECT pg_advisory_xact_lock(hashtextextended('custody.meta.tlog_search.' || current_schema(), 0))`)); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, logTables(p, `DELETE FROM tlog_search WHERE idx > `+searchTop)); err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, logTables(p, `INSERT INTO tlog_search(idx, leaf_hash, doc)
SELECT idx, leaf_hash, custody_search_fields(custody_jsonb(entry)) FROM tlog_leaves
WHERE idx > (SELECT COALESCE(MAX(idx), -1) FROM tlog_search) ORDER BY idx LIMIT $1`), searchIndexBatch)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				return fmt.Errorf("postgres: indexing %sleaves: %w", p, err)
			}
			if n < searchIndexBatch {
				break
			}
		}
	}
	return nil
}
