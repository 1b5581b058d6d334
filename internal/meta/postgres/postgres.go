// Package postgres implements meta.Store on PostgreSQL, using
// github.com/jackc/pgx/v5 and its connection pool, so that several
// registry replicas can share one metadata store.
//
// Open applies the versioned schema migrations under an advisory lock, so
// replicas starting at once do not race. The tables live in the first
// schema of the connection's search_path, which a URL can set with the
// search_path parameter.
//
// Write transactions run at READ COMMITTED and lock what they depend on:
// PutManifest claims each new tag by inserting its row (a concurrent push
// of the same new tag waits on that row) and reads an existing tag with
// SELECT ... FOR UPDATE before its TagCheck runs. Transactions that fail
// with a serialization failure or a deadlock are retried a few times, so a
// TagCheck may be called again for the same tag; it must not have effects
// beyond its verdict.
//
// Beyond meta.Store, Store implements what the rest of the server needs
// from its metadata backend, as the SQLite backend does: retention.Store
// and policy.Store (retention.go), builds.Index fed by PutManifest and tag
// moves (builds.go), gc.Store with PutManifestVerified (gc.go),
// scrub.Store (scrub.go), tlog.Store (tlog.go) and account.Store
// (accounts.go), plus TryLock for electing the replica that runs periodic
// jobs (leader.go). Each file
// says how it stays correct with several replicas writing at once; the
// shared suites in internal/meta/metatest check it with two Stores.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/custody-dev/custody/internal/deadline"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"
)

// maxAttempts is how many times a write transaction is tried when it fails
// with a serialization failure or a deadlock.
const maxAttempts = 5

// Store is a meta.Store backed by PostgreSQL. It is safe for concurrent
// use, also by several processes sharing the database.
type Store struct {
	pool *pgxpool.Pool
	// conn configures the dedicated connections TryLock opens.
	conn *pgx.ConnConfig
	// tlogPrefix, when set, names the tables of the tlog.Store methods
	// in place of "tlog_" (SigningLog).
	tlogPrefix string
	// search fills the logs' search tables (tlogsearch.go).
	search *meta.Catchup
}

var _ meta.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx accepts) and brings its schema up to date.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenWith(ctx, url, Options{})
}

// Options configure OpenWith.
type Options struct {
	// Timeout, when positive, bounds how long a connection to the server
	// may go without progress: connecting, and then every read and write
	// (so every statement waits at most this long for the server's
	// answer). A frozen server then fails calls within the timeout; the
	// connection is discarded and the pool dials a new one.
	Timeout time.Duration
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if t := opts.Timeout; t > 0 {
		// The dedicated connections of TryLock copy this configuration.
		cfg.ConnConfig.ConnectTimeout = t
		cfg.ConnConfig.DialFunc = deadline.Dialer{Timeout: t, KeepAlive: 5 * time.Minute}.DialContext
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	s := &Store{pool: pool, conn: cfg.ConnConfig.Copy()}
	s.search = startSearchIndexer(s)
	return s, nil
}

// Close stops the search indexer and closes the connection pool.
func (s *Store) Close() error {
	s.search.Close()
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// retryable reports whether err is a serialization failure or a deadlock,
// after which the whole transaction may be run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// write runs fn in a READ COMMITTED transaction and commits it if fn
// returns nil, retrying serialization failures and deadlocks. fn's error
// is returned as is. Under meta.FlushLater the transaction commits with
// synchronous_commit off: it does not wait for its WAL to be flushed,
// which the next synchronous commit (in any session) does. When ctx
// carries an append to the audit log s stores (tlog.WithPending), the
// append runs in the transaction after fn, and the commit is synchronous
// (see meta, "Audit entries in the change's transaction").
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) (err error) {
	var opts pgx.TxOptions
	if p := tlog.PendingIn(ctx); p.For(s) {
		// The append runs after fn, as late as possible: it holds the
		// log's head row locked until the COMMIT, which is synchronous.
		// If another transaction holds the row, the write commits without
		// the entries and without waiting for its flush: the caller
		// appends them with the log's group commit, which flushes it.
		var busy bool
		inner := fn
		fn = func(tx pgx.Tx) error {
			busy = false
			if err := inner(tx); err != nil {
				return err
			}
			err := p.Append(ctx, &logTx{s: s, tx: tx})
			if errors.Is(err, tlog.ErrAppendBusy) {
				busy = true
				_, err = tx.Exec(ctx, `SET LOCAL synchronous_commit = off`)
			}
			return err
		}
		defer func() {
			if err == nil && !busy {
				p.Committed()
				s.search.Kick()
			}
		}()
	} else if meta.FlushesLater(ctx) {
		// In the BEGIN's own round trip (one simple-protocol query).
		opts.BeginQuery = `BEGIN; SET LOCAL synchronous_commit = off`
	}
	for attempt := 1; ; attempt++ {
		err = pgx.BeginTxFunc(ctx, s.pool, opts, fn)
		if err == nil || !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		// A short, growing pause lets the transaction that won go first.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * time.Millisecond):
		}
	}
}

