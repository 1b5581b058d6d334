package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
)

var _ builds.Index = (*Store)(nil)

// insertBuildMeta indexes the build annotations of a newly recorded
// manifest, within the PutManifest transaction. Manifests without any of
// the indexed annotations get no row.
func insertBuildMeta(ctx context.Context, tx prepTx, m meta.Manifest) error {
	vals := make([]any, 0, len(builds.Keys))
	found := false
	for _, k := range builds.Keys {
		v, ok := m.Annotations[k]
		vals = append(vals, sql.NullString{String: v, Valid: ok})
		found = found || ok
	}
	if !found {
		return nil
	}
	args := append([]any{m.Repo, m.Digest.String()}, vals...)
	_, err := tx.ExecContext(ctx, qBuildMeta, args...)
	if err != nil {
		return fmt.Errorf("sqlite: index build metadata of %s in %s: %w", m.Digest, m.Repo, err)
	}
	return nil
}

// recordTagMove appends to the history of tag, within the transaction that
// moves it.
func recordTagMove(ctx context.Context, tx prepTx, repo, tag string, d digest.Digest, now int64) error {
	_, err := tx.ExecContext(ctx, qTagHistory, repo, tag, d.String(), now)
	if err != nil {
		return fmt.Errorf("sqlite: record history of tag %s in %s: %w", tag, repo, err)
	}
	return nil
}

// buildColumns selects a builds.Build, with its tags joined by '\n'.
const buildColumns = `b.repo, b.digest, b.revision, b.source, b.version, b.created, b.build_number, b.pipeline_run,
	m.created, (SELECT group_concat(tag, char(10)) FROM (SELECT tag FROM tags t
		WHERE t.repo = b.repo AND t.digest = b.digest ORDER BY tag))
	FROM build_meta b JOIN manifests m ON m.repo = b.repo AND m.digest = b.digest`

// Builds lists the manifests built from revision, oldest first.
func (s *Store) Builds(ctx context.Context, revision string) ([]builds.Build, error) {
	out, err := s.queryBuilds(ctx, `SELECT `+buildColumns+` WHERE b.revision = ?
		ORDER BY m.created, b.repo, b.digest`, revision)
	if err != nil {
		return nil, fmt.Errorf("sqlite: builds of revision %s: %w", revision, err)
	}
	return out, nil
}

// Versions lists the manifests of repo carrying a version annotation,
// oldest first.
func (s *Store) Versions(ctx context.Context, repo string) ([]builds.Build, error) {
	out, err := s.queryBuilds(ctx, `SELECT `+buildColumns+` WHERE b.repo = ? AND b.version IS NOT NULL
		ORDER BY m.created, b.digest`, repo)
	if err != nil {
		return nil, fmt.Errorf("sqlite: versions of %s: %w", repo, err)
	}
	return out, nil
}

func (s *Store) queryBuilds(ctx context.Context, query string, args ...any) ([]builds.Build, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []builds.Build{}
	for rows.Next() {
		var (
			b                          builds.Build
			d                          string
			rev, src, ver, cr, bn, run sql.NullString
			tags                       sql.NullString
			pushed                     int64
		)
		if err := rows.Scan(&b.Repo, &d, &rev, &src, &ver, &cr, &bn, &run, &pushed, &tags); err != nil {
			return nil, err
		}
		b.Digest = digest.Digest(d)
		b.Revision, b.Source, b.Version = rev.String, src.String, ver.String
		b.Created, b.BuildNumber, b.PipelineRun = cr.String, bn.String, run.String
		b.Pushed = meta.FromMicros(pushed)
		b.Tags = []string{}
		if tags.String != "" {
			b.Tags = strings.Split(tags.String, "\n")
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// TagHistory lists every digest tag has pointed at in repo, oldest first.
func (s *Store) TagHistory(ctx context.Context, repo, tag string) ([]builds.TagEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT digest, at FROM tag_history
		WHERE repo = ? AND tag = ? ORDER BY id`, repo, tag)
	if err != nil {
		return nil, fmt.Errorf("sqlite: history of tag %s in %s: %w", tag, repo, err)
	}
	defer rows.Close()
	out := []builds.TagEvent{}
	for rows.Next() {
		var (
			d  string
			at int64
		)
		if err := rows.Scan(&d, &at); err != nil {
			return nil, fmt.Errorf("sqlite: history of tag %s in %s: %w", tag, repo, err)
		}
		out = append(out, builds.TagEvent{Digest: digest.Digest(d), At: meta.FromMicros(at)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: history of tag %s in %s: %w", tag, repo, err)
	}
	return out, nil
}

// TaggedRepositories lists the existing repositories whose tag has a
// history, in lexical order.
func (s *Store) TaggedRepositories(ctx context.Context, tag string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT h.repo FROM tag_history h
		WHERE h.tag = ? AND EXISTS (SELECT 1 FROM repositories r WHERE r.name = h.repo)
		ORDER BY h.repo`, tag)
	if err != nil {
		return nil, fmt.Errorf("sqlite: repositories with tag %s: %w", tag, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var repo string
		if err := rows.Scan(&repo); err != nil {
			return nil, fmt.Errorf("sqlite: repositories with tag %s: %w", tag, err)
		}
		out = append(out, repo)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: repositories with tag %s: %w", tag, err)
	}
	return out, nil
}
