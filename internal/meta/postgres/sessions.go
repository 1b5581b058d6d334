package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
)

// Browser sessions (account.Sessions): auth_sessions (migration 5), with
// the semantics of the SQLite backend (internal/meta/sqlite/sessions.go).
// Writing them leaves auth_generation alone.

// PutSession implements account.Sessions.
func (s *Store) PutSession(ctx context.Context, se account.Session) error {
	groups := se.Groups
	if groups == nil {
		groups = []string{}
	}
	g, err := json.Marshal(groups)
	if err != nil {
		return err
	}
	sc := []byte("[]")
	if se.Scopes != nil {
		if sc, err = json.Marshal(se.Scopes); err != nil {
			return err
		}
	}
	created, err := meta.Micros(se.Created)
	if err != nil {
		return fmt.Errorf("postgres: session: created: %w", err)
	}
	seen, err := meta.Micros(se.LastSeen)
	if err != nil {
		return fmt.Errorf("postgres: session: last seen: %w", err)
	}
	var factorAt int64
	if !se.FactorAt.IsZero() {
		if factorAt, err = meta.Micros(se.FactorAt); err != nil {
			return fmt.Errorf("postgres: session: factor time: %w", err)
		}
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO auth_sessions(hash, subject, method, groups, scopes, csrf, created, last_seen, factor, factor_at)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $10)`, se.Hash, se.Subject, se.Method, string(g), string(sc), se.CSRF, created, seen, se.Factor, factorAt)
		if err != nil {
			return fmt.Errorf("postgres: session: %w", err)
		}
		return nil
	})
}

// GetSession implements account.Sessions.
func (s *Store) GetSession(ctx context.Context, hash string) (account.Session, error) {
	var (
		se            = account.Session{Hash: hash}
		groups, scope []byte
		created, seen int64
		factorAt      int64
	)
	err := s.pool.QueryRow(ctx, `SELECT subject, method, groups, scopes, csrf, created, last_seen, factor, factor_at FROM auth_sessions WHERE hash = $1`, hash).
		Scan(&se.Subject, &se.Method, &groups, &scope, &se.CSRF, &created, &seen, &se.Factor, &factorAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return account.Session{}, fmt.Errorf("session: %w", account.ErrNotFound)
	}
	if err != nil {
		return account.Session{}, fmt.Errorf("postgres: session: %w", err)
	}
	if err := json.Unmarshal(groups, &se.Groups); err != nil {
		return account.Session{}, fmt.Errorf("postgres: session groups: %w", err)
	}
	if err := json.Unmarshal(scope, &se.Scopes); err != nil {
		return account.Session{}, fmt.Errorf("postgres: session scopes: %w", err)
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
		return fmt.Errorf("postgres: touch session: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE auth_sessions SET last_seen = GREATEST(last_seen, $1) WHERE hash = $2`, us, hash)
	if err != nil {
		return fmt.Errorf("postgres: touch session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("session: %w", account.ErrNotFound)
	}
	return nil
}

// DeleteSession implements account.Sessions.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_sessions WHERE hash = $1`, hash)
	if err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("session: %w", account.ErrNotFound)
	}
	return nil
}

// PurgeSessions implements account.Sessions.
func (s *Store) PurgeSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int, error) {
	idle, err := meta.Micros(idleBefore)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge sessions: %w", err)
	}
	created, err := meta.Micros(createdBefore)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge sessions: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_sessions WHERE last_seen < $1 OR created < $2`, idle, created)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