// read runs fn in a read-only REPEATABLE READ transaction, so every query
// fn makes sees the same snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// ensureRepo creates the repositories row for repo if it is missing and
// takes a KEY SHARE lock on it, so that a concurrent pruneRepo cannot
// delete it before this transaction's rows referencing it commit.
func ensureRepo(ctx context.Context, tx pgx.Tx, repo string) error {
	for range maxAttempts {
		if _, err := tx.Exec(ctx, `INSERT INTO repositories(name) VALUES ($1) ON CONFLICT DO NOTHING`, repo); err != nil {
			return fmt.Errorf("postgres: create repository %s: %w", repo, err)
		}
		rows, err := tx.Query(ctx, `SELECT 1 FROM repositories WHERE name = $1 FOR KEY SHARE`, repo)
		if err != nil {
			return fmt.Errorf("postgres: lock repository %s: %w", repo, err)
		}
		locked, err := countRows(rows)
		if err != nil {
			return fmt.Errorf("postgres: lock repository %s: %w", repo, err)
		}
		if locked > 0 {
			return nil
		}
		// A concurrent transaction removed the row between the two
		// statements: insert it again.
	}
	return fmt.Errorf("postgres: repository %s keeps disappearing", repo)
}

// pruneRepo deletes the repositories row for repo if the repository no
// longer has a manifest or a linked blob. It locks the row first, waiting
// for transactions that hold it (ensureRepo), and only then looks at what
// the repository holds, with a snapshot that includes their rows.
func pruneRepo(ctx context.Context, tx pgx.Tx, repo string) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM repositories WHERE name = $1 FOR UPDATE`, repo); err != nil {
		return fmt.Errorf("postgres: lock repository %s: %w", repo, err)
	}
	_, err := tx.Exec(ctx, `DELETE FROM repositories WHERE name = $1
		AND NOT EXISTS (SELECT 1 FROM blob_links WHERE repo = $1)
		AND NOT EXISTS (SELECT 1 FROM manifests WHERE repo = $1)`, repo)
	if err != nil {
		return fmt.Errorf("postgres: prune repository %s: %w", repo, err)
	}
	return nil
}

// LinkBlob records that blob d of size bytes belongs to repo. Linking a
// blob that is already linked keeps the existing record.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := ensureRepo(ctx, tx, repo); err != nil {
			return err
		}
		if err := lockDigests(ctx, tx, d); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO blob_links(repo, digest, size) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, repo, d.String(), size)
		if err != nil {
			return fmt.Errorf("postgres: link blob %s into %s: %w", d, repo, err)
		}
		return nil
	})
}

// BlobSize returns the size of blob d if it is linked into repo.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT size FROM blob_links WHERE repo = $1 AND digest = $2`,
		repo, d.String()).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("postgres: blob %s in %s: %w", d, repo, meta.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: blob %s in %s: %w", d, repo, err)
	}
	return size, nil
}

