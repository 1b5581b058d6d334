package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
)

// ReadOnly is a read-only view of a custody SQLite database for scrub. It
// takes no lock beyond SQLite's own, so it can be opened while a server
// writes the same database.
type ReadOnly struct {
	db *sql.DB
}

// OpenReadOnly opens the database at path read-only (mode=ro,
// query_only). It never creates or migrates anything.
func OpenReadOnly(path string) (*ReadOnly, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s read-only: %w", path, err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM manifests`).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s read-only: %w", path, err)
	}
	return &ReadOnly{db: db}, nil
}

// Close closes the database.
func (r *ReadOnly) Close() error { return r.db.Close() }

func (r *ReadOnly) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// ScrubLinks calls fn for every blob link.
func (r *ReadOnly) ScrubLinks(ctx context.Context, fn func(repo string, d digest.Digest, size int64) error) error {
	return r.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT repo, digest, size FROM blob_links ORDER BY repo, digest`)
		if err != nil {
			return fmt.Errorf("sqlite: blob links: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				repo, d string
				size    int64
			)
			if err := rows.Scan(&repo, &d, &size); err != nil {
				return err
			}
			if err := fn(repo, digest.Digest(d), size); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// ScrubManifests calls fn for every manifest record with its references.
func (r *ReadOnly) ScrubManifests(ctx context.Context, fn func(m meta.Manifest) error) error {
	return r.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT m.repo, m.digest, m.media_type, m.size, m.subject, f.kind, f.ref
			FROM manifests m LEFT JOIN manifest_refs f ON f.repo = m.repo AND f.manifest = m.digest
			ORDER BY m.repo, m.digest, f.kind, f.position`)
		if err != nil {
			return fmt.Errorf("sqlite: manifests: %w", err)
		}
		defer rows.Close()
		var cur *meta.Manifest
		flush := func() error {
			if cur == nil {
				return nil
			}
			m := *cur
			cur = nil
			return fn(m)
		}
		for rows.Next() {
			var (
				repo, d, mt        string
				size               int64
				subject, kind, ref sql.NullString
			)
			if err := rows.Scan(&repo, &d, &mt, &size, &subject, &kind, &ref); err != nil {
				return err
			}
			if cur == nil || cur.Repo != repo || cur.Digest.String() != d {
				if err := flush(); err != nil {
					return err
				}
				cur = &meta.Manifest{Repo: repo, Digest: digest.Digest(d), MediaType: mt, Size: size, Subject: digest.Digest(subject.String)}
			}
			switch kind.String {
			case "blob":
				cur.Blobs = append(cur.Blobs, digest.Digest(ref.String))
			case "manifest":
				cur.Manifests = append(cur.Manifests, digest.Digest(ref.String))
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return flush()
	})
}

// ScrubTags calls fn for every tag.
func (r *ReadOnly) ScrubTags(ctx context.Context, fn func(repo, tag string, d digest.Digest) error) error {
	return r.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT repo, tag, digest FROM tags ORDER BY repo, tag`)
		if err != nil {
			return fmt.Errorf("sqlite: tags: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var repo, tag, d string
			if err := rows.Scan(&repo, &tag, &d); err != nil {
				return err
			}
			if err := fn(repo, tag, digest.Digest(d)); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// ScrubView returns a read-only view over the store's read pool, for
// scrubs run inside the server.
func (s *Store) ScrubView() *ReadOnly { return &ReadOnly{db: s.r} }
