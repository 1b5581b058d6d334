package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/retention"
)

var (
	_ retention.Store = (*Store)(nil)
	_ policy.Store    = (*Store)(nil)
)

const lockColumns = `repo, digest, mode, retain_until, legal_hold, updated`

func scanLock(row interface{ Scan(...any) error }) (retention.Lock, error) {
	var (
		l              retention.Lock
		d              string
		until, updated int64
		hold           bool
	)
	if err := row.Scan(&l.Repo, &d, &l.Mode, &until, &hold, &updated); err != nil {
		return l, err
	}
	l.Digest = digest.Digest(d)
	l.LegalHold = hold
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

// GetLock implements retention.Store.
func (s *Store) GetLock(ctx context.Context, repo string, d digest.Digest) (retention.Lock, error) {
	l, err := scanLock(s.r.QueryRowContext(ctx, `SELECT `+lockColumns+` FROM retention WHERE repo = ? AND digest = ?`, repo, d.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("%s@%s: %w", repo, d, retention.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("sqlite: get lock: %w", err)
	}
	return l, nil
}

// SetLock implements retention.Store.
func (s *Store) SetLock(ctx context.Context, repo string, d digest.Digest, fn func(*retention.Lock) (retention.Lock, error)) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var cur *retention.Lock
		l, err := scanLock(tx.QueryRowContext(ctx, `SELECT `+lockColumns+` FROM retention WHERE repo = ? AND digest = ?`, repo, d.String()))
		switch {
		case err == nil:
			cur = &l
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: get lock: %w", err)
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		until, updated, err := lockTimes(next)
		if err != nil {
			return fmt.Errorf("sqlite: set lock of %s@%s: %w", repo, d, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO retention(`+lockColumns+`) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(repo, digest) DO UPDATE SET mode = excluded.mode, retain_until = excluded.retain_until,
	legal_hold = excluded.legal_hold, updated = excluded.updated`,
			repo, d.String(), next.Mode, until, next.LegalHold, updated)
		if err != nil {
			return fmt.Errorf("sqlite: set lock: %w", err)
		}
		return nil
	})
}

func (s *Store) queryLocks(ctx context.Context, query string, args ...any) ([]retention.Lock, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: locks: %w", err)
	}
	defer rows.Close()
	var out []retention.Lock
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: locks: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ListLocks implements retention.Store.
func (s *Store) ListLocks(ctx context.Context, repo string) ([]retention.Lock, error) {
	return s.queryLocks(ctx, `SELECT `+lockColumns+` FROM retention WHERE repo = ? ORDER BY digest`, repo)
}

// Protecting implements retention.Store: it walks from d up through the
// manifests that reference it (and the indexes that reference those) and
// returns the locks recorded on any of them. Locks of manifests no longer
// present are ignored.
func (s *Store) Protecting(ctx context.Context, d digest.Digest, repo string) ([]retention.Lock, error) {
	return s.queryLocks(ctx, `WITH RECURSIVE up(repo, digest) AS (
	SELECT repo, digest FROM manifests WHERE digest = ?1 AND (?2 = '' OR repo = ?2)
	UNION
	SELECT repo, manifest FROM manifest_refs WHERE ref = ?1 AND (?2 = '' OR repo = ?2)
	UNION
	SELECT r.repo, r.manifest FROM manifest_refs r JOIN up ON r.repo = up.repo AND r.ref = up.digest AND r.kind = 'manifest'
)
SELECT t.repo, t.digest, t.mode, t.retain_until, t.legal_hold, t.updated
FROM retention t JOIN up ON t.repo = up.repo AND t.digest = up.digest
ORDER BY t.repo, t.digest`, d.String(), repo)
}

// PutPolicy implements policy.Store.
func (s *Store) PutPolicy(ctx context.Context, pattern string, body []byte, now time.Time, check func([]byte) error) (int, error) {
	var version int
	err := s.write(ctx, func(tx *sql.Tx) error {
		var cur []byte
		err := tx.QueryRowContext(ctx, `SELECT version, body FROM policies WHERE pattern = ? ORDER BY version DESC LIMIT 1`, pattern).Scan(&version, &cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: get policy: %w", err)
		}
		if check != nil {
			if err := check(cur); err != nil {
				return err
			}
		}
		version++
		created, err := meta.Micros(now)
		if err != nil {
			return fmt.Errorf("sqlite: put policy: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO policies(pattern, version, body, created) VALUES (?, ?, ?, ?)`,
			pattern, version, string(body), created); err != nil {
			return fmt.Errorf("sqlite: put policy: %w", err)
		}
		return nil
	})
	return version, err
}

// GetPolicy implements policy.Store.
func (s *Store) GetPolicy(ctx context.Context, pattern string, version int) (policy.Record, error) {
	q := `SELECT pattern, version, body, created FROM policies WHERE pattern = ? AND version = ?`
	args := []any{pattern, version}
	if version == 0 {
		q = `SELECT pattern, version, body, created FROM policies WHERE pattern = ? ORDER BY version DESC LIMIT 1`
		args = args[:1]
	}
	rec, err := scanPolicy(s.r.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("%q version %d: %w", pattern, version, policy.ErrNotFound)
	}
	return rec, err
}

// CurrentPolicies implements policy.Store.
func (s *Store) CurrentPolicies(ctx context.Context) ([]policy.Record, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.pattern, p.version, p.body, p.created FROM policies p
WHERE p.version = (SELECT MAX(version) FROM policies q WHERE q.pattern = p.pattern) ORDER BY p.pattern`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: policies: %w", err)
	}
	defer rows.Close()
	var out []policy.Record
	for rows.Next() {
		rec, err := scanPolicy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

func scanPolicy(row interface{ Scan(...any) error }) (policy.Record, error) {
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
