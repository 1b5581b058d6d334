package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
)

// Started sign-in ceremonies (account.Challenges): auth_challenges
// (migration 13). Writing them leaves auth_generation alone.

// PutChallenge implements account.Challenges.
func (s *Store) PutChallenge(ctx context.Context, c account.Challenge) error {
	exp, err := meta.Micros(c.Expires)
	if err != nil {
		return fmt.Errorf("sqlite: challenge: expires: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO auth_challenges(kind, key, name, data, expires) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(kind, key) DO UPDATE SET name = excluded.name, data = excluded.data, expires = excluded.expires`,
			c.Kind, c.Key, c.User, nonNilBytes(c.Data), exp)
		return err
	})
}

// GetChallenge implements account.Challenges.
func (s *Store) GetChallenge(ctx context.Context, kind, key, user string, now time.Time) (account.Challenge, error) {
	at, err := meta.Micros(now)
	if err != nil {
		return account.Challenge{}, fmt.Errorf("sqlite: challenge: %w", err)
	}
	c := account.Challenge{Kind: kind, Key: key, User: user}
	var exp int64
	err = s.r.QueryRowContext(ctx, `SELECT data, expires FROM auth_challenges WHERE kind = ? AND key = ? AND name = ? AND expires >= ?`, kind, key, user, at).
		Scan(&c.Data, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return account.Challenge{}, fmt.Errorf("challenge: %w", account.ErrNotFound)
	}
	if err != nil {
		return account.Challenge{}, fmt.Errorf("sqlite: challenge: %w", err)
	}
	c.Expires = meta.FromMicros(exp)
	return c, nil
}

// TakeChallenge implements account.Challenges: one DELETE ... RETURNING
// on the single writer, so of two takes one finds the row.
func (s *Store) TakeChallenge(ctx context.Context, kind, key, user string, now time.Time) (account.Challenge, error) {
	at, err := meta.Micros(now)
	if err != nil {
		return account.Challenge{}, fmt.Errorf("sqlite: challenge: %w", err)
	}
	c := account.Challenge{Kind: kind, Key: key, User: user}
	var exp int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `DELETE FROM auth_challenges WHERE kind = ? AND key = ? AND name = ? RETURNING data, expires`, kind, key, user).
			Scan(&c.Data, &exp)
	})
	if errors.Is(err, sql.ErrNoRows) || err == nil && exp < at {
		return account.Challenge{}, fmt.Errorf("challenge: %w", account.ErrNotFound)
	}
	if err != nil {
		return account.Challenge{}, fmt.Errorf("sqlite: take challenge: %w", err)
	}
	c.Expires = meta.FromMicros(exp)
	return c, nil
}

// PurgeChallenges implements account.Challenges.
func (s *Store) PurgeChallenges(ctx context.Context, before time.Time) (int, error) {
	at, err := meta.Micros(before)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge challenges: %w", err)
	}
	var n int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM auth_challenges WHERE expires < ?`, at)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// nonNilBytes stores an empty value, never NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
