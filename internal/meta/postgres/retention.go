package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/retention"
)

// Retention locks (retention.Store) and versioned repository policies
// (policy.Store), migration 2. SetLock and PutPolicy serialise on a
// transaction-level advisory lock of the artifact or pattern, so the
// callback they run always sees the value the write will replace, also
// when the row does not exist yet.

var (
	_ retention.Store = (*Store)(nil)
	_ policy.Store    = (*Store)(nil)
)

const lockColumns = `repo, digest, mode, retain_until, legal_hold, updated`

func scanLock(row pgx.CollectableRow) (retention.Lock, error) {
	var (
		l              retention.Lock
		d              string
		until, updated int64
	)
	if err := row.Scan(&l.Repo, &d, &l.Mode, &until, &l.LegalHold, &updated); err != nil {
		return l, err
	}
	l.Digest = digest.Digest(d)
	if until != 0 {
		l.RetainUntil = meta.FromMicros(until)
	}
	l.Updated = meta.FromMicros(updated)
	return l, nil
}

// lockTimes returns the stored forms of l's retain-until date (0: none)
// and update time.
func lockTimes(l retention.Lock) (until, updated int64, err error) {
	if !l.RetainUntil.IsZero() {
		if until, err = meta.Micros(l.RetainUntil); err != nil {
			return 0, 0, fmt.Errorf("retain until: %w", err)
		}
	}
	if updated, err = meta.Micros(l.Updated); err != nil {
		return 0, 0, fmt.Errorf("updated: %w", err)
	}
	return until, updated, nil
}

// getLock reads the lock of repo@d, or pgx.ErrNoRows.
func getLock(ctx context.Context, q querier, repo string, d digest.Digest) (retention.Lock, error) {
	rows, err := q.Query(ctx, `SELECT `+lockColumns+` FROM retention WHERE repo = $1 AND digest = $2`, repo, d.String())
	if err != nil {
		return retention.Lock{}, err
	}
	return pgx.CollectExactlyOneRow(rows, scanLock)
}

// GetLock returns the retention lock of repo@d, or an error wrapping
// retention.ErrNotFound.
func (s *Store) GetLock(ctx context.Context, repo string, d digest.Digest) (retention.Lock, error) {
	l, err := getLock(ctx, s.pool, repo, d)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("%s@%s: %w", repo, d, retention.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("postgres: get lock of %s@%s: %w", repo, d, err)
	}
	return l, nil
}