// UnlinkBlob removes the link of blob d from repo, and the repository with
// it if that was the last thing it held.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM blob_links WHERE repo = $1 AND digest = $2`, repo, d.String())
		if err != nil {
			return fmt.Errorf("postgres: unlink blob %s from %s: %w", d, repo, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: blob %s in %s: %w", d, repo, meta.ErrNotFound)
		}
		return pruneRepo(ctx, tx, repo)
	})
}

// BlobLinked reports whether any repository links blob d or any manifest
// record is, or references, d.
func (s *Store) BlobLinked(ctx context.Context, d digest.Digest) (bool, error) {
	var linked bool
	err := s.pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM blob_links WHERE digest = $1) OR
		EXISTS (SELECT 1 FROM manifest_refs WHERE ref = $1) OR
		EXISTS (SELECT 1 FROM manifests WHERE digest = $1)`, d.String()).Scan(&linked)
	if err != nil {
		return false, fmt.Errorf("postgres: blob %s linked: %w", d, err)
	}
	return linked, nil
}

// PutManifest records m, its references and tags in one transaction. It
// returns check's error unchanged if check vetoes a tag. Tags are moved in
// byte order (duplicates once), which keeps concurrent pushes of
// overlapping tag sets from deadlocking.
func (s *Store) PutManifest(ctx context.Context, m meta.Manifest, tags []string, check meta.TagCheck) error {
	return s.putManifest(ctx, m, tags, check, nil)
}

// putManifest is PutManifest; verify, if not nil, runs inside the
// transaction before anything is written and aborts it with its error.
func (s *Store) putManifest(ctx context.Context, m meta.Manifest, tags []string, check meta.TagCheck, verify func(pgx.Tx) error) error {
	annotations, err := encodeAnnotations(m.Annotations)
	if err != nil {
		return fmt.Errorf("postgres: manifest %s: %w", m.Digest, err)
	}
	created := m.Created
	if created.IsZero() {
		created = time.Now()
	}
	createdUS, err := meta.Micros(created)
	if err != nil {
		return fmt.Errorf("postgres: manifest %s: created: %w", m.Digest, err)
	}
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := ensureRepo(ctx, tx, m.Repo); err != nil {
			return err
		}
		if err := lockDigests(ctx, tx, manifestDigests(m)...); err != nil {
			return err
		}
		if verify != nil {
			if err := verify(tx); err != nil {
				return err
			}
		}
		res, err := tx.Exec(ctx, `INSERT INTO manifests
			(repo, digest, media_type, size, artifact_type, subject, annotations, created)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			m.Repo, m.Digest.String(), m.MediaType, m.Size, m.ArtifactType,
			nullString(m.Subject.String()), annotations, createdUS)
		if err != nil {
			return fmt.Errorf("postgres: put manifest %s in %s: %w", m.Digest, m.Repo, err)
		}
		if res.RowsAffected() > 0 {
			if err := insertRefs(ctx, tx, m); err != nil {
				return err
			}
			if err := insertBuildMeta(ctx, tx, m); err != nil {
				return err
			}
		}
		now := time.Now().UnixMicro()
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
func insertRefs(ctx context.Context, tx pgx.Tx, m meta.Manifest) error {
	var rows [][]any
	for _, refs := range []struct {
		kind string
		ds   []digest.Digest
	}{{"blob", m.Blobs}, {"manifest", m.Manifests}} {
		for i, d := range refs.ds {
			rows = append(rows, []any{m.Repo, m.Digest.String(), refs.kind, int32(i), d.String()})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"manifest_refs"},
		[]string{"repo", "manifest", "kind", "position", "ref"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("postgres: put manifest %s refs: %w", m.Digest, err)
	}
	return nil
}

// moveTag points tag at next after check approves, within tx.
//
// A new tag is claimed by inserting its row: a concurrent transaction
// claiming the same tag waits on that row until this one ends, then finds
// the tag existing (or, if this one rolled back, claims it itself). An
// existing tag is locked with SELECT ... FOR UPDATE, so check sees the
// value the tag has until this transaction ends.
func moveTag(ctx context.Context, tx pgx.Tx, repo, tag string, next digest.Digest, check meta.TagCheck, now int64) error {
	for range maxAttempts {
		res, err := tx.Exec(ctx, `INSERT INTO tags(repo, tag, digest, updated) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, repo, tag, next.String(), now)
		if err != nil {
			return fmt.Errorf("postgres: create tag %s in %s: %w", tag, repo, err)
		}
		if res.RowsAffected() > 0 {
			if check != nil {
				if err := check(tag, "", next); err != nil {
					return err
				}
			}
			return recordTagMove(ctx, tx, repo, tag, next, now)
		}

		var cur string
		err = tx.QueryRow(ctx, `SELECT digest FROM tags WHERE repo = $1 AND tag = $2 FOR UPDATE`, repo, tag).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // deleted since the insert conflicted: claim it again
		}
		if err != nil {
			return fmt.Errorf("postgres: read tag %s in %s: %w", tag, repo, err)
		}
		if check != nil {
			if err := check(tag, digest.Digest(cur), next); err != nil {
				return err
			}
		}
		if cur == next.String() {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE tags SET digest = $3, updated = $4 WHERE repo = $1 AND tag = $2`,
			repo, tag, next.String(), now); err != nil {
			return fmt.Errorf("postgres: move tag %s in %s: %w", tag, repo, err)
		}
		return recordTagMove(ctx, tx, repo, tag, next, now)
	}
	return fmt.Errorf("postgres: tag %s in %s keeps disappearing", tag, repo)
}

// GetManifest returns the record of manifest d in repo.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (meta.Manifest, error) {
	m := meta.Manifest{Repo: repo, Digest: d}
	err := s.read(ctx, func(tx pgx.Tx) error {
		var (
			subject     *string
			annotations []byte
			created     int64
		)
		err := tx.QueryRow(ctx, `SELECT media_type, size, artifact_type, subject, annotations, created
			FROM manifests WHERE repo = $1 AND digest = $2`, repo, d.String()).
			Scan(&m.MediaType, &m.Size, &m.ArtifactType, &subject, &annotations, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: manifest %s in %s: %w", d, repo, meta.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("postgres: manifest %s in %s: %w", d, repo, err)
		}
		if subject != nil {
			m.Subject = digest.Digest(*subject)
		}
		m.Created = meta.FromMicros(created)
		if m.Annotations, err = decodeAnnotations(annotations); err != nil {
			return fmt.Errorf("postgres: manifest %s in %s: %w", d, repo, err)
		}

		rows, err := tx.Query(ctx, `SELECT kind, ref FROM manifest_refs
			WHERE repo = $1 AND manifest = $2 ORDER BY kind, position`, repo, d.String())
		if err != nil {
			return fmt.Errorf("postgres: manifest %s refs: %w", d, err)
		}
		var kind, ref string
		_, err = pgx.ForEachRow(rows, []any{&kind, &ref}, func() error {
			if kind == "blob" {
				m.Blobs = append(m.Blobs, digest.Digest(ref))
			} else {
				m.Manifests = append(m.Manifests, digest.Digest(ref))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("postgres: manifest %s refs: %w", d, err)
		}
		return nil
	})
	if err != nil {
		return meta.Manifest{}, err
	}
	return m, nil
}

// DeleteManifest removes manifest d from repo with its references and the
// tags pointing at it, which it returns in byte order.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	var removed []string
	err := s.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM tags WHERE repo = $1 AND digest = $2 RETURNING tag`, repo, d.String())
		if err != nil {
			return fmt.Errorf("postgres: delete tags of manifest %s in %s: %w", d, repo, err)
		}
		removed, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("postgres: delete tags of manifest %s in %s: %w", d, repo, err)
		}
		slices.Sort(removed)
		// manifest_refs rows go with the manifest (ON DELETE CASCADE).
		res, err := tx.Exec(ctx, `DELETE FROM manifests WHERE repo = $1 AND digest = $2`, repo, d.String())
		if err != nil {
			return fmt.Errorf("postgres: delete manifest %s in %s: %w", d, repo, err)
		}
		if res.RowsAffected() == 0 {
			return fmt.Errorf("postgres: manifest %s in %s: %w", d, repo, meta.ErrNotFound)
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
	err := s.pool.QueryRow(ctx, `SELECT digest FROM tags WHERE repo = $1 AND tag = $2`, repo, tag).Scan(&d)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: tag %s in %s: %w", tag, repo, meta.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("postgres: tag %s in %s: %w", tag, repo, err)
	}
	return digest.Digest(d), nil
}

// DeleteTag removes tag from repo, leaving the manifest in place.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM tags WHERE repo = $1 AND tag = $2`, repo, tag)
		if err != nil {
			return fmt.Errorf("postgres: delete tag %s in %s: %w", tag, repo, err)
		}
		if res.RowsAffected() == 0 {
			return fmt.Errorf("postgres: tag %s in %s: %w", tag, repo, meta.ErrNotFound)
		}
		return nil
	})
}

