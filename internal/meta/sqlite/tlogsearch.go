package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/custody-dev/custody/internal/meta"
)

// The search indexer (startSearchIndexer, a meta.Catchup) copies the
// search fields and leaf hashes of newly appended leaves into
// tlog_search and signlog_search (see tlog.go, "Storage layout").
// Appends kick it; it waits searchIndexDelay so that the appends of a
// burst are indexed in one transaction, then catches up. Its writes
// commit under meta.FlushLater: the table is derived from the leaves,
// and after a crash it catches up from whatever it holds.

const (
	// searchIndexDelay is how long the indexer lets appends accumulate
	// after the first one it is told of. Each catch-up is a commit that
	// writes the index pages it touched, the leaf-hash index's at random:
	// at 200 ms the indexer took 10 % of a manifest push's CPU, at 1 s 4 %
	// (BenchmarkManifestPut's profile). Searches scan at most about that
	// long's entries unindexed.
	searchIndexDelay = time.Second
	// searchIndexBatch caps the leaves indexed per transaction, so that
	// a long backlog does not hold the write connection for long.
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
// (searchTop: rows of leaves that are gone or were replaced, a log
// rolled back behind the server's back and maybe appended to again) and
// adds the leaves above the largest indexed one, searchIndexBatch per
// transaction.
//
// The columns are TEXT, which stores a number as its text: a time that
// is a number or a boolean (never written by the log, but an edited
// entry can hold one) is stored as the empty string instead, which
// sorts below every time as the number does in the entry, so that Since
// and Until select it from the table exactly when they select it from
// the entry. The fields searches match exactly need no such care: the
// entry is checked too, and a number never equals the text of a query.
func (s *Store) indexSearch(ctx context.Context) error {
	for _, p := range searchedLogs {
		for {
			var n int64
			err := s.writeFlushLater(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, logTables(p, `DELETE FROM tlog_search WHERE idx > `+searchTop)); err != nil {
					return err
				}
				// json_valid once per leaf (materialized): it parses the
				// entry, which the extracts then take from SQLite's cache.
				res, err := tx.ExecContext(ctx, logTables(p, `INSERT INTO tlog_search(idx, leaf_hash, repo, digest, actor, action, time)
WITH l AS MATERIALIZED (
	SELECT idx, leaf_hash, entry, json_valid(entry) AS ok FROM tlog_leaves
	WHERE idx > (SELECT COALESCE(MAX(idx), -1) FROM tlog_search) ORDER BY idx LIMIT ?)
SELECT idx, leaf_hash,
	CASE WHEN ok THEN json_extract(entry, '$.repo') END,
	CASE WHEN ok THEN json_extract(entry, '$.digest') END,
	CASE WHEN ok THEN json_extract(entry, '$.actor') END,
	CASE WHEN ok THEN json_extract(entry, '$.action') END,
	CASE WHEN ok THEN CASE json_type(entry, '$.time')
		WHEN 'integer' THEN '' WHEN 'real' THEN '' WHEN 'true' THEN '' WHEN 'false' THEN ''
		ELSE json_extract(entry, '$.time') END END
FROM l ORDER BY idx`), searchIndexBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return fmt.Errorf("sqlite: indexing %sleaves: %w", p, err)
			}
			if n < searchIndexBatch {
				break
			}
		}
	}
	return nil
}
