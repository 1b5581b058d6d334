package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/custody-dev/custody/internal/tlog"
)

// SchemaVersion is the schema version this build migrates to.
var SchemaVersion = len(migrations)

// SynchronousCommit returns synchronous_commit as a write transaction
// under ctx sees it.
func (s *Store) SynchronousCommit(ctx context.Context) (string, error) {
	var v string
	err := s.write(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&v)
	})
	return v, err
}

// StopSearchIndexer stops s's search indexer, so that a test runs its
// catch-up (IndexSearch) itself.
func (s *Store) StopSearchIndexer() { s.search.Close() }

// IndexSearch is the search indexer's catch-up.
func (s *Store) IndexSearch(ctx context.Context) error { return s.indexSearch(ctx) }

// SearchQuery is TlogSearch's statement.
var SearchQuery = searchQuery

// InsertAt is a change's in-transaction append (logTx.TlogInsertAt) in a
// transaction of its own, committed whatever it returns.
func (s *Store) InsertAt(ctx context.Context, at uint64, leaves []tlog.Leaf, nodes []tlog.Node) (size uint64, err error) {
	if txErr := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		size, err = (&logTx{s: s, tx: tx}).TlogInsertAt(ctx, at, leaves, nodes)
		return nil
	}); txErr != nil {
		return 0, txErr
	}
	return size, err
}
