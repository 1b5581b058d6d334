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
		var n int64
		for _, q := range []string{`DELETE FROM auth_factors WHERE name = ?`, `DELETE FROM auth_webauthn WHERE name = ?`} {
			res, err := tx.ExecContext(ctx, q, user)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		if n == 0 {
			return fmt.Errorf("factors of %s: %w", user, account.ErrNotFound)
		}
		return nil
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

// PutWebAuthnKey implements account.FactorStore.
func (s *Store) PutWebAuthnKey(ctx context.Context, k account.WebAuthnKey) error {
	created, err := meta.Micros(k.Created)
	if err != nil {
		return fmt.Errorf("sqlite: webauthn key: created: %w", err)
	}
	var used int64
	if !k.LastUsed.IsZero() {
		if used, err = meta.Micros(k.LastUsed); err != nil {
			return fmt.Errorf("sqlite: webauthn key: last used: %w", err)
		}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO auth_webauthn(id, name, label, record, sign_count, created, last_used) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
			k.ID, k.User, k.Name, k.Record, int64(k.SignCount), created, used)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("webauthn key %s: %w", k.ID, account.ErrExists)
		}
		return nil
	})
}

// WebAuthnKeys implements account.FactorStore.
func (s *Store) WebAuthnKeys(ctx context.Context, user string) ([]account.WebAuthnKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, label, record, sign_count, created, last_used FROM auth_webauthn WHERE name = ? ORDER BY created, id`, user)
	if err != nil {
		return nil, fmt.Errorf("sqlite: webauthn keys: %w", err)
	}
	defer rows.Close()
	keys := []account.WebAuthnKey{}
	for rows.Next() {
		k := account.WebAuthnKey{User: user}
		var count, created, used int64
		if err := rows.Scan(&k.ID, &k.Name, &k.Record, &count, &created, &used); err != nil {
			return nil, fmt.Errorf("sqlite: webauthn keys: %w", err)
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
		return fmt.Errorf("sqlite: use webauthn key: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE auth_webauthn SET sign_count = ?, last_used = ? WHERE name = ? AND id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
			int64(count), us, user, id, int64(count), int64(count))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM auth_webauthn WHERE name = ? AND id = ?`, user, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("webauthn key %s of %s: %w", id, user, account.ErrNotFound)
		} else if err != nil {
			return err
		}
		return fmt.Errorf("webauthn key %s of %s: signature counter %d not above the stored one: %w", id, user, count, account.ErrReplayed)
	})
}

// DeleteWebAuthnKey implements account.FactorStore.
func (s *Store) DeleteWebAuthnKey(ctx context.Context, user, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM auth_webauthn WHERE name = ? AND id = ?`, user, id))("webauthn key "+id, func() error { return nil })
	})
}