// Tags lists the tags of repo in byte order after last, at most n.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	var tags []string
	err := s.read(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM repositories WHERE name = $1)`, repo).
			Scan(&exists); err != nil {
			return fmt.Errorf("postgres: repository %s: %w", repo, err)
		}
		if !exists {
			return fmt.Errorf("postgres: repository %s: %w", repo, meta.ErrNotFound)
		}
		if n <= 0 {
			tags = []string{}
			return nil
		}
		var err error
		tags, err = queryStrings(ctx, tx, `SELECT tag FROM tags WHERE repo = $1 AND tag > $2 ORDER BY tag LIMIT $3`,
			repo, last, n)
		if err != nil {
			return fmt.Errorf("postgres: tags of %s: %w", repo, err)
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
	repos, err := queryStrings(ctx, s.pool, `SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2`, last, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: repositories: %w", err)
	}
	return repos, nil
}

// Referrers lists the manifests in repo whose subject is d, only those of
// artifactType if it is not empty, ordered by digest, after last, at most n.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, last digest.Digest, n int) ([]meta.Descriptor, error) {
	if n <= 0 {
		return []meta.Descriptor{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT media_type, digest, size, artifact_type, annotations
		FROM manifests WHERE repo = $1 AND subject = $2 AND ($3 = '' OR artifact_type = $3) AND digest > $4
		ORDER BY digest LIMIT $5`, repo, d.String(), artifactType, last.String(), n)
	if err != nil {
		return nil, fmt.Errorf("postgres: referrers of %s in %s: %w", d, repo, err)
	}
	descs := []meta.Descriptor{}
	var (
		desc        meta.Descriptor
		dg          string
		annotations []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&desc.MediaType, &dg, &desc.Size, &desc.ArtifactType, &annotations}, func() error {
		a, err := decodeAnnotations(annotations)
		if err != nil {
			return fmt.Errorf("referrer %s: %w", dg, err)
		}
		descs = append(descs, meta.Descriptor{MediaType: desc.MediaType, Digest: digest.Digest(dg),
			Size: desc.Size, ArtifactType: desc.ArtifactType, Annotations: a})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: referrers of %s in %s: %w", d, repo, err)
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
		return fmt.Errorf("postgres: create upload %s: %w", u.ID, err)
	}
	updated, err := meta.Micros(u.Updated)
	if err != nil {
		return fmt.Errorf("postgres: create upload %s: %w", u.ID, err)
	}
	_, err = s.execUpload(ctx, `INSERT INTO uploads(id, repo, acked, created, updated) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.Repo, u.Offset, created, updated)
	if err != nil {
		return fmt.Errorf("postgres: create upload %s: %w", u.ID, err)
	}
	return nil
}

// GetUpload returns the upload session id.
func (s *Store) GetUpload(ctx context.Context, id string) (meta.Upload, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, repo, acked, created, updated FROM uploads WHERE id = $1`, id)
	if err != nil {
		return meta.Upload{}, fmt.Errorf("postgres: upload %s: %w", id, err)
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUpload)
	if errors.Is(err, pgx.ErrNoRows) {
		return meta.Upload{}, fmt.Errorf("postgres: upload %s: %w", id, meta.ErrNotFound)
	}
	if err != nil {
		return meta.Upload{}, fmt.Errorf("postgres: upload %s: %w", id, err)
	}
	return u, nil
}

