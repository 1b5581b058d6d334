// Package sqlite implements meta.Store on a single SQLite database file,
// using the pure-Go driver modernc.org/sqlite.
//
// The database runs in WAL mode with synchronous=FULL (NORMAL for a write
// under meta.FlushLater) and foreign keys on.
// Writes go through one connection and start with BEGIN IMMEDIATE, so they
// are serialised without SQLITE_BUSY lock-upgrade failures; reads go through
// a separate pool of read-only connections and never queue behind a write.
//
// A TagCheck passed to PutManifest runs while the write connection is held:
// it may read from the store but must not write to it, or it deadlocks.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/opencontainers/go-digest"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeout is how long a connection waits for a lock held by another
// connection (another process, or a checkpoint) before failing.
const busyTimeout = 10 * time.Second

// Store is a meta.Store backed by SQLite. It is safe for concurrent use.
type Store struct {
	w *sql.DB // one read-write connection; transactions BEGIN IMMEDIATE
	r *sql.DB // read-only connections
	// tlogPrefix, when set, names the tables of the tlog.Store methods
	// in place of "tlog_" (SigningLog).
	tlogPrefix string
	// commits counts the committed write transactions (see Commits);
	// pointers, so that SigningLog's Store shares them.
	commits *commitCounts
	// stmts are the statements prepared once on w on first use (see
	// prepared); wstmts and rstmts those prepared on w and r at Open
	// ("Statements prepared once" in stmt.go), and stmtMisses counts the
	// queries the hot paths did not find there.
	stmts, wstmts, rstmts *stmtCache
	stmtMisses            *atomic.Uint64
	// search fills the logs' search tables behind their appends
	// (startSearchIndexer); shared with SigningLog's Store.
	search *meta.Catchup
}

type commitCounts struct {
	flushed, deferred atomic.Uint64
	// writing counts the writes waiting for or holding the one write
	// connection (see write).
	writing atomic.Int64
}

// Commits returns how many write transactions s (and the Stores sharing
// its database handle, such as SigningLog's) committed since Open: with
// an fsync of the WAL of their own (flushed) and under meta.FlushLater
// (deferred). It is what a change costs in flushes, for tests and
// measurements.
func (s *Store) Commits() (flushed, deferred uint64) {
	return s.commits.flushed.Load(), s.commits.deferred.Load()
}

var _ meta.Store = (*Store)(nil)

// Open opens the SQLite database at path, creating the file if it does not
// exist, and brings its schema up to date. The file and its -wal and -shm
// files are readable by their owner only (PrivateFile).
func Open(path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := PrivateFile(abs); err != nil {
		return nil, err
	}
	base := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	busy := fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())

	wq := url.Values{}
	wq.Set("_txlock", "immediate")
	wq.Add("_pragma", busy)
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous(FULL)")
	wq.Add("_pragma", "foreign_keys(1)")
	w, err := sql.Open("sqlite", base+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	ctx := context.Background()
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}

	// The read pool opens the file read-only. It is opened after the
	// writer has created the file and switched it to WAL, which read-only
	// connections cannot do themselves.
	rq := url.Values{}
	rq.Set("mode", "ro")
	rq.Add("_pragma", busy)
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", base+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s read-only: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s read-only: %w", path, err)
	}
	s := &Store{w: w, r: r, commits: new(commitCounts), stmts: new(stmtCache), wstmts: new(stmtCache), rstmts: new(stmtCache), stmtMisses: new(atomic.Uint64)}
	if err := s.prepareHot(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.search = startSearchIndexer(s)
	return s, nil
}

// Close stops the search indexer and closes both connection pools.
func (s *Store) Close() error {
	s.search.Close()
	return errors.Join(s.stmts.close(), s.wstmts.close(), s.rstmts.close(), s.r.Close(), s.w.Close())
}

