package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/meta"
)

// This file holds what garbage collection (internal/gc) and the registry's
// GC-safe manifest write need beyond meta.Store. See docs/maintenance.md.

// PutManifestVerified is PutManifest, except that inside its write
// transaction it first checks that every blob m references is still linked
// into m.Repo and every child manifest is still recorded there. Garbage
// collection re-checks references in write transactions too, so the two
// serialise: a manifest is never recorded pointing at content collected
// after the registry validated it.
func (s *Store) PutManifestVerified(ctx context.Context, m meta.Manifest, tags []string, check meta.TagCheck) error {
	return s.putManifest(ctx, m, tags, check, func(tx prepTx) error {
		for _, b := range m.Blobs {
			var ok bool
			if err := tx.QueryRowContext(ctx, qLinkExists, m.Repo, b.String()).Scan(&ok); err != nil {
				return fmt.Errorf("sqlite: verify blob %s: %w", b, err)
			}
			if !ok {
				return fmt.Errorf("sqlite: blob %s: %w", b, meta.ErrReferenceGone)
			}
		}
		for _, c := range m.Manifests {
			var ok bool
			if err := tx.QueryRowContext(ctx, qChildExists, m.Repo, c.String()).Scan(&ok); err != nil {
				return fmt.Errorf("sqlite: verify manifest %s: %w", c, err)
			}
			if !ok {
				return fmt.Errorf("sqlite: manifest %s: %w", c, meta.ErrReferenceGone)
			}
		}
		return nil
	})
}

// ReferencedBlobs calls fn for every digest something keeps alive: linked
// into a repository, referenced by a manifest, or the bytes of a manifest.
// It reads one snapshot. A digest may be reported more than once.
func (s *Store) ReferencedBlobs(ctx context.Context, fn func(d digest.Digest) error) error {
	return s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT digest FROM blob_links
			UNION SELECT ref FROM manifest_refs
			UNION SELECT digest FROM manifests`)
		if err != nil {
			return fmt.Errorf("sqlite: referenced blobs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				return fmt.Errorf("sqlite: referenced blobs: %w", err)
			}
			if err := fn(digest.Digest(d)); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// DeleteBlobIfUnreferenced re-checks, inside a write transaction, that
// nothing links or references d, and if so calls del (which removes the
// bytes) while the transaction still holds the write lock, so no link or
// manifest record naming d can commit in between. It reports whether del
// ran and succeeded; del's error is returned as is.
func (s *Store) DeleteBlobIfUnreferenced(ctx context.Context, d digest.Digest, del func() error) (bool, error) {
	deleted := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var used bool
		if err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM blob_links WHERE digest = ?1) OR
			EXISTS (SELECT 1 FROM manifest_refs WHERE ref = ?1) OR
			EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)`, d.String()).Scan(&used); err != nil {
			return fmt.Errorf("sqlite: blob %s referenced: %w", d, err)
		}
		if used {
			return nil
		}
		if err := del(); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	return deleted, err
}

// GCManifests lists the manifests of repo from one snapshot.
func (s *Store) GCManifests(ctx context.Context, repo string) ([]gc.Manifest, error) {
	var out []gc.Manifest
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT m.digest, m.subject, m.created,
			EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
			FROM manifests m WHERE m.repo = ? ORDER BY m.digest`, repo)
		if err != nil {
			return fmt.Errorf("sqlite: manifests of %s: %w", repo, err)
		}
		idx := map[string]int{}
		for rows.Next() {
			var (
				g       gc.Manifest
				d       string
				subject sql.NullString
				created int64
			)
			if err := rows.Scan(&d, &subject, &created, &g.Tagged); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: manifests of %s: %w", repo, err)
			}
			g.Digest, g.Subject, g.Created = digest.Digest(d), digest.Digest(subject.String), meta.FromMicros(created)
			idx[d] = len(out)
			out = append(out, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: manifests of %s: %w", repo, err)
		}
		refs, err := tx.QueryContext(ctx, `SELECT manifest, ref FROM manifest_refs
			WHERE repo = ? AND kind = 'manifest' ORDER BY manifest, position`, repo)
		if err != nil {
			return fmt.Errorf("sqlite: manifest refs of %s: %w", repo, err)
		}
		defer refs.Close()
		for refs.Next() {
			var parent, child string
			if err := refs.Scan(&parent, &child); err != nil {
				return fmt.Errorf("sqlite: manifest refs of %s: %w", repo, err)
			}
			if i, ok := idx[parent]; ok {
				out[i].Children = append(out[i].Children, digest.Digest(child))
			}
		}
		return refs.Err()
	})
	return out, err
}

// maxSubjectDepth bounds how far DeleteUntaggedManifest follows subject
// links; a longer chain is kept.
const maxSubjectDepth = 16

// DeleteUntaggedManifest deletes manifest d from repo if, inside a write
// transaction, it is still collectable: created before notAfter, untagged,
// referenced by no manifest of repo, and its subject (if any) is absent
// from repo or itself collectable. It reports whether it deleted.
func (s *Store) DeleteUntaggedManifest(ctx context.Context, repo string, d digest.Digest, notAfter time.Time) (bool, error) {
	deleted := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := collectable(ctx, tx, repo, d, notAfter, 0)
		if err != nil || !ok {
			return err
		}
		for _, q := range []string{
			`DELETE FROM manifest_refs WHERE repo = ? AND manifest = ?`,
			`DELETE FROM manifests WHERE repo = ? AND digest = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, repo, d.String()); err != nil {
				return fmt.Errorf("sqlite: delete manifest %s in %s: %w", d, repo, err)
			}
		}
		deleted = true
		return pruneRepo(ctx, s.wtx(tx), repo)
	})
	return deleted, err
}

func collectable(ctx context.Context, tx *sql.Tx, repo string, d digest.Digest, notAfter time.Time, depth int) (bool, error) {
	if depth > maxSubjectDepth {
		return false, nil
	}
	var (
		subject sql.NullString
		created int64
		used    bool
	)
	err := tx.QueryRowContext(ctx, `SELECT subject, created,
		EXISTS (SELECT 1 FROM tags WHERE repo = ?1 AND digest = ?2) OR
		EXISTS (SELECT 1 FROM manifest_refs WHERE repo = ?1 AND kind = 'manifest' AND ref = ?2)
		FROM manifests WHERE repo = ?1 AND digest = ?2`, repo, d.String()).Scan(&subject, &created, &used)
	if errors.Is(err, sql.ErrNoRows) {
		if depth == 0 {
			return false, nil // gone already
		}
		return true, nil // a subject that is absent keeps nothing alive
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: manifest %s in %s: %w", d, repo, err)
	}
	if used || !meta.FromMicros(created).Before(notAfter) {
		return false, nil
	}
	if subject.Valid && subject.String != "" && subject.String != d.String() {
		return collectable(ctx, tx, repo, digest.Digest(subject.String), notAfter, depth+1)
	}
	return true, nil
}

var _ gc.Store = (*Store)(nil)
