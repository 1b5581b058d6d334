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

// Second factors (account.FactorStore): auth_factors and
// auth_recovery_codes, and the factor columns of auth_sessions. Writing
// them leaves auth_generation alone.

// GetFactors implements account.FactorStore.
func (s *Store) GetFactors(ctx context.Context, user string) (account.Factors, error) {
	f := account.Factors{User: user}
	var (
		confirmed int
		updated   int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT totp_secret, totp_confirmed, updated FROM auth_factors WHERE name = ?`, user).
		Scan(&f.TOTPSecret, &confirmed, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return account.Factors{}, fmt.Errorf("factors of %s: %w", user, account.ErrNotFound)
	}
	if err != nil {
		return account.Factors{}, fmt.Errorf("sqlite: factors: %w", err)
	}
	f.TOTPConfirmed, f.Updated = confirmed != 0, meta.FromMicros(updated)
	rows, err := s.r.QueryContext(ctx, `SELECT hash FROM auth_recovery_codes WHERE name = ? ORDER BY hash`, user)
	if err != nil {
		return account.Factors{}, fmt.Errorf("sqlite: recovery codes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return account.Factors{}, fmt.Errorf("sqlite: recovery codes: %w", err)
		}
		f.RecoveryHashes = append(f.RecoveryHashes, h)
	}
	return f, rows.Err()
}

// PutFactors implements account.FactorStore.
func (s *Store) PutFactors(ctx context.Context, f account.Factors) error {
	updated, err := meta.Micros(f.Updated)
	if err != nil {
		return fmt.Errorf("sqlite: factors: updated: %w", err)
	}
	confirmed := 0
	if f.TOTPConfirmed {
		confirmed = 1
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO auth_factors(name, totp_secret, totp_confirmed, totp_last_step, updated) VALUES (?, ?, ?, 0, ?)
ON CONFLICT(name) DO UPDATE SET totp_secret = excluded.totp_secret, totp_confirmed = excluded.totp_confirmed, updated = excluded.updated`,
			f.User, f.TOTPSecret, confirmed, updated); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_recovery_codes WHERE name = ?`, f.User); err != nil {
			return err
		}
		for _, h := range f.RecoveryHashes {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO auth_recovery_codes(name, hash) VALUES (?, ?)`, f.User, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteFactors implements account.FactorStore.
func (s *Store) DeleteFactors(ctx context.Context, user string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_recovery_codes WHERE name = ?`, user); err != nil {
			return err
		}
		return deleted(tx.ExecContext(ctx, `DELETE FROM auth_factors WHERE name = ?`, user))("factors of "+user, func() error { return nil })
	})
}

// ClaimTOTPStep implements account.FactorStore.
func (s *Store) ClaimTOTPStep(ctx context.Context, user string, step int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE auth_factors SET totp_last_step = ? WHERE name = ? AND totp_last_step < ?`, step, user, step)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM auth_factors WHERE name = ?`, user).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("factors of %s: %w", user, account.ErrNotFound)
		} else if err != nil {
			return err
		}
		return fmt.Errorf("TOTP step %d of %s: %w", step, user, account.ErrReplayed)
	})
}

// UseRecoveryCode implements account.FactorStore.
func (s *Store) UseRecoveryCode(ctx context.Context, user, hash string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM auth_recovery_codes WHERE name = ? AND hash = ?`, user, hash))("recovery code", func() error { return nil })
	})
}

// StepUpSession implements account.FactorStore.
func (s *Store) StepUpSession(ctx context.Context, hash, factor string, at time.Time) error {
	us, err := meta.Micros(at)
	if err != nil {
		return fmt.Errorf("sqlite: step up session: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `UPDATE auth_sessions SET factor = ?, factor_at = max(factor_at, ?) WHERE hash = ?`, factor, us, hash))("session", func() error { return nil })
	})
}