// Ping checks that both the read and the write connections work.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping reader: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	return nil
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) and commits it if
// fn returns nil. fn's error is returned as is. The commit fsyncs the WAL
// (synchronous=FULL), unless ctx comes from meta.FlushLater: then it runs
// with synchronous=NORMAL (the WAL is written, not fsynced) and the next
// FULL commit's fsync of the WAL makes it durable. When ctx carries an
// append to the audit log s stores (tlog.WithPending), the append runs in
// the transaction after fn, and the commit is durable (see meta, "Audit
// entries in the change's transaction").
//
// With a change's pending audit entries (tlog.WithPending) it stores them
// in its transaction and commits durably (writeWithEntries) when it is
// the only write waiting for the write connection. When other writes are
// waiting too (concurrent changes, or the log's writer committing a
// batch), it commits as under meta.FlushLater and leaves the entries to
// the log's writer, whose group commit then flushes them with those of
// the other changes: under concurrency that costs fewer flushes than one
// durable commit per change. Pending.Seal tells the caller which it was
// (internal/meta, "Audit entries in the change's transaction";
// PostgreSQL does the same when the log's head row is busy).
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	alone := s.commits.writing.Add(1) == 1
	defer s.commits.writing.Add(-1)
	if p := tlog.PendingIn(ctx); p.For(s) && alone {
		return s.writeWithEntries(ctx, p, fn)
	} else if p.For(s) {
		ctx = meta.FlushLater(ctx)
	}
	if meta.FlushesLater(ctx) {
		if err := s.writeFlushLater(ctx, fn); err != nil {
			return err
		}
		s.commits.deferred.Add(1)
		return nil
	}
	if err := writeTx(ctx, s.w, fn); err != nil {
		return err
	}
	s.commits.flushed.Add(1)
	return nil
}

// beginner is what writeTx begins its transaction on: the write pool, or
// its one connection held by writeFlushLater.
type beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

func writeTx(ctx context.Context, db beginner, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// writeFlushLater runs a write with synchronous=NORMAL on the write
// connection, which it holds throughout and leaves at FULL (the level
// set at open, which every other write relies on). The level cannot
// change inside a transaction, hence around it. If FULL cannot be
// restored, the connection is discarded: the pool opens a new one, at
// FULL.
func (s *Store) writeFlushLater(ctx context.Context, fn func(tx *sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: write connection: %w", err)
	}
	defer conn.Close()
	// The restoring statements run even when ctx is cancelled.
	bg := context.WithoutCancel(ctx)
	if _, err := conn.ExecContext(bg, `PRAGMA synchronous = NORMAL`); err != nil {
		discard(conn)
		return fmt.Errorf("sqlite: synchronous=NORMAL: %w", err)
	}
	defer func() {
		if _, err := conn.ExecContext(bg, `PRAGMA synchronous = FULL`); err != nil {
			discard(conn)
		}
	}()
	return writeTx(ctx, conn, fn)
}

// discard makes the pool close conn instead of reusing it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// read runs fn in a read transaction on the read pool, so every query fn
// makes sees the same snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// ensureRepo creates the repositories row for repo if it is missing.
func ensureRepo(ctx context.Context, tx prepTx, repo string) error {
	_, err := tx.ExecContext(ctx, qEnsureRepo, repo)
	if err != nil {
		return fmt.Errorf("sqlite: create repository %s: %w", repo, err)
	}
	return nil
}

// pruneRepo deletes the repositories row for repo if the repository no
// longer has a manifest or a linked blob.
func pruneRepo(ctx context.Context, tx prepTx, repo string) error {
	_, err := tx.ExecContext(ctx, qPruneRepo, repo)
	if err != nil {
		return fmt.Errorf("sqlite: prune repository %s: %w", repo, err)
	}
	return nil
}

// LinkBlob records that blob d of size bytes belongs to repo. Linking a
// blob that is already linked keeps the existing record.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.write(ctx, func(sqltx *sql.Tx) error {
		tx := s.wtx(sqltx)
		if err := ensureRepo(ctx, tx, repo); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, qLinkBlob, repo, d.String(), size)
		if err != nil {
			return fmt.Errorf("sqlite: link blob %s into %s: %w", d, repo, err)
		}
		return nil
	})
}

