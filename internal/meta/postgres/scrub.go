package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/scrub"
)

// Store implements scrub.Store itself: each listing reads one snapshot
// (REPEATABLE READ, read-only) and streams its rows, so a scrub running
// beside the registry neither blocks writers nor holds the data in memory.
var _ scrub.Store = (*Store)(nil)

// ScrubLinks calls fn for every blob link, ordered by repository and
// digest.
func (s *Store) ScrubLinks(ctx context.Context, fn func(repo string, d digest.Digest, size int64) error) error {
	return s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT repo, digest, size FROM blob_links ORDER BY repo, digest`)
		if err != nil {
			return fmt.Errorf("postgres: blob links: %w", err)
		}
		var (
			repo, d string
			size    int64
		)
		_, err = pgx.ForEachRow(rows, []any{&repo, &d, &size}, func() error { return fn(repo, digest.Digest(d), size) })
		return err
	})
}

// ScrubManifests calls fn for every manifest record with its references
// (Repo, Digest, MediaType, Size, Subject, Blobs, Manifests), ordered by
// repository and digest.
func (s *Store) ScrubManifests(ctx context.Context, fn func(m meta.Manifest) error) error {
	return s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT m.repo, m.digest, m.media_type, m.size, m.subject, f.kind, f.ref
			FROM manifests m LEFT JOIN manifest_refs f ON f.repo = m.repo AND f.manifest = m.digest
			ORDER BY m.repo, m.digest, f.kind, f.position`)
		if err != nil {
			return fmt.Errorf("postgres: manifests: %w", err)
		}
		var (
			cur                *meta.Manifest
			repo, d, mt        string
			size               int64
			subject, kind, ref *string
		)
		_, err = pgx.ForEachRow(rows, []any{&repo, &d, &mt, &size, &subject, &kind, &ref}, func() error {
			if cur == nil || cur.Repo != repo || cur.Digest.String() != d {
				if cur != nil {
					if err := fn(*cur); err != nil {
						return err
					}
				}
				cur = &meta.Manifest{Repo: repo, Digest: digest.Digest(d), MediaType: mt, Size: size,
					Subject: digest.Digest(deref(subject))}
			}
			switch deref(kind) {
			case "blob":
				cur.Blobs = append(cur.Blobs, digest.Digest(deref(ref)))
			case "manifest":
				cur.Manifests = append(cur.Manifests, digest.Digest(deref(ref)))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if cur != nil {
			return fn(*cur)
		}
		return nil
	})
}

// ScrubTags calls fn for every tag, ordered by repository and tag.
func (s *Store) ScrubTags(ctx context.Context, fn func(repo, tag string, d digest.Digest) error) error {
	return s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT repo, tag, digest FROM tags ORDER BY repo, tag`)
		if err != nil {
			return fmt.Errorf("postgres: tags: %w", err)
		}
		var repo, tag, d string
		_, err = pgx.ForEachRow(rows, []any{&repo, &tag, &d}, func() error { return fn(repo, tag, digest.Digest(d)) })
		return err
	})
}