// UpdateUpload records offset as the acknowledged offset of upload id and
// sets its Updated time to now.
func (s *Store) UpdateUpload(ctx context.Context, id string, offset int64) error {
	n, err := s.execUpload(ctx, `UPDATE uploads SET acked = $1, updated = $2 WHERE id = $3`,
		offset, time.Now().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("postgres: update upload %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: upload %s: %w", id, meta.ErrNotFound)
	}
	return nil
}

// errNoRows rolls back a write to the uploads table that changed nothing.
var errNoRows = errors.New("no such upload")

// execUpload runs q, a write to the uploads table, and returns how many
// rows it changed. Under meta.FlushLater (the bookkeeping of an upload
// session, the end of a blob upload), or with the audit entries of the
// change it ends (tlog.WithPending: the end of a blob upload), it runs in
// a transaction (write), so that it does not wait for a WAL flush of its
// own, or stores the entries with it in one durable commit. A write that
// changes nothing rolls back, so that no entries are stored for it.
func (s *Store) execUpload(ctx context.Context, q string, args ...any) (int64, error) {
	if meta.FlushesLater(ctx) || tlog.PendingIn(ctx).For(s) {
		var n int64
		err := s.write(ctx, func(tx pgx.Tx) error {
			res, err := tx.Exec(ctx, q, args...)
			if n = res.RowsAffected(); err == nil && n == 0 {
				return errNoRows
			}
			return err
		})
		if errors.Is(err, errNoRows) {
			err = nil
		}
		return n, err
	}
	res, err := s.pool.Exec(ctx, q, args...)
	return res.RowsAffected(), err
}