// BlobSize returns the size of blob d if it is linked into repo.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.reader().QueryRowContext(ctx, qBlobSize, repo, d.String()).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite: blob %s in %s: %w", d, repo, meta.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: blob %s in %s: %w", d, repo, err)
	}
	return size, nil
}

// UnlinkBlob removes the link of blob d from repo, and the repository with
// it if that was the last thing it held.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return s.write(ctx, func(sqltx *sql.Tx) error {
		tx := s.wtx(sqltx)
		res, err := tx.ExecContext(ctx, qUnlinkBlob, repo, d.String())
		if err != nil {
			return fmt.Errorf("sqlite: unlink blob %s from %s: %w", d, repo, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: unlink blob %s from %s: %w", d, repo, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: blob %s in %s: %w", d, repo, meta.ErrNotFound)
		}
		return pruneRepo(ctx, tx, repo)
	})
}

// BlobLinked reports whether any repository links blob d or any manifest
// record is, or references, d.
func (s *Store) BlobLinked(ctx context.Context, d digest.Digest) (bool, error) {
	var linked bool
	err := s.r.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM blob_links WHERE digest = ?1) OR
		EXISTS (SELECT 1 FROM manifest_refs WHERE ref = ?1) OR
		EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)`, d.String()).Scan(&linked)
	if err != nil {
		return false, fmt.Errorf("sqlite: blob %s linked: %w", d, err)
	}
	return linked, nil
}

// PutManifest records m, its references and tags in one write transaction.
// It returns check's error unchanged if check vetoes a tag.
func (s *Store) PutManifest(ctx context.Context, m meta.Manifest, tags []string, check meta.TagCheck) error {
	return s.putManifest(ctx, m, tags, check, nil)
}

// putManifest is PutManifest; verify, if not nil, runs first inside the
// transaction and aborts it with its error.
func (s *Store) putManifest(ctx context.Context, m meta.Manifest, tags []string, check meta.TagCheck, verify func(prepTx) error) error {
	annotations, err := encodeAnnotations(m.Annotations)
	if err != nil {
		return fmt.Errorf("sqlite: manifest %s: %w", m.Digest, err)
	}
	created := m.Created
	if created.IsZero() {
		created = time.Now()
	}
	createdUS, err := meta.Micros(created)
	if err != nil {
		return fmt.Errorf("sqlite: manifest %s: created: %w", m.Digest, err)
	}
	now := time.Now().UnixMicro()
	return s.write(ctx, func(sqltx *sql.Tx) error {
		tx := s.wtx(sqltx)
		if verify != nil {
			if err := verify(tx); err != nil {
				return err
			}
		}
		if err := ensureRepo(ctx, tx, m.Repo); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, qPutManifest,
			m.Repo, m.Digest.String(), m.MediaType, m.Size, m.ArtifactType,
			nullString(m.Subject.String()), annotations, createdUS)
		if err != nil {
			return fmt.Errorf("sqlite: put manifest %s in %s: %w", m.Digest, m.Repo, err)
		}
		inserted, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlite: put manifest %s in %s: %w", m.Digest, m.Repo, err)
		}
		if inserted > 0 {
			if err := insertRefs(ctx, tx, m); err != nil {
				return err
			}
			if err := insertBuildMeta(ctx, tx, m); err != nil {
				return err
			}
		}
		for _, tag := range tags {
			if err := moveTag(ctx, tx, m.Repo, tag, m.Digest, check, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertRefs records the blobs and child manifests m references, keeping
// their order.
func insertRefs(ctx context.Context, tx prepTx, m meta.Manifest) error {
	if len(m.Blobs) == 0 && len(m.Manifests) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, qInsertRef)
	if err != nil {
		return fmt.Errorf("sqlite: put manifest %s refs: %w", m.Digest, err)
	}
	defer stmt.Close()
	for _, refs := range []struct {
		kind string
		ds   []digest.Digest
	}{{"blob", m.Blobs}, {"manifest", m.Manifests}} {
		for i, d := range refs.ds {
			if _, err := stmt.ExecContext(ctx, m.Repo, m.Digest.String(), refs.kind, i, d.String()); err != nil {
				return fmt.Errorf("sqlite: put manifest %s refs: %w", m.Digest, err)
			}
		}
	}
	return nil
}

// moveTag points tag at next after check approves, within tx.
func moveTag(ctx context.Context, tx prepTx, repo, tag string, next digest.Digest, check meta.TagCheck, now int64) error {
	var cur string
	err := tx.QueryRowContext(ctx, qTag, repo, tag).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: read tag %s in %s: %w", tag, repo, err)
	}
	if check != nil {
		if err := check(tag, digest.Digest(cur), next); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, qMoveTag, repo, tag, next.String(), now)
	if err != nil {
		return fmt.Errorf("sqlite: move tag %s in %s: %w", tag, repo, err)
	}
	if cur != next.String() {
		return recordTagMove(ctx, tx, repo, tag, next, now)
	}
	return nil
}

// GetManifest returns the record of manifest d in repo.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (meta.Manifest, error) {
	m := meta.Manifest{Repo: repo, Digest: d}
	err := s.read(ctx, func(sqltx *sql.Tx) error {
		tx := s.rtx(sqltx)
		var (
			subject, annotations sql.NullString
			created              int64
		)
		err := tx.QueryRowContext(ctx, qManifest, repo, d.String()).
			Scan(&m.MediaType, &m.Size, &m.ArtifactType, &subject, &annotations, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: manifest %s in %s: %w", d, repo, meta.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: manifest %s in %s: %w", d, repo, err)
		}
		m.Subject = digest.Digest(subject.String)
		m.Created = meta.FromMicros(created)
		if m.Annotations, err = decodeAnnotations(annotations); err != nil {
			return fmt.Errorf("sqlite: manifest %s in %s: %w", d, repo, err)
		}

		rows, err := tx.QueryContext(ctx, qManifestRefs, repo, d.String())
		if err != nil {
			return fmt.Errorf("sqlite: manifest %s refs: %w", d, err)
		}
		defer rows.Close()
		for rows.Next() {
			var kind, ref string
			if err := rows.Scan(&kind, &ref); err != nil {
				return fmt.Errorf("sqlite: manifest %s refs: %w", d, err)
			}
			if kind == "blob" {
				m.Blobs = append(m.Blobs, digest.Digest(ref))
			} else {
				m.Manifests = append(m.Manifests, digest.Digest(ref))
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: manifest %s refs: %w", d, err)
		}
		return nil
	})
	if err != nil {
		return meta.Manifest{}, err
	}
	return m, nil
}

// DeleteManifest removes manifest d from repo with its references and the
// tags pointing at it, which it returns in lexical order.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	var removed []string
	err := s.write(ctx, func(sqltx *sql.Tx) error {
		tx := s.wtx(sqltx)
		var err error
		removed, err = queryStrings(ctx, tx, `SELECT tag FROM tags WHERE repo = ? AND digest = ? ORDER BY tag`,
			repo, d.String())
		if err != nil {
			return fmt.Errorf("sqlite: tags of manifest %s in %s: %w", d, repo, err)
		}
		// manifest_refs and tags rows go with the manifest (ON DELETE
		// CASCADE); delete the tags explicitly anyway so the result does not
		// depend on the foreign_keys pragma.
		if _, err := tx.ExecContext(ctx, `DELETE FROM tags WHERE repo = ? AND digest = ?`, repo, d.String()); err != nil {
			return fmt.Errorf("sqlite: delete tags of manifest %s in %s: %w", d, repo, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM manifest_refs WHERE repo = ? AND manifest = ?`, repo, d.String()); err != nil {
			return fmt.Errorf("sqlite: delete refs of manifest %s in %s: %w", d, repo, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM manifests WHERE repo = ? AND digest = ?`, repo, d.String())
		if err != nil {
			return fmt.Errorf("sqlite: delete manifest %s in %s: %w", d, repo, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: delete manifest %s in %s: %w", d, repo, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: manifest %s in %s: %w", d, repo, meta.ErrNotFound)
		}
		return pruneRepo(ctx, tx, repo)
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// ResolveTag returns the digest tag points at in repo.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d string
	err := s.reader().QueryRowContext(ctx, qTag, repo, tag).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlite: tag %s in %s: %w", tag, repo, meta.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: tag %s in %s: %w", tag, repo, err)
	}
	return digest.Digest(d), nil
}

// DeleteTag removes tag from repo, leaving the manifest in place.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	return s.write(ctx, func(sqltx *sql.Tx) error {
		res, err := s.wtx(sqltx).ExecContext(ctx, qDeleteTag, repo, tag)
		if err != nil {
			return fmt.Errorf("sqlite: delete tag %s in %s: %w", tag, repo, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: delete tag %s in %s: %w", tag, repo, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: tag %s in %s: %w", tag, repo, meta.ErrNotFound)
		}
		return nil
	})
}

// Tags lists the tags of repo in byte order after last, at most n.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	var tags []string
	err := s.read(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM repositories WHERE name = ?)`, repo).
			Scan(&exists); err != nil {
			return fmt.Errorf("sqlite: repository %s: %w", repo, err)
		}
		if !exists {
			return fmt.Errorf("sqlite: repository %s: %w", repo, meta.ErrNotFound)
		}
		if n <= 0 {
			tags = []string{}
			return nil
		}
		var err error
		tags, err = queryStrings(ctx, tx, `SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?`,
			repo, last, n)
		if err != nil {
			return fmt.Errorf("sqlite: tags of %s: %w", repo, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tags, nil
}

// Repositories lists repository names in byte order after last, at most n.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	if n <= 0 {
		return []string{}, nil
	}
	repos, err := queryStrings(ctx, s.r, `SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?`, last, n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: repositories: %w", err)
	}
	return repos, nil
}

