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

// Second factors (account.FactorStore): auth_factors and
// auth_recovery_codes, and the factor columns of auth_sessions. Writing
// them leaves auth_generation alone.

// GetFactors implements account.FactorStore.
func (s *Store) GetFactors(ctx context.Context, user string) (account.Factors, error) {
	f := account.Factors{User: user}
	var updated int64
	err := s.pool.QueryRow(ctx, `SELECT totp_secret, totp_confirmed, updated FROM auth_factors WHERE name = $1`, user).
		Scan(&f.TOTPSecret, &f.TOTPConfirmed, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return account.Factors{}, fmt.Errorf("factors of %s: %w", user, account.ErrNotFound)
	}
	if err != nil {
		return account.Factors{}, fmt.Errorf("postgres: factors: %w", err)
	}
	f.Updated = meta.FromMicros(updated)
	rows, err := s.pool.Query(ctx, `SELECT hash FROM auth_recovery_codes WHERE name = $1 ORDER BY hash`, user)
	if err != nil {
		return account.Factors{}, fmt.Errorf("postgres: recovery codes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return account.Factors{}, fmt.Errorf("postgres: recovery codes: %w", err)
		}
		f.RecoveryHashes = append(f.RecoveryHashes, h)
	}
	return f, rows.Err()
}

// PutFactors implements account.FactorStore.
func (s *Store) PutFactors(ctx context.Context, f account.Factors) error {
	updated, err := meta.Micros(f.Updated)
	if err != nil {
		return fmt.Errorf("postgres: factors: updated: %w", err)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO auth_factors(name, totp_secret, totp_confirmed, totp_last_step, updated) VALUES ($1, $2, $3, 0, $4)
ON CONFLICT(name) DO UPDATE SET totp_secret = excluded.totp_secret, totp_confirmed = excluded.totp_confirmed, updated = excluded.updated`,
			f.User, f.TOTPSecret, f.TOTPConfirmed, updated); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM auth_recovery_codes WHERE name = $1`, f.User); err != nil {
			return err
		}
		for _, h := range f.RecoveryHashes {
			if _, err := tx.Exec(ctx, `INSERT INTO auth_recovery_codes(name, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING`, f.User, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteFactors implements account.FactorStore.
func (s *Store) DeleteFactors(ctx context.Context, user string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM auth_recovery_codes WHERE name = $1`, user); err != nil {
			return err
		}
		var n int64
		for _, q := range []string{`DELETE FROM auth_factors WHERE name = $1`, `DELETE FROM auth_webauthn WHERE name = $1`} {
			tag, err := tx.Exec(ctx, q, user)
			if err != nil {
				return err
			}
			n += tag.RowsAffected()
		}
		if n == 0 {
			return fmt.Errorf("factors of %s: %w", user, account.ErrNotFound)
		}
		return nil
	})
}

// ClaimTOTPStep implements account.FactorStore.
func (s *Store) ClaimTOTPStep(ctx context.Context, user string, step int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE auth_factors SET totp_last_step = $1 WHERE name = $2 AND totp_last_step < $1`, step, user)
	if err != nil {
		return fmt.Errorf("postgres: claim TOTP step: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var one int
	switch err := s.pool.QueryRow(ctx, `SELECT 1 FROM auth_factors WHERE name = $1`, user).Scan(&one); {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("factors of %s: %w", user, account.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: claim TOTP step: %w", err)
	}
	return fmt.Errorf("TOTP step %d of %s: %w", step, user, account.ErrReplayed)
}

// UseRecoveryCode implements account.FactorStore.
func (s *Store) UseRecoveryCode(ctx context.Context, user, hash string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_recovery_codes WHERE name = $1 AND hash = $2`, user, hash)
	if err != nil {
		return fmt.Errorf("postgres: use recovery code: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("recovery code: %w", account.ErrNotFound)
	}
	return nil
}

// StepUpSession implements account.FactorStore.
func (s *Store) StepUpSession(ctx context.Context, hash, factor string, at time.Time) error {
	us, err := meta.Micros(at)
	if err != nil {
		return fmt.Errorf("postgres: step up session: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE auth_sessions SET factor = $1, factor_at = GREATEST(factor_at, $2) WHERE hash = $3`, factor, us, hash)
	if err != nil {
		return fmt.Errorf("postgres: step up session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("session: %w", account.ErrNotFound)
	}
	return nil
}

// PutWebAuthnKey implements account.FactorStore.
func (s *Store) PutWebAuthnKey(ctx context.Context, k account.WebAuthnKey) error {
	created, err := meta.Micros(k.Created)
	if err != nil {
		return fmt.Errorf("postgres: webauthn key: created: %w", err)
	}
	var used int64
	if !k.LastUsed.IsZero() {
		if used, err = meta.Micros(k.LastUsed); err != nil {
			return fmt.Errorf("postgres: webauthn key: last used: %w", err)
		}
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO auth_webauthn(id, name, label, record, sign_count, created, last_used) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(id) DO NOTHING`,
		k.ID, k.User, k.Name, k.Record, int64(k.SignCount), created, used)
	if err != nil {
		return fmt.Errorf("postgres: webauthn key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("webauthn key %s: %w", k.ID, account.ErrExists)
	}
	return nil
}

// WebAuthnKeys implements account.FactorStore.
func (s *Store) WebAuthnKeys(ctx context.Context, user string) ([]account.WebAuthnKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, label, record, sign_count, created, last_used FROM auth_webauthn WHERE name = $1 ORDER BY created, id`, user)
	if err != nil {
		return nil, fmt.Errorf("postgres: webauthn keys: %w", err)
	}
	defer rows.Close()
	keys := []account.WebAuthnKey{}
	for rows.Next() {
		k := account.WebAuthnKey{User: user}
		var count, created, used int64
		if err := rows.Scan(&k.ID, &k.Name, &k.Record, &count, &created, &used); err != nil {
			return nil, fmt.Errorf("postgres: webauthn keys: %w", err)
		}
		k.SignCount, k.Created = uint32(count), meta.FromMicros(created)
		if used != 0 {
			k.LastUsed = meta.FromMicros(used)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// UseWebAuthnKey implements account.FactorStore.
func (s *Store) UseWebAuthnKey(ctx context.Context, user, id string, count uint32, at time.Time) error {
	us, err := meta.Micros(at)
	if err != nil {
		return fmt.Errorf("postgres: use webauthn key: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE auth_webauthn SET sign_count = $1, last_used = $2 WHERE name = $3 AND id = $4 AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))`,
		int64(count), us, user, id)
	if err != nil {
		return fmt.Errorf("postgres: use webauthn key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var one int
	switch err := s.pool.QueryRow(ctx, `SELECT 1 FROM auth_webauthn WHERE name = $1 AND id = $2`, user, id).Scan(&one); {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("webauthn key %s of %s: %w", id, user, account.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: use webauthn key: %w", err)
	}
	return fmt.Errorf("webauthn key %s of %s: signature counter %d not above the stored one: %w", id, user, count, account.ErrReplayed)
}

// DeleteWebAuthnKey implements account.FactorStore.
func (s *Store) DeleteWebAuthnKey(ctx context.Context, user, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_webauthn WHERE name = $1 AND id = $2`, user, id)
	if err != nil {
		return fmt.Errorf("postgres: delete webauthn key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("webauthn key %s: %w", id, account.ErrNotFound)
	}
	return nil
}
