package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
)

// The build metadata index (builds.Index): build_meta is filled from the
// annotations of every newly recorded manifest, and tag_history by every
// transaction that moves a tag, both inside the PutManifest transaction
// (migration 2).

var _ builds.Index = (*Store)(nil)

// insertBuildMeta indexes the build annotations of a newly recorded
// manifest, within the PutManifest transaction. Manifests without any of
// the indexed annotations get no row.
func insertBuildMeta(ctx context.Context, tx pgx.Tx, m meta.Manifest) error {
	args := []any{m.Repo, m.Digest.String()}
	found := false
	for _, k := range builds.Keys {
		if v, ok := m.Annotations[k]; ok {
			args = append(args, v)
			found = true
		} else {
			args = append(args, nil)
		}
	}
	if !found {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO build_meta
		(repo, digest, revision, source, version, created, build_number, pipeline_run)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return fmt.Errorf("postgres: index build metadata of %s in %s: %w", m.Digest, m.Repo, err)
	}
	return nil
}

// recordTagMove appends to the history of tag, within the transaction that
// moves it (and holds the tag's row lock, so history follows commit order).
func recordTagMove(ctx context.Context, tx pgx.Tx, repo, tag string, d digest.Digest, now int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO tag_history(repo, tag, digest, at) VALUES ($1, $2, $3, $4)`,
		repo, tag, d.String(), now)
	if err != nil {
		return fmt.Errorf("postgres: record history of tag %s in %s: %w", tag, repo, err)
	}
	return nil
}

// buildColumns selects a builds.Build with its tags in byte order.
const buildColumns = `b.repo, b.digest, b.revision, b.source, b.version, b.created, b.build_number, b.pipeline_run,
	m.created, ARRAY(SELECT t.tag FROM tags t WHERE t.repo = b.repo AND t.digest = b.digest ORDER BY t.tag)
	FROM build_meta b JOIN manifests m ON m.repo = b.repo AND m.digest = b.digest`

// Builds lists the manifests built from revision, oldest first.
func (s *Store) Builds(ctx context.Context, revision string) ([]builds.Build, error) {
	out, err := s.queryBuilds(ctx, `SELECT `+buildColumns+` WHERE b.revision = $1
		ORDER BY m.created, b.repo, b.digest`, revision)
	if err != nil {
		return nil, fmt.Errorf("postgres: builds of revision %s: %w", revision, err)
	}
	return out, nil
}

// Versions lists the manifests of repo carrying a version annotation,
// oldest first.
func (s *Store) Versions(ctx context.Context, repo string) ([]builds.Build, error) {
	out, err := s.queryBuilds(ctx, `SELECT `+buildColumns+` WHERE b.repo = $1 AND b.version IS NOT NULL
		ORDER BY m.created, b.digest`, repo)
	if err != nil {
		return nil, fmt.Errorf("postgres: versions of %s: %w", repo, err)
	}
	return out, nil
}

func (s *Store) queryBuilds(ctx context.Context, query string, args ...any) ([]builds.Build, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (builds.Build, error) {
		var (
			b                          builds.Build
			d                          string
			rev, src, ver, cr, bn, run *string
			pushed                     int64
		)
		if err := row.Scan(&b.Repo, &d, &rev, &src, &ver, &cr, &bn, &run, &pushed, &b.Tags); err != nil {
			return b, err
		}
		b.Digest = digest.Digest(d)
		b.Revision, b.Source, b.Version = deref(rev), deref(src), deref(ver)
		b.Created, b.BuildNumber, b.PipelineRun = deref(cr), deref(bn), deref(run)
		b.Pushed = meta.FromMicros(pushed)
		if b.Tags == nil {
			b.Tags = []string{}
		}
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []builds.Build{}
	}
	return out, nil
}

// TagHistory lists every digest tag has pointed at in repo, oldest first.
func (s *Store) TagHistory(ctx context.Context, repo, tag string) ([]builds.TagEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT digest, at FROM tag_history
		WHERE repo = $1 AND tag = $2 ORDER BY id`, repo, tag)
	if err != nil {
		return nil, fmt.Errorf("postgres: history of tag %s in %s: %w", tag, repo, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (builds.TagEvent, error) {
		var (
			d  string
			at int64
		)
		err := row.Scan(&d, &at)
		return builds.TagEvent{Digest: digest.Digest(d), At: meta.FromMicros(at)}, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: history of tag %s in %s: %w", tag, repo, err)
	}
	if out == nil {
		out = []builds.TagEvent{}
	}
	return out, nil
}

// TaggedRepositories lists the existing repositories whose tag has a
// history, in lexical (byte: COLLATE "C") order.
func (s *Store) TaggedRepositories(ctx context.Context, tag string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT h.repo FROM tag_history h
		WHERE h.tag = $1 AND EXISTS (SELECT 1 FROM repositories r WHERE r.name = h.repo)
		ORDER BY h.repo`, tag)
	if err != nil {
		return nil, fmt.Errorf("postgres: repositories with tag %s: %w", tag, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: repositories with tag %s: %w", tag, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// deref maps NULL to "".
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