// Referrers lists the manifests in repo whose subject is d, only those of
// artifactType if it is not empty, ordered by digest, after last, at most n.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, last digest.Digest, n int) ([]meta.Descriptor, error) {
	if n <= 0 {
		return []meta.Descriptor{}, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT media_type, digest, size, artifact_type, annotations
		FROM manifests WHERE repo = ?1 AND subject = ?2 AND (?3 = '' OR artifact_type = ?3) AND digest > ?4
		ORDER BY digest LIMIT ?5`, repo, d.String(), artifactType, last.String(), n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: referrers of %s in %s: %w", d, repo, err)
	}
	defer rows.Close()
	descs := []meta.Descriptor{}
	for rows.Next() {
		var (
			desc        meta.Descriptor
			dg          string
			annotations sql.NullString
		)
		if err := rows.Scan(&desc.MediaType, &dg, &desc.Size, &desc.ArtifactType, &annotations); err != nil {
			return nil, fmt.Errorf("sqlite: referrers of %s in %s: %w", d, repo, err)
		}
		desc.Digest = digest.Digest(dg)
		if desc.Annotations, err = decodeAnnotations(annotations); err != nil {
			return nil, fmt.Errorf("sqlite: referrer %s in %s: %w", dg, repo, err)
		}
		descs = append(descs, desc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: referrers of %s in %s: %w", d, repo, err)
	}
	return descs, nil
}

// CreateUpload records a new upload session. A zero Created or Updated is
// set to the current time. It fails if an upload with u.ID exists.
func (s *Store) CreateUpload(ctx context.Context, u meta.Upload) error {
	now := time.Now()
	if u.Created.IsZero() {
		u.Created = now
	}
	if u.Updated.IsZero() {
		u.Updated = u.Created
	}
	created, err := meta.Micros(u.Created)
	if err != nil {
		return fmt.Errorf("sqlite: create upload %s: %w", u.ID, err)
	}
	updated, err := meta.Micros(u.Updated)
	if err != nil {
		return fmt.Errorf("sqlite: create upload %s: %w", u.ID, err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := s.wtx(tx).ExecContext(ctx, qCreateUpload,
			u.ID, u.Repo, u.Offset, created, updated)
		if err != nil {
			return fmt.Errorf("sqlite: create upload %s: %w", u.ID, err)
		}
		return nil
	})
}

// GetUpload returns the upload session id.
func (s *Store) GetUpload(ctx context.Context, id string) (meta.Upload, error) {
	u, err := scanUpload(s.reader().QueryRowContext(ctx, qUpload, id))
	if errors.Is(err, sql.ErrNoRows) {
		return meta.Upload{}, fmt.Errorf("sqlite: upload %s: %w", id, meta.ErrNotFound)
	}
	if err != nil {
		return meta.Upload{}, fmt.Errorf("sqlite: upload %s: %w", id, err)
	}
	return u, nil
}

// UpdateUpload records offset as the acknowledged offset of upload id and
// sets its Updated time to now.
func (s *Store) UpdateUpload(ctx context.Context, id string, offset int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := s.wtx(tx).ExecContext(ctx, qUpdateUpload,
			offset, time.Now().UnixMicro(), id)
		if err != nil {
			return fmt.Errorf("sqlite: update upload %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: update upload %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: upload %s: %w", id, meta.ErrNotFound)
		}
		return nil
	})
}

// DeleteUpload removes upload session id.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := s.wtx(tx).ExecContext(ctx, qDeleteUpload, id)
		if err != nil {
			return fmt.Errorf("sqlite: delete upload %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: delete upload %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: upload %s: %w", id, meta.ErrNotFound)
		}
		return nil
	})
}

// StaleUploads lists the upload sessions last updated before before,
// oldest first.
func (s *Store) StaleUploads(ctx context.Context, before time.Time) ([]meta.Upload, error) {
	b, err := meta.Micros(before)
	if err != nil {
		return nil, fmt.Errorf("sqlite: stale uploads: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, repo, acked, created, updated FROM uploads
		WHERE updated < ? ORDER BY updated, id`, b)
	if err != nil {
		return nil, fmt.Errorf("sqlite: stale uploads: %w", err)
	}
	defer rows.Close()
	ups := []meta.Upload{}
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: stale uploads: %w", err)
		}
		ups = append(ups, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: stale uploads: %w", err)
	}
	return ups, nil
}

// scanUpload reads an uploads row selected as id, repo, acked, created,
// updated.
func scanUpload(row interface{ Scan(...any) error }) (meta.Upload, error) {
	var (
		u                meta.Upload
		created, updated int64
	)
	if err := row.Scan(&u.ID, &u.Repo, &u.Offset, &created, &updated); err != nil {
		return meta.Upload{}, err
	}
	u.Created = meta.FromMicros(created)
	u.Updated = meta.FromMicros(updated)
	return u, nil
}

// queryer is what *sql.DB and *sql.Tx have in common.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryStrings runs a query selecting one text column and returns its
// values, never nil.
func queryStrings(ctx context.Context, q queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// nullString maps "" to NULL.
func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// encodeAnnotations encodes annotations as a JSON object, or NULL when
// there are none.
func encodeAnnotations(a map[string]string) (sql.NullString, error) {
	if len(a) == 0 {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("encode annotations: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeAnnotations is the inverse of encodeAnnotations: NULL is nil.
func decodeAnnotations(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var a map[string]string
	if err := json.Unmarshal([]byte(s.String), &a); err != nil {
		return nil, fmt.Errorf("decode annotations: %w", err)
	}
	if len(a) == 0 {
		return nil, nil
	}
	return a, nil
}