// DeleteUpload removes upload session id.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	n, err := s.execUpload(ctx, `DELETE FROM uploads WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres: delete upload %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: upload %s: %w", id, meta.ErrNotFound)
	}
	return nil
}

// StaleUploads lists the upload sessions last updated before before,
// oldest first.
func (s *Store) StaleUploads(ctx context.Context, before time.Time) ([]meta.Upload, error) {
	b, err := meta.Micros(before)
	if err != nil {
		return nil, fmt.Errorf("postgres: stale uploads: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, repo, acked, created, updated FROM uploads
		WHERE updated < $1 ORDER BY updated, id`, b)
	if err != nil {
		return nil, fmt.Errorf("postgres: stale uploads: %w", err)
	}
	ups, err := pgx.CollectRows(rows, scanUpload)
	if err != nil {
		return nil, fmt.Errorf("postgres: stale uploads: %w", err)
	}
	if ups == nil {
		ups = []meta.Upload{}
	}
	return ups, nil
}

// scanUpload reads an uploads row selected as id, repo, acked, created,
// updated.
func scanUpload(row pgx.CollectableRow) (meta.Upload, error) {
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

// querier is what *pgxpool.Pool and pgx.Tx have in common.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryStrings runs a query selecting one text column and returns its
// values, never nil.
func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// countRows reads rows to the end and returns how many there were.
func countRows(rows pgx.Rows) (int, error) {
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// nullString maps "" to NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// encodeAnnotations encodes annotations as a JSON object, or NULL when
// there are none.
func encodeAnnotations(a map[string]string) (*string, error) {
	if len(a) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode annotations: %w", err)
	}
	s := string(b)
	return &s, nil
}

// decodeAnnotations is the inverse of encodeAnnotations: NULL is nil.
func decodeAnnotations(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var a map[string]string
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decode annotations: %w", err)
	}
	if len(a) == 0 {
		return nil, nil
	}
	return a, nil
}
