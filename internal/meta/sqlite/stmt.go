package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
)

// Statements prepared once.
//
// For the small statements of a registry request, parsing the SQL costs
// about as much CPU as running it: a manifest put parsed a dozen
// statements, an eighth of its CPU. So the statements of the hot paths
// (a manifest put, manifest and blob reads, blob links, upload sessions)
// are prepared once, when the Store opens: hotWrites on the write pool in
// s.wstmts and hotReads on the read pool in s.rstmts, statement caches
// (stmtCache, by query text) like the one TlogAppend fills on first use
// (s.stmts, see prepared). They must be prepared at open, not on first
// use: preparing on a pool takes one of its connections, and the write
// pool's only one belongs to the transaction while it runs. And they are
// not in s.stmts: prepared holds that cache's lock while it waits for the
// write connection, so a transaction holding the connection and taking
// that lock for a statement would deadlock with it
// (TestHotPathsTakeNotTheLazyCachesLock).
//
// Code runs them through prepTx (in a transaction) and prepDB (on the
// read pool), which have the methods of *sql.Tx it uses and take each
// statement from the cache. A query that is not in it is parsed as before
// and counted (stmtMisses); TestHotPathsPrepared checks the hot paths
// count none.

// The statements of the hot write paths, prepared on the write pool.
const (
	qEnsureRepo  = `INSERT OR IGNORE INTO repositories(name) VALUES (?)`
	qLinkBlob    = `INSERT OR IGNORE INTO blob_links(repo, digest, size) VALUES (?, ?, ?)`
	qPutManifest = `INSERT OR IGNORE INTO manifests
			(repo, digest, media_type, size, artifact_type, subject, annotations, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qInsertRef = `INSERT INTO manifest_refs(repo, manifest, kind, position, ref)
		VALUES (?, ?, ?, ?, ?)`
	qBuildMeta = `INSERT OR IGNORE INTO build_meta
		(repo, digest, revision, source, version, created, build_number, pipeline_run)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qMoveTag = `INSERT INTO tags(repo, tag, digest, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated = excluded.updated`
	qTagHistory   = `INSERT INTO tag_history(repo, tag, digest, at) VALUES (?, ?, ?, ?)`
	qLinkExists   = `SELECT EXISTS (SELECT 1 FROM blob_links WHERE repo = ? AND digest = ?)`
	qChildExists  = `SELECT EXISTS (SELECT 1 FROM manifests WHERE repo = ? AND digest = ?)`
	qCreateUpload = `INSERT INTO uploads(id, repo, acked, created, updated) VALUES (?, ?, ?, ?, ?)`
	qUpdateUpload = `UPDATE uploads SET acked = ?, updated = ? WHERE id = ?`
	qDeleteUpload = `DELETE FROM uploads WHERE id = ?`
	qDeleteTag    = `DELETE FROM tags WHERE repo = ? AND tag = ?`
	qUnlinkBlob   = `DELETE FROM blob_links WHERE repo = ? AND digest = ?`
	qPruneRepo    = `DELETE FROM repositories WHERE name = ?1
		AND NOT EXISTS (SELECT 1 FROM blob_links WHERE repo = ?1)
		AND NOT EXISTS (SELECT 1 FROM manifests WHERE repo = ?1)`
)

// The statements of the hot read paths, prepared on the read pool (and
// qTag on the write pool too: moveTag reads the tag it moves).
const (
	qTag      = `SELECT digest FROM tags WHERE repo = ? AND tag = ?`
	qBlobSize = `SELECT size FROM blob_links WHERE repo = ? AND digest = ?`
	qManifest = `SELECT media_type, size, artifact_type, subject, annotations, created
			FROM manifests WHERE repo = ? AND digest = ?`
	qManifestRefs = `SELECT kind, ref FROM manifest_refs
			WHERE repo = ? AND manifest = ? ORDER BY kind, position`
	qUpload = `SELECT id, repo, acked, created, updated FROM uploads WHERE id = ?`
)

var (
	hotWrites = []string{
		qEnsureRepo, qLinkBlob, qPutManifest, qInsertRef, qBuildMeta, qTag, qMoveTag,
		qTagHistory, qLinkExists, qChildExists, qCreateUpload, qUpdateUpload,
		qDeleteUpload, qDeleteTag, qUnlinkBlob, qPruneRepo,
	}
	hotReads = []string{qTag, qBlobSize, qManifest, qManifestRefs, qUpload}
)

// prepareHot prepares hotWrites and hotReads (see "Statements prepared
// once" above). It runs in Open, before anything else uses the pools.
func (s *Store) prepareHot(ctx context.Context) error {
	for _, p := range []struct {
		db *sql.DB
		c  *stmtCache
		qs []string
	}{{s.w, s.wstmts, hotWrites}, {s.r, s.rstmts, hotReads}} {
		for _, q := range p.qs {
			st, err := p.db.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("sqlite: prepare: %w", err)
			}
			p.c.mu.Lock()
			if p.c.m == nil {
				p.c.m = map[string]*sql.Stmt{}
			}
			p.c.m[q] = st
			p.c.mu.Unlock()
		}
	}
	return nil
}

// get returns the statement prepared for query, or nil.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

// prepTx is a transaction whose statements come from a statement cache
// when they are there (see "Statements prepared once" above).
type prepTx struct {
	tx     *sql.Tx
	c      *stmtCache
	misses *atomic.Uint64
}

// wtx returns tx, a write transaction, with the write pool's statements.
func (s *Store) wtx(tx *sql.Tx) prepTx { return prepTx{tx, s.wstmts, s.stmtMisses} }

// rtx returns tx, a read transaction, with the read pool's statements.
func (s *Store) rtx(tx *sql.Tx) prepTx { return prepTx{tx, s.rstmts, s.stmtMisses} }

// stmt returns query's cached statement as a statement of t, or nil.
func (t prepTx) stmt(ctx context.Context, query string) *sql.Stmt {
	st := t.c.get(query)
	if st == nil {
		t.misses.Add(1)
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

func (t prepTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t prepTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t prepTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// PrepareContext returns query as a statement of t, to run several times.
func (t prepTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st, nil
	}
	return t.tx.PrepareContext(ctx, query)
}

// prepDB is the read pool with its cached statements (see "Statements
// prepared once" above), for a query outside a transaction.
type prepDB struct {
	db     *sql.DB
	c      *stmtCache
	misses *atomic.Uint64
}

// reader returns the read pool with its cached statements.
func (s *Store) reader() prepDB { return prepDB{s.r, s.rstmts, s.stmtMisses} }

func (p prepDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.c.get(query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	p.misses.Add(1)
	return p.db.QueryContext(ctx, query, args...)
}

func (p prepDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.c.get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	p.misses.Add(1)
	return p.db.QueryRowContext(ctx, query, args...)
}
