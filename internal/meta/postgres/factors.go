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
		tag, err := tx.Exec(ctx, `DELETE FROM auth_factors WHERE name = $1`, user)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
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
