package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	auth "github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
)

var _ auth.Store = (*Store)(nil)

func bumpAuth(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE auth_generation SET gen = gen + 1 WHERE id = 1`)
	return err
}

// AuthGeneration implements auth.Store.
func (s *Store) AuthGeneration(ctx context.Context) (int64, error) {
	var g int64
	err := s.r.QueryRowContext(ctx, `SELECT gen FROM auth_generation WHERE id = 1`).Scan(&g)
	if err != nil {
		return 0, fmt.Errorf("sqlite: auth generation: %w", err)
	}
	return g, nil
}

// AuthState implements auth.Store.
func (s *Store) AuthState(ctx context.Context) (auth.State, error) {
	var st auth.State
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT gen FROM auth_generation WHERE id = 1`).Scan(&st.Generation); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT name, password_hash, groups_json, created, disabled FROM auth_users ORDER BY name`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				u        auth.User
				groups   string
				created  int64
				disabled sql.NullInt64
			)
			if err := rows.Scan(&u.Name, &u.PasswordHash, &groups, &created, &disabled); err != nil {
				rows.Close()
				return err
			}
			if err := json.Unmarshal([]byte(groups), &u.Groups); err != nil {
				rows.Close()
				return fmt.Errorf("user %s: groups: %w", u.Name, err)
			}
			u.Created = meta.FromMicros(created)
			if disabled.Valid {
				u.Disabled = meta.FromMicros(disabled.Int64)
			}
			st.Users = append(st.Users, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT subject, role, repository FROM auth_grants ORDER BY subject, role, repository`)
		if err != nil {
			return err
		}
		for rows.Next() {
			g := auth.Grant{Source: "api"}
			if err := rows.Scan(&g.Subject, &g.Role, &g.Repository); err != nil {
				rows.Close()
				return err
			}
			st.Grants = append(st.Grants, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT id, hash, owner, name, scopes_json, created, expires, revoked, sign_in FROM auth_tokens ORDER BY created, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				t                         auth.Token
				scopes                    string
				created, expires, revoked int64
				signIn                    int
			)
			if err := rows.Scan(&t.ID, &t.Hash, &t.Owner, &t.Name, &scopes, &created, &expires, &revoked, &signIn); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
				return fmt.Errorf("token %s: scopes: %w", t.ID, err)
			}
			t.SignIn = signIn != 0
			t.Created = meta.FromMicros(created)
			t.Expires = meta.FromMicros(expires)
			if revoked != 0 {
				t.Revoked = meta.FromMicros(revoked)
			}
			st.Tokens = append(st.Tokens, t)
		}
		return rows.Err()
	})
	if err != nil {
		return auth.State{}, fmt.Errorf("sqlite: auth state: %w", err)
	}
	return st, nil
}

// PutUser implements auth.Store.
func (s *Store) PutUser(ctx context.Context, u auth.User) error {
	groups, err := json.Marshal(nonNil(u.Groups))
	if err != nil {
		return err
	}
	created, err := meta.Micros(u.Created)
	if err != nil {
		return fmt.Errorf("sqlite: user %s: created: %w", u.Name, err)
	}
	var disabled sql.NullInt64
	if !u.Disabled.IsZero() {
		us, err := meta.Micros(u.Disabled)
		if err != nil {
			return fmt.Errorf("sqlite: user %s: disabled: %w", u.Name, err)
		}
		disabled = sql.NullInt64{Int64: us, Valid: true}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO auth_users(name, password_hash, groups_json, created, disabled) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, groups_json = excluded.groups_json`,
			u.Name, u.PasswordHash, string(groups), created, disabled); err != nil {
			return err
		}
		return bumpAuth(ctx, tx)
	})
}

// SetUserDisabled implements auth.Store.
func (s *Store) SetUserDisabled(ctx context.Context, name string, at time.Time) error {
	var disabled sql.NullInt64
	if !at.IsZero() {
		us, err := meta.Micros(at)
		if err != nil {
			return fmt.Errorf("sqlite: disable user %s: %w", name, err)
		}
		disabled = sql.NullInt64{Int64: us, Valid: true}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `UPDATE auth_users SET disabled = CASE WHEN ?1 IS NULL THEN NULL ELSE COALESCE(disabled, ?1) END WHERE name = ?2`,
			disabled, name))("user "+name, func() error {
			if disabled.Valid {
				if _, err := tx.ExecContext(ctx, `DELETE FROM auth_sessions WHERE subject = ?`, name); err != nil {
					return err
				}
			}
			return bumpAuth(ctx, tx)
		})
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DeleteUser implements auth.Store.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM auth_users WHERE name = ?`, name))("user "+name, func() error { return bumpAuth(ctx, tx) })
	})
}

// deleted checks that an exec changed a row, then runs then.
func deleted(res sql.Result, err error) func(what string, then func() error) error {
	return func(what string, then func() error) error {
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
		}
		return then()
	}
}

// PutGrant implements auth.Store.
func (s *Store) PutGrant(ctx context.Context, g auth.Grant) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO auth_grants(subject, role, repository) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			g.Subject, string(g.Role), g.Repository); err != nil {
			return err
		}
		return bumpAuth(ctx, tx)
	})
}

// DeleteGrant implements auth.Store.
func (s *Store) DeleteGrant(ctx context.Context, g auth.Grant) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `DELETE FROM auth_grants WHERE subject = ? AND role = ? AND repository = ?`,
			g.Subject, string(g.Role), g.Repository))("grant", func() error { return bumpAuth(ctx, tx) })
	})
}

// PutToken implements auth.Store.
func (s *Store) PutToken(ctx context.Context, t auth.Token) error {
	scopes, err := json.Marshal(t.Scopes)
	if err != nil {
		return err
	}
	created, err := meta.Micros(t.Created)
	if err != nil {
		return fmt.Errorf("sqlite: token %s: created: %w", t.ID, err)
	}
	expires, err := meta.Micros(t.Expires)
	if err != nil {
		return fmt.Errorf("sqlite: token %s: expires: %w", t.ID, err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO auth_tokens(id, hash, owner, name, scopes_json, created, expires, sign_in) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Hash, t.Owner, t.Name, string(scopes), created, expires, t.SignIn); err != nil {
			return err
		}
		return bumpAuth(ctx, tx)
	})
}

// RevokeToken implements auth.Store.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	us, err := meta.Micros(at)
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %s: %w", id, err)
	}
	if us <= 0 {
		// 0 marks a token that is not revoked.
		return fmt.Errorf("sqlite: revocation time %s is not after 1970", at)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		return deleted(tx.ExecContext(ctx, `UPDATE auth_tokens SET revoked = ? WHERE id = ? AND revoked = 0`, us, id))("token "+id, func() error { return bumpAuth(ctx, tx) })
	})
}