// SetLock records the lock fn returns for repo@d. fn runs inside the
// transaction with the current lock (nil when none); its error is returned
// unchanged and nothing is written. fn may run again if the transaction is
// retried after a serialization failure.
func (s *Store) SetLock(ctx context.Context, repo string, d digest.Digest, fn func(*retention.Lock) (retention.Lock, error)) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('custody.retention.' || $1 || '@' || $2, 0))`,
			repo, d.String()); err != nil {
			return fmt.Errorf("postgres: lock retention of %s@%s: %w", repo, d, err)
		}
		var cur *retention.Lock
		l, err := getLock(ctx, tx, repo, d)
		switch {
		case err == nil:
			cur = &l
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("postgres: get lock of %s@%s: %w", repo, d, err)
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		until, updated, err := lockTimes(next)
		if err != nil {
			return fmt.Errorf("postgres: set lock of %s@%s: %w", repo, d, err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO retention(`+lockColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (repo, digest) DO UPDATE SET mode = excluded.mode, retain_until = excluded.retain_until,
				legal_hold = excluded.legal_hold, updated = excluded.updated`,
			repo, d.String(), next.Mode, until, next.LegalHold, updated)
		if err != nil {
			return fmt.Errorf("postgres: set lock of %s@%s: %w", repo, d, err)
		}
		return nil
	})
}

func (s *Store) queryLocks(ctx context.Context, query string, args ...any) ([]retention.Lock, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: locks: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanLock)
	if err != nil {
		return nil, fmt.Errorf("postgres: locks: %w", err)
	}
	return out, nil
}

// ListLocks returns the locks of repo's artifacts, ordered by digest.
func (s *Store) ListLocks(ctx context.Context, repo string) ([]retention.Lock, error) {
	return s.queryLocks(ctx, `SELECT `+lockColumns+` FROM retention WHERE repo = $1 ORDER BY digest`, repo)
}

// Protecting walks from d up through the manifests that reference it (and
// the indexes that reference those), in repo or in every repository when
// repo is "", and returns the locks recorded on any of them, ordered by
// repository and digest. Locks of manifests no longer present are ignored.
func (s *Store) Protecting(ctx context.Context, d digest.Digest, repo string) ([]retention.Lock, error) {
	return s.queryLocks(ctx, `WITH RECURSIVE up(repo, digest) AS (
	SELECT repo, digest FROM manifests WHERE digest = $1 AND ($2 = '' OR repo = $2)
	UNION
	SELECT repo, manifest FROM manifest_refs WHERE ref = $1 AND ($2 = '' OR repo = $2)
	UNION
	SELECT r.repo, r.manifest FROM manifest_refs r JOIN up ON r.repo = up.repo AND r.ref = up.digest AND r.kind = 'manifest'
)
SELECT t.repo, t.digest, t.mode, t.retain_until, t.legal_hold, t.updated
FROM retention t JOIN up ON t.repo = up.repo AND t.digest = up.digest
ORDER BY t.repo, t.digest`, d.String(), repo)
}

// PutPolicy stores body as the next version of pattern's policy and
// returns that version (1 for the first). check runs inside the
// transaction with the current body (nil when none); its error is returned
// unchanged and nothing is written.
func (s *Store) PutPolicy(ctx context.Context, pattern string, body []byte, now time.Time, check func([]byte) error) (int, error) {
	var version int
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('custody.policy.' || $1, 0))`,
			pattern); err != nil {
			return fmt.Errorf("postgres: lock policy %q: %w", pattern, err)
		}
		var cur *string
		version = 0
		err := tx.QueryRow(ctx, `SELECT version, body FROM policies WHERE pattern = $1 ORDER BY version DESC LIMIT 1`,
			pattern).Scan(&version, &cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: get policy %q: %w", pattern, err)
		}
		if check != nil {
			var b []byte
			if cur != nil {
				b = []byte(*cur)
			}
			if err := check(b); err != nil {
				return err
			}
		}
		version++
		created, err := meta.Micros(now)
		if err != nil {
			return fmt.Errorf("postgres: put policy %q: %w", pattern, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO policies(pattern, version, body, created) VALUES ($1, $2, $3, $4)`,
			pattern, version, string(body), created); err != nil {
			return fmt.Errorf("postgres: put policy %q: %w", pattern, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// GetPolicy returns version of pattern's policy, the latest when version
// is 0, or an error wrapping policy.ErrNotFound.
func (s *Store) GetPolicy(ctx context.Context, pattern string, version int) (policy.Record, error) {
	q := `SELECT pattern, version, body, created FROM policies WHERE pattern = $1 AND version = $2`
	args := []any{pattern, version}
	if version == 0 {
		q = `SELECT pattern, version, body, created FROM policies WHERE pattern = $1 ORDER BY version DESC LIMIT 1`
		args = args[:1]
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return policy.Record{}, fmt.Errorf("postgres: get policy %q: %w", pattern, err)
	}
	rec, err := pgx.CollectExactlyOneRow(rows, scanPolicy)
	if errors.Is(err, pgx.ErrNoRows) {
		return rec, fmt.Errorf("%q version %d: %w", pattern, version, policy.ErrNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("postgres: get policy %q: %w", pattern, err)
	}
	return rec, nil
}

// CurrentPolicies returns the latest version of every pattern, ordered by
// pattern.
func (s *Store) CurrentPolicies(ctx context.Context) ([]policy.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (pattern) pattern, version, body, created
		FROM policies ORDER BY pattern, version DESC`)
	if err != nil {
		return nil, fmt.Errorf("postgres: policies: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanPolicy)
	if err != nil {
		return nil, fmt.Errorf("postgres: policies: %w", err)
	}
	return out, nil
}

func scanPolicy(row pgx.CollectableRow) (policy.Record, error) {
	var (
		rec     policy.Record
		body    string
		created int64
	)
	if err := row.Scan(&rec.Pattern, &rec.Version, &body, &created); err != nil {
		return rec, err
	}
	rec.Body = []byte(body)
	rec.Created = meta.FromMicros(created)
	return rec, nil
}
