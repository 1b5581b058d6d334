package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/meta"
)

// This file holds what garbage collection (internal/gc) and the registry's
// GC-safe manifest write need beyond meta.Store. See docs/maintenance.md.
//
// How writers and the collector serialise without a database-wide write
// lock (which the SQLite backend has):
//
//   - Every transaction that records a link to a digest or a manifest
//     naming it (LinkBlob, PutManifest) holds a shared transaction-level
//     advisory lock on that digest until it commits.
//     DeleteBlobIfUnreferenced takes the same lock exclusively, so it waits
//     for those transactions, and then sees their rows; writers that start
//     later wait until the bytes are deleted and the check has committed,
//     exactly as behind SQLite's write lock.
//   - PutManifestVerified locks each referenced link and child manifest
//     row (FOR KEY SHARE) while it verifies them, so they cannot be
//     deleted before the manifest commits.
//   - DeleteUntaggedManifest locks the manifest and its subject chain FOR
//     UPDATE before it checks them; tag and reference rows pointing at a
//     manifest take KEY SHARE locks on it through their foreign keys, so
//     the check sees every such row that commits first and blocks every
//     one that comes later.

var _ gc.Store = (*Store)(nil)

// manifestDigests lists the digests m's record names: itself and what it
// references.
func manifestDigests(m meta.Manifest) []digest.Digest {
	ds := make([]digest.Digest, 0, 1+len(m.Blobs)+len(m.Manifests))
	ds = append(ds, m.Digest)
	ds = append(ds, m.Blobs...)
	return append(ds, m.Manifests...)
}

// lockDigests takes the shared advisory lock of each digest (see above)
// until tx ends.
func lockDigests(ctx context.Context, tx pgx.Tx, ds ...digest.Digest) error {
	keys := make([]string, len(ds))
	for i, d := range ds {
		keys[i] = d.String()
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared(hashtextextended('custody.blob.' || k, 0))
		FROM unnest($1::text[]) AS k`, keys)
	if err != nil {
		return fmt.Errorf("postgres: lock digests: %w", err)
	}
	return nil
}

// PutManifestVerified is PutManifest, except that inside its transaction
// it first checks that every blob m references is still linked into m.Repo
// and every child manifest is still recorded there, and locks those rows
// until it commits. A manifest is thus never recorded pointing at content
// collected after the registry validated it; the error then wraps
// meta.ErrReferenceGone.
func (s *Store) PutManifestVerified(ctx context.Context, m meta.Manifest, tags []string, check meta.TagCheck) error {
	return s.putManifest(ctx, m, tags, check, func(tx pgx.Tx) error {
		for _, b := range m.Blobs {
			rows, err := tx.Query(ctx, `SELECT 1 FROM blob_links WHERE repo = $1 AND digest = $2 FOR KEY SHARE`,
				m.Repo, b.String())
			if err != nil {
				return fmt.Errorf("postgres: verify blob %s: %w", b, err)
			}
			n, err := countRows(rows)
			if err != nil {
				return fmt.Errorf("postgres: verify blob %s: %w", b, err)
			}
			if n == 0 {
				return fmt.Errorf("postgres: blob %s: %w", b, meta.ErrReferenceGone)
			}
		}
		for _, c := range m.Manifests {
			rows, err := tx.Query(ctx, `SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2 FOR KEY SHARE`,
				m.Repo, c.String())
			if err != nil {
				return fmt.Errorf("postgres: verify manifest %s: %w", c, err)
			}
			n, err := countRows(rows)
			if err != nil {
				return fmt.Errorf("postgres: verify manifest %s: %w", c, err)
			}
			if n == 0 {
				return fmt.Errorf("postgres: manifest %s: %w", c, meta.ErrReferenceGone)
			}
		}
		return nil
	})
}

// ReferencedBlobs calls fn for every digest something keeps alive: linked
// into a repository, referenced by a manifest, or the bytes of a manifest.
// It reads one snapshot. A digest is reported once.
func (s *Store) ReferencedBlobs(ctx context.Context, fn func(d digest.Digest) error) error {
	return s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT digest FROM blob_links
			UNION SELECT ref FROM manifest_refs
			UNION SELECT digest FROM manifests`)
		if err != nil {
			return fmt.Errorf("postgres: referenced blobs: %w", err)
		}
		var d string
		_, err = pgx.ForEachRow(rows, []any{&d}, func() error { return fn(digest.Digest(d)) })
		return err
	})
}

