package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
)

// Browser sessions (account.Sessions): auth_sessions (migration 7).
// Writing them leaves auth_generation alone.

// PutSession implements account.Sessions.
func (s *Store) PutSession(ctx context.Context, se account.Session) error {
	groups, err := json.Marshal(nonNil(se.Groups))
	if err != nil {
		return err
	}
	scopes := []byte("[]")
	if se.Scopes != nil {
		if scopes, err = json.Marshal(se.Scopes); err != nil {
			return err
		}
	}
	created, err := meta.Micros(se.Created)
	if err != nil {
		return fmt.Errorf("sqlite: session: created: %w", err)
	}
	seen, err := meta.Micros(se.LastSeen)
	if err != nil {
		return fmt.Errorf("sqlite: session: last seen: %w", err)
	}
	var factorAt int64
	if !se.FactorAt.IsZero() {
		if factorAt, err = meta.Micros(se.FactorAt); err != nil {
			return fmt.Errorf("sqlite: session: factor time: %w", err)
		}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO auth_sessions(hash, subject, method, groups_json, scopes_json, csrf, created, last_seen, factor, factor_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, se.Hash, se.Subject, se.Method, string(groups), string(scopes), se.CSRF, created, seen, se.Factor, factorAt)
		return err
	})
}

// GetSession implements account.Sessions.
func (s *Store) GetSession(ctx context.Context, hash string) (account.Session, error) {
	var (
		se            = account.Session{Hash: hash}
		groups, scope string
		created, seen int64
		factorAt      int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT subject, method, groups_json, scopes_json, csrf, created, last_seen, factor, factor_at FROM auth_sessions WHERE hash = ?`, hash).
		Scan(&se.Subject, &se.Method, &groups, &scope, &se.CSRF, &created, &seen, &se.Factor, &factorAt)
	if errors.Is(err, sql.ErrNoRows) {
		return account.Session{}, fmt.Errorf("session: %w", account.ErrNotFound)
	}
	if err != nil {
		return account.Session{}, fmt.Errorf("sqlite: session: %w", err)
	}
	if err := json.Unmarshal([]byte(groups), &se.Groups); err != nil {
		return account.Session{}, fmt.Errorf("sqlite: session groups: %w", err)
	}
	if err := json.Unmarshal([]byte(scope), &se.Scopes); err != nil {
		return account.Session{}, fmt.Errorf("sqlite: session scopes: %w", err)
	}
	if len(se.Scopes) == 0 {
		se.Scopes = nil
	}
	if len(se.Groups) == 0 {
		se.Groups = nil
	}
	se.Created, se.LastSeen = meta.FromMicros(created), meta.FromMicros(seen)
	if factorAt != 0 {
		se.FactorAt = meta.FromMicros(factorAt)
	}
	return se, nil
}

// TouchSession implements account.Sessions.
func (s *Store) TouchSession(ctx context.Context, hash string, at time.Time) error {
	us, err := meta.Micros(at)
	if err != nil {
		return fmt.Errorf("sqlite: touch session: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `UPDATE auth_sessions SET last_seen = max(last_seen, ?) WHERE hash = ?`, us, hash))("session", func() error { return nil })
	})
}

// DeleteSession implements account.Sessions.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM auth_sessions WHERE hash = ?`, hash))("session", func() error { return nil })
	})
}

// PurgeSessions implements account.Sessions.
func (s *Store) PurgeSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int, error) {
	idle, err := meta.Micros(idleBefore)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge sessions: %w", err)
	}
	created, err := meta.Micros(createdBefore)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge sessions: %w", err)
	}
	var n int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM auth_sessions WHERE last_seen < ? OR created < ?`, idle, created)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
