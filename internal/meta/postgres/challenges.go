package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
)

// Started sign-in ceremonies (account.Challenges): auth_challenges
// (migration 11), with the semantics of the SQLite backend
// (internal/meta/sqlite/challenges.go). Writing them leaves
// auth_generation alone.

// PutChallenge implements account.Challenges.
func (s *Store) PutChallenge(ctx context.Context, c account.Challenge) error {
	exp, err := meta.Micros(c.Expires)
	if err != nil {
		return fmt.Errorf("postgres: challenge: expires: %w", err)
	}
	data := c.Data
	if data == nil {
		data = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO auth_challenges(kind, key, name, data, expires) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (kind, key) DO UPDATE SET name = excluded.name, data = excluded.data, expires = excluded.expires`,
		c.Kind, c.Key, c.User, data, exp); err != nil {
		return fmt.Errorf("postgres: put challenge: %w", err)
	}
	return nil
}

// GetChallenge implements account.Challenges.
func (s *Store) GetChallenge(ctx context.Context, kind, key, user string, now time.Time) (account.Challenge, error) {
	at, err := meta.Micros(now)
	if err != nil {
		return account.Challenge{}, fmt.Errorf("postgres: challenge: %w", err)
	}
	c := account.Challenge{Kind: kind, Key: key, User: user}
	var exp int64
	err = s.pool.QueryRow(ctx, `SELECT data, expires FROM auth_challenges WHERE kind = $1 AND key = $2 AND name = $3 AND expires >= $4`, kind, key, user, at).
		Scan(&c.Data, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return account.Challenge{}, fmt.Errorf("challenge: %w", account.ErrNotFound)
	}
	if err != nil {
		return account.Challenge{}, fmt.Errorf("postgres: challenge: %w", err)
	}
	c.Expires = meta.FromMicros(exp)
	return c, nil
}

// TakeChallenge implements account.Challenges: one DELETE ... RETURNING,
// so of two takes on any replicas only one finds the row (the other waits
// for the first's row lock and then finds it gone).
func (s *Store) TakeChallenge(ctx context.Context, kind, key, user string, now time.Time) (account.Challenge, error) {
	at, err := meta.Micros(now)
	if err != nil {
		return account.Challenge{}, fmt.Errorf("postgres: challenge: %w", err)
	}
	c := account.Challenge{Kind: kind, Key: key, User: user}
	var exp int64
	err = s.pool.QueryRow(ctx, `DELETE FROM auth_challenges WHERE kind = $1 AND key = $2 AND name = $3 RETURNING data, expires`, kind, key, user).
		Scan(&c.Data, &exp)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && exp < at {
		return account.Challenge{}, fmt.Errorf("challenge: %w", account.ErrNotFound)
	}
	if err != nil {
		return account.Challenge{}, fmt.Errorf("postgres: take challenge: %w", err)
	}
	c.Expires = meta.FromMicros(exp)
	return c, nil
}

// PurgeChallenges implements account.Challenges.
func (s *Store) PurgeChallenges(ctx context.Context, before time.Time) (int, error) {
	at, err := meta.Micros(before)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge challenges: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_challenges WHERE expires < $1`, at)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge challenges: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