// DeleteBlobIfUnreferenced takes d's advisory lock exclusively (waiting for
// transactions recording a link or manifest naming d), re-checks that
// nothing links or references d, and if so calls del (which removes the
// bytes) before releasing the lock. It reports whether del ran and
// succeeded; del's error is returned as is.
func (s *Store) DeleteBlobIfUnreferenced(ctx context.Context, d digest.Digest, del func() error) (bool, error) {
	deleted := false
	// Not retried: del must not run twice.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('custody.blob.' || $1, 0))`,
			d.String()); err != nil {
			return fmt.Errorf("postgres: lock blob %s: %w", d, err)
		}
		var used bool
		if err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM blob_links WHERE digest = $1) OR
			EXISTS (SELECT 1 FROM manifest_refs WHERE ref = $1) OR
			EXISTS (SELECT 1 FROM manifests WHERE digest = $1)`, d.String()).Scan(&used); err != nil {
			return fmt.Errorf("postgres: blob %s referenced: %w", d, err)
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
	if err != nil {
		return false, err
	}
	return deleted, nil
}

// GCManifests lists the manifests of repo, ordered by digest, from one
// snapshot.
func (s *Store) GCManifests(ctx context.Context, repo string) ([]gc.Manifest, error) {
	var out []gc.Manifest
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT m.digest, m.subject, m.created,
			EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest),
			ARRAY(SELECT r.ref FROM manifest_refs r
				WHERE r.repo = m.repo AND r.manifest = m.digest AND r.kind = 'manifest' ORDER BY r.position)
			FROM manifests m WHERE m.repo = $1 ORDER BY m.digest`, repo)
		if err != nil {
			return fmt.Errorf("postgres: manifests of %s: %w", repo, err)
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (gc.Manifest, error) {
			var (
				g        gc.Manifest
				d        string
				subject  *string
				created  int64
				children []string
			)
			if err := row.Scan(&d, &subject, &created, &g.Tagged, &children); err != nil {
				return g, err
			}
			g.Digest, g.Subject, g.Created = digest.Digest(d), digest.Digest(deref(subject)), meta.FromMicros(created)
			for _, c := range children {
				g.Children = append(g.Children, digest.Digest(c))
			}
			return g, nil
		})
		if err != nil {
			return fmt.Errorf("postgres: manifests of %s: %w", repo, err)
		}
		return nil
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		deleted = false
		ok, err := collectable(ctx, tx, repo, d, notAfter, 0)
		if err != nil || !ok {
			return err
		}
		// manifest_refs and build_meta rows go with it (ON DELETE CASCADE).
		if _, err := tx.Exec(ctx, `DELETE FROM manifests WHERE repo = $1 AND digest = $2`, repo, d.String()); err != nil {
			return fmt.Errorf("postgres: delete manifest %s in %s: %w", d, repo, err)
		}
		deleted = true
		return pruneRepo(ctx, tx, repo)
	})
	if err != nil {
		return false, err
	}
	return deleted, nil
}

// collectable locks manifest d of repo FOR UPDATE and then checks it (see
// DeleteUntaggedManifest), following its subject chain.
func collectable(ctx context.Context, tx pgx.Tx, repo string, d digest.Digest, notAfter time.Time, depth int) (bool, error) {
	if depth > maxSubjectDepth {
		return false, nil
	}
	var (
		subject *string
		created int64
	)
	err := tx.QueryRow(ctx, `SELECT subject, created FROM manifests WHERE repo = $1 AND digest = $2 FOR UPDATE`,
		repo, d.String()).Scan(&subject, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		if depth == 0 {
			return false, nil // gone already
		}
		return true, nil // a subject that is absent keeps nothing alive
	}
	if err != nil {
		return false, fmt.Errorf("postgres: manifest %s in %s: %w", d, repo, err)
	}
	// A new statement: under READ COMMITTED it sees every tag and
	// reference committed before the lock was granted.
	var used bool
	if err := tx.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM tags WHERE repo = $1 AND digest = $2) OR
		EXISTS (SELECT 1 FROM manifest_refs WHERE repo = $1 AND kind = 'manifest' AND ref = $2)`,
		repo, d.String()).Scan(&used); err != nil {
		return false, fmt.Errorf("postgres: manifest %s in %s: %w", d, repo, err)
	}
	if used || !meta.FromMicros(created).Before(notAfter) {
		return false, nil
	}
	if subject != nil && *subject != "" && *subject != d.String() {
		return collectable(ctx, tx, repo, digest.Digest(*subject), notAfter, depth+1)
	}
	return true, nil
}
